import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileMasker, PgType, type MaskSpec } from './index.js';

const SPECS: MaskSpec[] = [
  { fn: 'partial', keepFirst: 1, keepLast: 2 },
  { fn: 'partial', keepFirst: 0, keepLast: 4 },
  { fn: 'email' },
  { fn: 'redact' },
  { fn: 'partial', keepFirst: 1, keepLast: 1, maskChar: '•' },
];
const COLUMNS = [
  { typeId: PgType.text, typmod: -1, binary: false },
  { typeId: PgType.varchar, typmod: 20 + 4, binary: true },
  { typeId: PgType.bpchar, typmod: 12 + 4, binary: false },
];

describe('in-place maskers', () => {
  it('give exactly what the rebuilding maskers give, writing over the input only when lengths match', () => {
    const value = fc.oneof(fc.string({ maxLength: 20 }), fc.emailAddress(), fc.string({ unit: 'grapheme', maxLength: 12 }));
    fc.assert(
      fc.property(value, fc.constantFrom(...SPECS), fc.constantFrom(...COLUMNS), (text, spec, column) => {
        const input = Buffer.from(text, 'utf8');
        const expected = compileMasker(spec, column)(Buffer.from(input));
        const mine = Buffer.from(input);
        const got = compileMasker(spec, column, { inPlace: true })(mine);
        assert.deepEqual(got, expected);
        if (got === mine) assert.equal(got.length, input.length, 'in place only at the same length');
        else assert.deepEqual(mine, input, 'the input is untouched when the result is rebuilt');
      }),
      { numRuns: 2000 },
    );
  });

  it('ranged: plan and write give what the masker gives, at any offset, into another buffer or over the value', () => {
    const value = fc.oneof(fc.string({ maxLength: 20 }), fc.emailAddress(), fc.string({ unit: 'grapheme', maxLength: 12 }));
    fc.assert(
      fc.property(value, fc.constantFrom(...SPECS, { fn: 'default' } as MaskSpec), fc.constantFrom(...COLUMNS), fc.nat(7), fc.nat(7), (text, spec, column, before, at) => {
        const input = Buffer.from(text, 'utf8');
        const expected = compileMasker(spec, column)(Buffer.from(input))!;
        const range = compileMasker(spec, column, { inPlace: true }).range;
        if (range === undefined) return; // that masker rebuilds (e.g. a multi-byte mask character)
        // The value sits inside a larger frame, as on the wire.
        const frame = Buffer.concat([Buffer.alloc(before, 0x41), input, Buffer.alloc(3, 0x42)]);
        const len = range.plan(frame, before, before + input.length);
        if (len < 0) return;
        assert.equal(len, expected.length);
        const dst = Buffer.alloc(at + len + 2, 0x43);
        range.write(frame, dst, at);
        assert.deepEqual(dst.subarray(at, at + len), expected);
        assert.equal(dst[at + len], 0x43, 'nothing written past the planned length');
        if (len === input.length) {
          // Over the value itself, as for rows whose lengths do not change.
          range.plan(frame, before, before + input.length);
          range.write(frame, frame, before);
          assert.deepEqual(frame.subarray(before, before + len), expected);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('writes ASCII results over the input itself', () => {
    const v = Buffer.from('alice@example.com');
    const out = compileMasker({ fn: 'email' }, { typeId: PgType.text, typmod: -1, binary: false }, { inPlace: true })(v);
    assert.equal(out, v);
    assert.equal(v.toString(), 'a****@example.com');
  });
});
