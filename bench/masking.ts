/**
 * Micro-benchmark of the per-value cost of masking (not part of the test suite):
 * `npx tsc -p tsconfig.json && node dist/bench/masking.js`. Prints ns/op for the common text
 * functions on a ~20-byte value, a few typed ones, the detectors and the free-text scrubber.
 *
 * Timing: a warm-up, then ROUNDS rounds of N calls timed with process.hrtime.bigint(); the
 * median round's mean is reported, so one round disturbed by other work does not move it.
 */
import { createHmac } from 'node:crypto';
import { type ColumnType, compileMasker, compileTextScrubber, detectValue, findSensitive, KeyedHash, MASK_CLASSES, type Masker, type MaskSpec, PgType } from '../src/masking/index.js';

const ROUNDS = 7;
const N = 200_000;
const key = Buffer.alloc(32, 0x5a);
const sink: unknown[] = [];

function time(label: string, fn: (i: number) => unknown): void {
  for (let i = 0; i < N; i++) sink[i & 7] = fn(i);
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink[i & 7] = fn(i);
    rounds.push(Number(process.hrtime.bigint() - t0) / N);
  }
  rounds.sort((a, b) => a - b);
  console.log(`${label.padEnd(48)} ${rounds[ROUNDS >> 1]!.toFixed(0).padStart(7)} ns/op`);
}

const text: ColumnType = { typeId: PgType.text, typmod: -1, binary: false };
const masker = (spec: Omit<MaskSpec, 'key'>, col: ColumnType = text): Masker => compileMasker({ ...spec, key }, col);

const email = Buffer.from('alice.smith@acme.com'); // 20 bytes
const name = Buffer.from('Jonathan Q. Appleby!'); // 20 bytes
console.log(`node ${process.version}; values of ${email.length} bytes\n`);

time('compileMasker + one value (redact)', (i) => masker({ fn: 'redact' })(i & 1 ? email : name));
const redact = masker({ fn: 'redact' });
const partial = masker({ fn: 'partial', keepFirst: 2, keepLast: 2 });
const emailFn = masker({ fn: 'email' });
const hash = masker({ fn: 'hash' });
time('text redact (compiled)', () => redact(name));
time('text partial keepFirst 2 keepLast 2', () => partial(name));
time('text email', () => emailFn(email));
time('text hash (email-shaped output)', () => hash(email));
time('text hash (plain output)', () => hash(name));
time('varchar(10) hash', ((m: Masker) => () => m(name))(masker({ fn: 'hash' }, { typeId: PgType.varchar, typmod: 14, binary: false })));
time('int4 binary hash', ((m: Masker, v: Buffer) => () => m(v))(masker({ fn: 'hash' }, { typeId: PgType.int4, typmod: -1, binary: true }), Buffer.from([0, 1, 2, 3])));
time('int8 text hash', ((m: Masker, v: Buffer) => () => m(v))(masker({ fn: 'hash' }, { typeId: PgType.int8, typmod: -1, binary: false }), Buffer.from('9007199254740993')));
time('uuid text hash', ((m: Masker, v: Buffer) => () => m(v))(masker({ fn: 'hash' }, { typeId: PgType.uuid, typmod: -1, binary: false }), Buffer.from('550e8400-e29b-41d4-a716-446655440000')));
time('date binary default', ((m: Masker, v: Buffer) => () => m(v))(masker({ fn: 'default' }, { typeId: PgType.date, typmod: -1, binary: true }), Buffer.alloc(4)));
const kh = new KeyedHash(key);
time('KeyedHash.digest (20 bytes)', () => kh.digest(email));
time('node:crypto createHmac (20 bytes), reference', () => createHmac('sha256', key).update(email).digest());
const s = email.toString();
time('detectValue(email)', () => detectValue(s));
time('detectValue("Jonathan Q. Appleby!")', () => detectValue('Jonathan Q. Appleby!'));
time('detectValue("4111 1111 1111 1111")', () => detectValue('4111 1111 1111 1111'));
const note = 'Customer called about order 1182, asked to update the shipping address. Follow up next week.';
const noteHit = 'Customer alice.smith@acme.com called from +1 415-555-2671 about card 4111 1111 1111 1111.';
time(`findSensitive (${note.length} chars, nothing found)`, () => findSensitive(note));
time(`findSensitive (${noteHit.length} chars, 3 runs)`, () => findSensitive(noteHit));
const scrub = compileTextScrubber(MASK_CLASSES);
const noteBuf = Buffer.from(note);
const noteHitBuf = Buffer.from(noteHit);
time('text scrubber (nothing found)', () => scrub(noteBuf));
time('text scrubber (3 runs)', () => scrub(noteHitBuf));
