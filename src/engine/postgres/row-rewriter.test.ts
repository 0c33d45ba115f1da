import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileMasker, PgType, type MaskSpec } from '../../masking/index.js';
import { maskingTransform } from '../../masking/stage.js';
import { messages, ProtocolError } from '../../protocol/postgres/index.js';
import type { ResultColumn, RowTransform } from '../../session/types.js';
import { RowRewriter } from './row-rewriter.js';

const TEXT = { typeId: PgType.text, typmod: -1, binary: false };
const columns = (n: number): ResultColumn[] => Array.from({ length: n }, (_, i) => ({ name: `c${i}`, tableId: 0, columnId: i + 1, ...TEXT }));

const dataRow = (values: ReadonlyArray<string | null>): Buffer => messages.dataRow(values);

/** The values of a DataRow frame. */
function valuesOf(frame: Buffer): Array<string | null> {
  const n = frame.readInt16BE(5);
  const out: Array<string | null> = [];
  let o = 7;
  for (let i = 0; i < n; i++) {
    const len = frame.readInt32BE(o);
    o += 4;
    out.push(len < 0 ? null : frame.toString('utf8', o, o + len));
    if (len > 0) o += len;
  }
  assert.equal(o, frame.length, 'the frame ends after its last value');
  assert.equal(frame.readInt32BE(1), frame.length - 1, 'the length field matches');
  return out;
}

/** Rewrites each frame in turn, as the relay does with the rows of one chunk; returns the frames sent. */
function rewriteAll(rw: RowRewriter, t: RowTransform, frames: Buffer[], n: number): Buffer[] {
  return frames.map((f) => (rw.rewrite(t, columns(n), f, 0, f.length) ? Buffer.from(rw.arena.subarray(rw.rowFrom, rw.rowTo)) : f));
}

const SPECS: MaskSpec[] = [{ fn: 'email' }, { fn: 'partial' }, { fn: 'redact' }, { fn: 'partial', keepFirst: 0, keepLast: 4 }, { fn: 'hash', key: Buffer.alloc(32, 1) }, { fn: 'null' }];

describe('RowRewriter', () => {
  it('masks in place when lengths are kept, into its arena when not', () => {
    const rw = new RowRewriter();
    const t = maskingTransform([1, 2], [compileMasker({ fn: 'email' }, TEXT, { inPlace: true }), compileMasker({ fn: 'redact' }, TEXT, { inPlace: true })]);
    const same = dataRow(['1', 'alice@example.com', null]);
    assert.equal(rw.rewrite(t, columns(3), same, 0, same.length), false, 'NULL stays NULL, the email keeps its length');
    assert.deepEqual(valuesOf(same), ['1', 'a****@example.com', null]);
    const longer = dataRow(['2', 'bob@example.org', '123-45-6789']);
    assert.equal(rw.rewrite(t, columns(3), longer, 0, longer.length), true);
    assert.deepEqual(valuesOf(rw.arena.subarray(rw.rowFrom, rw.rowTo)), ['2', 'b**@example.org', '********']);
  });

  it('ranged rewriting gives exactly what masking each value as a Buffer gives', () => {
    const value = fc.oneof(fc.constant(null), fc.string({ maxLength: 30 }), fc.emailAddress(), fc.string({ unit: 'grapheme', maxLength: 12 }), fc.string({ minLength: 100, maxLength: 300 }));
    const row = (n: number): fc.Arbitrary<Array<string | null>> => fc.array(value, { minLength: n, maxLength: n });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(fc.constant(n), fc.array(row(n), { minLength: 1, maxLength: 40 }), fc.uniqueArray(fc.nat(n - 1), { minLength: 1, maxLength: n }), fc.array(fc.constantFrom(...SPECS), { minLength: n, maxLength: n }))),
        ([n, rows, picked, specs]) => {
          const idx = [...picked].sort((a, b) => a - b);
          const inPlace = maskingTransform(idx, idx.map((i) => compileMasker(specs[i]!, TEXT, { inPlace: true })));
          // The same maskers without `ranged`: every value goes through the masker as a Buffer.
          const byValue = maskingTransform(idx, idx.map((i) => compileMasker(specs[i]!, TEXT)));
          const plain: RowTransform = Object.assign((v: Array<Buffer | null>, c: readonly ResultColumn[]) => byValue(v, c), { touches: idx });
          const a = rewriteAll(new RowRewriter(), inPlace, rows.map(dataRow), n).map(valuesOf);
          const b = rewriteAll(new RowRewriter(), plain, rows.map(dataRow), n).map(valuesOf);
          assert.deepEqual(a, b);
          // Columns not masked are untouched.
          for (let r = 0; r < rows.length; r++) for (let i = 0; i < n; i++) if (!idx.includes(i)) assert.equal(a[r]![i], rows[r]![i]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps rows rewritten one after the other contiguous in the arena, and starts a new arena when full', () => {
    const rw = new RowRewriter();
    const t = maskingTransform([0], [compileMasker({ fn: 'redact' }, TEXT, { inPlace: true })]);
    let arena: Buffer | null = null;
    let end = 0;
    let arenas = 0;
    for (let i = 0; i < 5000; i++) {
      const f = dataRow([`value number ${i}`]);
      assert.equal(rw.rewrite(t, columns(1), f, 0, f.length), true);
      if (rw.arena !== arena) {
        arenas++;
        arena = rw.arena;
      } else assert.equal(rw.rowFrom, end, 'follows the previous row');
      end = rw.rowTo;
      assert.deepEqual(valuesOf(rw.arena.subarray(rw.rowFrom, rw.rowTo)), ['********']);
    }
    assert.ok(arenas > 1, 'several arenas');
  });

  it('refuses a malformed row with a protocol error', () => {
    const rw = new RowRewriter();
    const t = maskingTransform([0], [compileMasker({ fn: 'redact' }, TEXT, { inPlace: true })]);
    const good = dataRow(['secret', 'x']);
    for (const cut of [6, 8, 12, good.length - 1]) {
      const f = good.subarray(0, cut);
      assert.throws(() => rw.rewrite(t, columns(2), f, 0, f.length), ProtocolError, `cut at ${cut}`);
    }
    const lying = Buffer.from(good);
    lying.writeInt32BE(1000, 7); // a value longer than the frame
    assert.throws(() => rw.rewrite(t, columns(2), lying, 0, lying.length), ProtocolError);
  });
});
