import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WalCheckpointer } from './wal-checkpointer.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-walcp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('WalCheckpointer', () => {
  it('reports a thread that cannot open its file, and stop() still returns', async () => {
    const errors: string[] = [];
    const cp = new WalCheckpointer(join(dir, 'missing', 'gatehouse.db'), 100, (m) => errors.push(m));
    await new Promise((r) => setTimeout(r, 500));
    await Promise.race([cp.stop(), new Promise((_, reject) => setTimeout(() => reject(new Error('stop() did not return')), 5000))]);
    assert.equal(errors.length, 1, errors.join('; '));
    assert.match(errors[0]!, /checkpointer thread stopped/);
  });
});
