/**
 * The masking key created on first use: processes that start together (cluster workers) all get
 * the same key, and no draft is left behind. The half-written key that linking it into place
 * prevents needs two processes within microseconds of each other, which this test cannot arrange;
 * two cluster workers forked together hit it once in the lifecycle test ("the masking key must
 * have at least 16 bytes").
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'gh-mask-key-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A process that loads the key of `stateDir` and prints it. */
const LOAD = `import(process.argv[1]).then((m) => {
  const key = m.loadMaskingKey({ file: 'gatehouse.yaml', stateDir: process.argv[2], config: { masking: {} } });
  process.stdout.write(key.toString('utf8'));
}, (err) => { process.stderr.write(String(err)); process.exit(1); });`;

describe('masking key created on first use', () => {
  it('processes starting together on a fresh state directory all load the same whole key', async () => {
    const module = new URL('./key.js', import.meta.url).href;
    for (let round = 0; round < 4; round++) {
      const stateDir = join(dir, `state-${round}`);
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => run(process.execPath, ['--input-type=module', '-e', LOAD, module, stateDir])));
      const keys = results.map((r) => {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String((r.reason as { stderr?: string }).stderr ?? r.reason) : '');
        return (r as PromiseFulfilledResult<{ stdout: string }>).value.stdout;
      });
      assert.match(keys[0]!, /^[0-9a-f]{64}$/);
      assert.deepEqual(new Set(keys), new Set([keys[0]]));
      // No draft left behind.
      assert.deepEqual(readdirSync(stateDir), ['masking.key']);
    }
  });
});
