/**
 * The default signing key created on first use: processes that start together on a fresh state
 * directory (two `gatehouse serve` on one directory, a restart racing a CLI command) all sign
 * with one key, the public key beside it is that key's, and no draft is left behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createPublicKey } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { keyId } from './chain.js';
import { ensureSigningKey } from './setup.js';
import type { LoadedConfig } from '../config/load.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'gh-signing-key-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Loads the module, waits for the shared start time (so the processes race), ensures the key, prints its id and whether it created it. */
const ENSURE = `import(process.argv[1]).then((m) => {
  const start = Number(process.argv[3]);
  while (Date.now() < start);
  const r = m.ensureSigningKey({ file: 'gatehouse.yaml', stateDir: process.argv[2], config: { audit: {} } });
  process.stdout.write(r.key.keyId + ' ' + r.created);
}, (err) => { process.stderr.write(String(err)); process.exit(1); });`;

describe('signing key created on first use', () => {
  it('processes starting together on a fresh state directory all sign with the one key that was written', async () => {
    const module = new URL('./setup.js', import.meta.url).href;
    for (let round = 0; round < 4; round++) {
      const stateDir = join(dir, `state-${round}`);
      const start = String(Date.now() + 600);
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => run(process.execPath, ['--input-type=module', '-e', ENSURE, module, stateDir, start])));
      const out = results.map((r) => {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String((r.reason as { stderr?: string }).stderr ?? r.reason) : '');
        return (r as PromiseFulfilledResult<{ stdout: string }>).value.stdout.split(' ');
      });
      const ids = new Set(out.map(([id]) => id));
      assert.equal(ids.size, 1, `round ${round}: the processes signed with ${ids.size} different keys`);
      assert.equal(out.filter(([, created]) => created === 'true').length, 1, `round ${round}: exactly one process creates the key`);
      const onDisk = keyId(createPublicKey(readFileSync(join(stateDir, 'audit-signing.key'), 'utf8')));
      assert.equal(onDisk, out[0]![0]);
      assert.equal(keyId(createPublicKey(readFileSync(join(stateDir, 'audit-signing.pub'), 'utf8'))), onDisk);
      assert.deepEqual(readdirSync(stateDir).sort(), ['audit-signing.key', 'audit-signing.pub']);
    }
  });

  it('a state directory that cannot be created is a configuration error naming the key, not a stack trace', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const loaded = { file: 'gatehouse.yaml', stateDir: join(file, 'state'), config: { audit: {} } } as unknown as LoadedConfig;
    assert.throws(() => ensureSigningKey(loaded), (err: unknown) => err instanceof ConfigError && /a-file\/state\/audit-signing\.key: cannot create the audit signing key: ENOTDIR \(check state\.dir, or audit\.signing_key\)/.test((err as Error).message));
  });
});
