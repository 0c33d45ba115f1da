/**
 * `gatehouse keys generate|show`: the Ed25519 key that signs audit checkpoints. The private key
 * lives at `audit.signing_key` (default `<state.dir>/audit-signing.key`, mode 0600) and its public
 * key beside it (`.pub`), which is what auditors verify with.
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { generateSigningKey, keyId, publicKeyFromPem } from '../audit/chain.js';
import { signingKeyPath, publicKeyPath } from '../audit/setup.js';
import { ConfigError } from '../errors.js';
import { configuredPublicKey } from './audit.js';

/** Key id of the public key at `path`, or null if there is none (or it is unreadable). */
function existingKeyId(path: string): string | null {
  try {
    return keyId(publicKeyFromPem(readFileSync(path, 'utf8')));
  } catch {
    return null;
  }
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('the Ed25519 key that signs audit checkpoints');
  keys
    .command('generate')
    .description('create the signing key at audit.signing_key (default <state.dir>/audit-signing.key, mode 0600) and its public key beside it')
    .requiredOption('-c, --config <file>', 'configuration file')
    .option('--force', 'replace an existing key (its public key is kept as <name>.<key id>.pub for verifying older checkpoints)')
    .action(async (o: { config: string; force?: boolean }) => {
      const loaded = loadConfig(o.config);
      const path = signingKeyPath(loaded);
      const pubPath = publicKeyPath(path);
      if (existsSync(path) && !o.force) throw new ConfigError(`${path}: a signing key already exists; refusing to overwrite it (pass --force to replace it: checkpoints signed with the old key then verify only with its public key)`);
      // On replacement, keep the old public key: without it the checkpoints it signed cannot be verified.
      const oldId = existsSync(path) ? existingKeyId(pubPath) : null;
      let kept: string | null = null;
      if (oldId !== null) {
        kept = join(dirname(pubPath), `${basename(pubPath, '.pub')}.${oldId}.pub`);
        copyFileSync(pubPath, kept);
      }
      const key = generateSigningKey(path, { force: o.force === true });
      console.log(`private key: ${path} (mode 0600; keep it secret)`);
      console.log(`public key:  ${pubPath} (give it to your auditors)`);
      console.log(`key id:      ${key.keyId}`);
      if (kept !== null) console.log(`replaced key ${oldId}; its public key is kept at ${kept}: pass it with --public-key to verify events signed before now. Restart the proxy to sign with the new key.`);
    });
  keys
    .command('show')
    .description('print the public key (PEM) and key id of the configured signing key')
    .requiredOption('-c, --config <file>', 'configuration file')
    .action(async (o: { config: string }) => {
      const { key, keyId: id, path, derived } = configuredPublicKey(loadConfig(o.config));
      process.stdout.write(key.export({ type: 'spki', format: 'pem' }).toString());
      console.log(`key id: ${id}`);
      console.log(derived ? `from: ${path} (the private key: its .pub file is missing)` : `file: ${path}`);
    });
}
