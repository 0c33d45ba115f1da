import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyBytes, fillBytes, RepeatDecoder } from './bytes.js';

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

describe('RepeatDecoder', () => {
  it('decodes what toString decodes, whatever came before, and answers a repeat with the same string', () => {
    // Short strings from a small alphabet repeat often; some are multibyte, some are invalid UTF-8.
    const piece = fc.oneof(
      fc.constantFrom('SELECT 1', 'SELECT 10', 'P0_1', 'é', '€', '', 'AAA').map((t) => Buffer.from(t, 'utf8')),
      fc.string({ maxLength: 80 }).map((t) => Buffer.from(t, 'utf8')),
      fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
    );
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 40 }), fc.nat(5), (texts, pad) => {
        const d = new RepeatDecoder();
        for (const bytes of texts) {
          // At an offset inside a larger buffer, as in a network chunk.
          const b = Buffer.concat([Buffer.alloc(pad, 0x41), bytes, Buffer.alloc(3, 0x42)]);
          assert.equal(d.decode(b, pad, pad + bytes.length), bytes.toString('utf8'));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('answers a repeat without decoding again, and decodes a multibyte or invalid string every time', () => {
    const d = new RepeatDecoder();
    /** A buffer whose toString counts its calls. */
    const counted = (text: string): { buf: Buffer; calls: () => number } => {
      const buf = Buffer.from(text);
      let n = 0;
      const own = buf.toString.bind(buf);
      buf.toString = ((...args: Parameters<Buffer['toString']>) => (n++, own(...args))) as Buffer['toString'];
      return { buf, calls: () => n };
    };
    assert.equal(d.decode(Buffer.from('xxSELECT 1yy'), 2, 10), 'SELECT 1');
    const repeat = counted('SELECT 1');
    assert.equal(d.decode(repeat.buf, 0, 8), 'SELECT 1');
    assert.equal(repeat.calls(), 0);
    const other = counted('SELECT 2');
    assert.equal(d.decode(other.buf, 0, 8), 'SELECT 2');
    assert.equal(other.calls(), 1);
    const multibyte = counted('Zürich');
    assert.equal(d.decode(multibyte.buf, 0, multibyte.buf.length), 'Zürich');
    assert.equal(d.decode(multibyte.buf, 0, multibyte.buf.length), 'Zürich');
    assert.equal(multibyte.calls(), 2);
    // Invalid UTF-8 decodes to U+FFFD, one unit per byte here: never taken for a repeat.
    const invalid = Buffer.from([0x41, 0xff, 0x42]);
    assert.equal(d.decode(invalid, 0, 3), 'A\ufffdB');
    assert.equal(d.decode(Buffer.from([0x41, 0xfe, 0x42]), 0, 3), 'A\ufffdB');
    assert.equal(d.decode(Buffer.from('A\ufffdB'), 0, 5), 'A\ufffdB');
  });
});
