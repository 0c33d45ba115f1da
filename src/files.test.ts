import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { placeFile } from './files.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('placeFile', () => {
  it('creates a file only when there is none unless told to replace, with the exact mode, and leaves no draft', () => {
    const path = join(dir, 'key');
    const umask = process.umask(0o077);
    try {
      assert.equal(placeFile(path, 'first', { replace: false, mode: 0o640 }), true);
    } finally {
      process.umask(umask);
    }
    assert.equal(statSync(path).mode & 0o777, 0o640);
    assert.equal(placeFile(path, 'second', { replace: false }), false);
    assert.equal(readFileSync(path, 'utf8'), 'first');
    assert.equal(placeFile(path, 'third', { replace: true, mode: 0o600 }), true);
    assert.equal(readFileSync(path, 'utf8'), 'third');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['key']);
  });

  it('creates the directory, and reports other failures', () => {
    assert.equal(placeFile(join(dir, 'sub', 'dir', 'key'), 'x', { replace: false }), true);
    assert.equal(readFileSync(join(dir, 'sub', 'dir', 'key'), 'utf8'), 'x');
    assert.throws(() => placeFile(join(dir, 'key', 'sub', 'under-a-file'), 'x', { replace: false }), { code: 'ENOTDIR' });
    assert.deepEqual(readdirSync(dir).sort(), ['key', 'sub']);
  });
});
