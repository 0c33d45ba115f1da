/**
 * Where a configuration's audit pieces are: the writer id of a process and the signing key.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { generateSigningKey, loadSigningKey, publicKeyPath, SigningKeyExists, type SigningKey } from './chain.js';

/** The node id: `server.node_id`, or the host name. */
export function nodeIdOf(loaded: LoadedConfig): string {
  return loaded.config.server.node_id ?? hostname();
}

/**
 * The private key path: `audit.signing_key` (relative to the configuration file), or
 * `<state.dir>/audit-signing.key`.
 */
export function signingKeyPath(loaded: LoadedConfig): string {
  const configured = loaded.config.audit.signing_key;
  return configured !== undefined ? resolve(dirname(loaded.file), configured) : join(loaded.stateDir, 'audit-signing.key');
}

/**
 * The signing key, created on first use when it is the default one (a configured path that does
 * not exist is a configuration error: it probably names a mounted secret that is missing).
 * `created` tells the caller to say where the public key is. Of processes that start together on
 * a fresh state directory, one creates the key and the others load it.
 */
export function ensureSigningKey(loaded: LoadedConfig): { key: SigningKey; path: string; created: boolean } {
  const path = signingKeyPath(loaded);
  if (!existsSync(path) && loaded.config.audit.signing_key === undefined) {
    try {
      return { key: generateSigningKey(path), path, created: true };
    } catch (err) {
      if (!(err instanceof SigningKeyExists)) throw err;
    }
  }
  return { key: loadSigningKey(path), path, created: false };
}

export { publicKeyPath };
