import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineBatcher } from './logger.js';

/** A file writer that keeps what it is handed (copied: the batcher's buffers are its own until written). */
function fakeWriter(): { writes: string[]; flushes: number; syncFlushes: number; write(d: Buffer): boolean; flush(): void; flushSync(): void } {
  return {
    writes: [],
    flushes: 0,
    syncFlushes: 0,
    write(d) {
      this.writes.push(d.toString('utf8'));
      return true;
    },
    flush() {
      this.flushes++;
    },
    flushSync() {
      this.syncFlushes++;
    },
  };
}

describe('LineBatcher', () => {
  it('hands lines on in order, about 64 KB at a time rather than one by one', () => {
    const out = fakeWriter();
    const b = new LineBatcher(out);
    const lines = Array.from({ length: 4000 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(90)}"}\n`);
    for (const l of lines) b.write(l);
    assert.ok(out.writes.length >= 6 && out.writes.length <= 7, `${out.writes.length} writes`);
    // Each batch: at least 64 KB less the lines that did not fit a buffer's end, at most one line over.
    for (const w of out.writes) assert.ok(w.length >= 60_000 && w.length <= 64 * 1024 + 120, `a write of ${w.length} bytes`);
    b.flush();
    assert.equal(out.flushes, 1);
    assert.equal(out.writes.join(''), lines.join(''));
  });

  it('flush and flushSync hand on what is gathered, and flush on nothing writes nothing', () => {
    const out = fakeWriter();
    const b = new LineBatcher(out);
    b.flush();
    assert.deepEqual(out.writes, []);
    b.write('a\n');
    b.flush();
    b.write('b\n');
    b.flushSync();
    assert.deepEqual(out.writes, ['a\n', 'b\n']);
    assert.equal(out.syncFlushes, 1);
  });

  it('encodes multibyte text, and lines longer than its buffer, whole and in order', () => {
    const out = fakeWriter();
    const b = new LineBatcher(out);
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) lines.push(i % 500 === 7 ? `{"big":"${'é€😀'.repeat(40_000)}"}\n` : `{"n":${i},"t":"Zürich ${'€'.repeat(i % 40)} 😀"}\n`);
    for (const l of lines) b.write(l);
    b.flush();
    assert.equal(out.writes.join(''), lines.join(''));
  });
});
