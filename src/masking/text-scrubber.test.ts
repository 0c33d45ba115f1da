/** Free-text scrubbing: detector runs masked in place, the rest kept, text and JSON stay valid. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../errors.js';
import { MASK_CLASSES } from './classes.js';
import { type ColumnType, defaultValue, PgType } from './pg-types.js';
import { compileTextScrubber } from './text-scrubber.js';

const col = (typeId: number, typmod = -1, binary = false): ColumnType => ({ typeId, typmod, binary });
const scrub = (text: string, column: ColumnType = col(PgType.text), classes: Iterable<(typeof MASK_CLASSES)[number]> = MASK_CLASSES, maskChar?: string): string =>
  compileTextScrubber(classes, column, maskChar === undefined ? {} : { maskChar })(Buffer.from(text))!.toString('utf8');

describe('compileTextScrubber', () => {
  it('masks detector runs and keeps the rest', () => {
    assert.equal(
      scrub('Call +1 415-555-2671 or mail alice@example.com about card 4111 1111 1111 1111.'),
      'Call *************** or mail ***************** about card *******************.',
    );
  });

  it('only the requested classes', () => {
    assert.equal(scrub('alice@example.com, 123-45-6789', col(PgType.text), ['national_id']), 'alice@example.com, ***********');
  });

  it('returns the value itself when nothing is found (no copy)', () => {
    const v = Buffer.from('nothing to see here, order 1182');
    assert.equal(compileTextScrubber(MASK_CLASSES)(v), v);
    assert.equal(compileTextScrubber(MASK_CLASSES)(null), null);
  });

  it('keeps multibyte text around runs and masks per code point', () => {
    assert.equal(scrub('Kontakt: jürgen@exämple.de — danke 👋', col(PgType.text), MASK_CLASSES, '•'), 'Kontakt: ' + '•'.repeat(17) + ' — danke 👋');
  });

  it('keeps varchar(n) and char(n) lengths', () => {
    assert.equal(scrub('ssn 123-45-6789', col(PgType.varchar, 19)), 'ssn ***********');
    assert.equal(scrub('ssn 123-45-6789     ', col(PgType.bpchar, 24)), 'ssn ***********     ');
  });

  it('json: masks inside string literals, zeroes matched numbers, stays valid JSON', () => {
    const doc = '{"note": "mail a.b@example.com\\nthanks", "ssn": 123456789, "tags": ["x", "\\u0061lice@example.com"], "n": 12}';
    const out = scrub(doc, col(PgType.json));
    assert.doesNotThrow(() => JSON.parse(out), out);
    const parsed = JSON.parse(out) as { note: string; ssn: number; tags: string[]; n: number };
    assert.equal(parsed.note, 'mail ***************\nthanks');
    assert.equal(parsed.ssn, 0);
    assert.equal(parsed.tags[1], '*'.repeat(17)); // the \u0061 escape became one mask character
    assert.equal(parsed.n, 12);
    assert.equal(out.length, doc.length - 5);
  });

  it('jsonb binary keeps the version byte', () => {
    const out = compileTextScrubber(MASK_CLASSES, col(PgType.jsonb, -1, true))(Buffer.from('\x01{"e": "bob@example.org"}', 'latin1'))!;
    assert.equal(out[0], 1);
    assert.deepEqual(JSON.parse(out.subarray(1).toString()), { e: '***************' });
  });

  it('non-text columns fail closed to the type default', () => {
    const c = col(PgType.int4, -1, true);
    assert.deepEqual(compileTextScrubber(MASK_CLASSES, c)(Buffer.from([0, 0, 0, 1])), defaultValue(c));
  });

  it('rejects unknown classes and unsafe mask characters', () => {
    assert.throws(() => compileTextScrubber(['emails' as 'email']), ConfigError);
    assert.throws(() => compileTextScrubber(MASK_CLASSES, undefined, { maskChar: '"' }), ConfigError);
    assert.throws(() => compileTextScrubber(MASK_CLASSES, undefined, { maskChar: '**' }), ConfigError);
  });

  it('json output stays valid JSON for any document with sensitive strings and numbers (property)', () => {
    const sensitive = fc.constantFrom('alice@example.com', '4111 1111 1111 1111', '123-45-6789', '123456789', '+1 415 555 2671', 'AKIAIOSFODNN7EXAMPLE', '10.0.0.1');
    const str = fc.oneof(sensitive, fc.string({ unit: 'binary', maxLength: 8 }), fc.tuple(fc.string({ maxLength: 4 }), sensitive, fc.string({ maxLength: 4 })).map((p) => p.join('')));
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, str, fc.integer(), fc.constantFrom(123456789, 4111111111111111, 1.5e10), fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(str, tie('value'), { maxKeys: 4 })),
    })).value;
    const m = compileTextScrubber(MASK_CLASSES, col(PgType.json));
    fc.assert(
      fc.property(json, (doc) => {
        const text = JSON.stringify(doc);
        const out = m(Buffer.from(text))!.toString('utf8');
        assert.doesNotThrow(() => JSON.parse(out), out);
      }),
      { numRuns: 500 },
    );
  });

  it('plain text keeps its length in code points (property)', () => {
    const m = compileTextScrubber(MASK_CLASSES, col(PgType.text), { maskChar: '█' });
    const text = fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 10 }), fc.constantFrom('alice@example.com', ' 4111 1111 1111 1111 ', ' 123-45-6789 ')), { maxLength: 8 }).map((p) => p.join(''));
    fc.assert(
      fc.property(text, (t) => {
        const out = new TextDecoder('utf-8', { fatal: true }).decode(m(Buffer.from(t))!);
        assert.equal([...out].length, [...t].length);
      }),
      { numRuns: 500 },
    );
  });
});
