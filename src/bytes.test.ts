import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyBytes, fillBytes } from './bytes.js';

describe('copyBytes and fillBytes', () => {
  it('copy what Buffer#copy copies, at every length and offset, whichever buffers come in turn', () => {
    // Three sources and two destinations used in random order: the cached DataViews must follow.
    // The last one is too large to be cached (the byte loop copies from it).
    const sources = [Buffer.alloc(400), Buffer.alloc(300), Buffer.from(new Uint8Array(new ArrayBuffer(512), 7, 320)), Buffer.alloc(2 << 20)];
    sources.forEach((s, k) => s.forEach((_, i) => (s[i] = (i * 31 + k * 7) & 0xff)));
    const dests = [Buffer.alloc(400), Buffer.from(new Uint8Array(new ArrayBuffer(600), 3, 400))];
    const step = fc.record({ s: fc.nat(3), d: fc.nat(1), start: fc.nat(150), len: fc.nat(170), off: fc.nat(200) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => {
        for (const { s, d, start, len, off } of steps) {
          const src = sources[s]!;
          const dst = dests[d]!;
          const expected = Buffer.from(dst);
          src.copy(expected, off, start, start + len);
          assert.equal(copyBytes(src, start, start + len, dst, off), len);
          assert.deepEqual(dst, expected);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('fill what Buffer#fill fills, and nothing outside the range', () => {
    fc.assert(
      fc.property(fc.nat(255), fc.nat(200), fc.nat(170), (byte, start, len) => {
        const dst = Buffer.alloc(400, 0x5a);
        const expected = Buffer.from(dst).fill(byte, start, start + len);
        fillBytes(dst, byte, start, start + len);
        assert.deepEqual(dst, expected);
      }),
      { numRuns: 1000 },
    );
  });
});
