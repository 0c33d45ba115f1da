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

  it('writes ASCII results over the input itself', () => {
    const v = Buffer.from('alice@example.com');
    const out = compileMasker({ fn: 'email' }, { typeId: PgType.text, typmod: -1, binary: false }, { inPlace: true })(v);
    assert.equal(out, v);
    assert.equal(v.toString(), 'a****@example.com');
  });
});
