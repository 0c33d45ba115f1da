/** Masking functions on every supported type, in both wire formats, with property tests. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../errors.js';
import { compileMasker, MASK_FUNCTIONS, type MaskFunction, type MaskSpec } from './functions.js';
import { KeyedHash } from './keyed-hash.js';
import { type ColumnType, defaultValue, PgType } from './pg-types.js';

const KEY = Buffer.alloc(32, 0x11);
const KEY2 = Buffer.alloc(32, 0x22);
const col = (typeId: number, typmod = -1, binary = false, textual?: boolean): ColumnType => (textual === undefined ? { typeId, typmod, binary } : { typeId, typmod, binary, textual });
const TEXT = col(PgType.text);
const mask = (spec: Omit<MaskSpec, 'key'> & { key?: Buffer }, column: ColumnType, value: string | Buffer): Buffer | null =>
  compileMasker({ key: KEY, ...spec }, column)(typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
const maskText = (spec: Omit<MaskSpec, 'key'> & { key?: Buffer }, column: ColumnType, value: string): string | null => mask(spec, column, value)?.toString('utf8') ?? null;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const codePoints = (s: string): number => [...s].length;
const int32 = (x: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(x);
  return b;
};

describe('text-like columns', () => {
  const varchar = (n: number) => col(PgType.varchar, n + 4);
  const char = (n: number) => col(PgType.bpchar, n + 4);

  it('redact: a fixed-width mask, never the length of the value', () => {
    assert.equal(maskText({ fn: 'redact' }, TEXT, 'alice@example.com'), '********');
    assert.equal(maskText({ fn: 'redact' }, TEXT, 'x'), '********');
    assert.equal(maskText({ fn: 'redact', maskChar: '#' }, TEXT, 'abc'), '########');
    assert.equal(maskText({ fn: 'redact' }, varchar(5), 'abcde'), '*****');
    assert.equal(maskText({ fn: 'redact' }, char(10), 'ab        '), '**********');
    assert.equal(maskText({ fn: 'redact', maskChar: '•' }, TEXT, 'abc'), '••••••••');
  });

  it('partial: keeps first and last code points, masks the middle', () => {
    assert.equal(maskText({ fn: 'partial' }, TEXT, 'alice'), 'a***e');
    assert.equal(maskText({ fn: 'partial', keepFirst: 0, keepLast: 4 }, TEXT, '4111111111111111'), '************1111');
    assert.equal(maskText({ fn: 'partial', keepFirst: 2, keepLast: 0, maskChar: 'x' }, TEXT, 'secret'), 'sexxxx');
    // Too short to keep anything without revealing it all: masked whole.
    assert.equal(maskText({ fn: 'partial' }, TEXT, 'ab'), '**');
    assert.equal(maskText({ fn: 'partial', keepFirst: 3, keepLast: 3 }, TEXT, 'abcdef'), '******');
    assert.equal(maskText({ fn: 'partial' }, TEXT, ''), '');
  });

  it('partial counts code points, not bytes or UTF-16 units', () => {
    const out = maskText({ fn: 'partial', keepFirst: 2, keepLast: 2 }, TEXT, '👋héllo wörld👋')!;
    assert.equal(out, '👋h*********d👋');
    assert.equal(maskText({ fn: 'partial', maskChar: '█' }, TEXT, '日本語テキスト'), '日█████ト');
    assert.equal(maskText({ fn: 'partial', keepFirst: 1, keepLast: 0 }, TEXT, 'e\u0301x'), 'e**'); // a combining mark is a code point of its own
  });

  it('char(n): padding is not content, and the output is padded back to n', () => {
    assert.equal(maskText({ fn: 'partial' }, char(8), 'abc     '), 'a*c     ');
    assert.equal(maskText({ fn: 'email' }, char(20), 'bob@example.com     '), 'b**@example.com     ');
    assert.equal(maskText({ fn: 'default' }, char(5), 'abc  '), '     ');
    assert.equal(maskText({ fn: 'partial' }, col(PgType.bpchar), 'abc  '), 'a*c'); // char without a length
  });

  it('email: keeps the first character of the local part and the domain', () => {
    assert.equal(maskText({ fn: 'email' }, TEXT, 'alice@example.com'), 'a****@example.com');
    assert.equal(maskText({ fn: 'email' }, TEXT, 'a@x.io'), '*@x.io');
    assert.equal(maskText({ fn: 'email' }, TEXT, 'josé@exämple.de'), 'j***@exämple.de');
    assert.equal(maskText({ fn: 'email', maskChar: '·' }, varchar(40), 'first.last+tag@sub.example.co.uk'), 'f·············@sub.example.co.uk');
  });

  it('email: anything else falls back to partial', () => {
    assert.equal(maskText({ fn: 'email' }, TEXT, 'not an email'), 'n**********l');
    assert.equal(maskText({ fn: 'email', keepFirst: 0, keepLast: 2 }, TEXT, 'alice@localhost'), '*************st');
    assert.equal(maskText({ fn: 'email' }, TEXT, 'a b@example.com'), 'a*************m');
  });

  it('hash: h_ + 16 base32 characters, or an email at masked.invalid for emails', () => {
    assert.match(maskText({ fn: 'hash' }, TEXT, 'Jonathan')!, /^h_[a-z2-7]{16}$/);
    assert.match(maskText({ fn: 'hash' }, TEXT, 'alice@example.com')!, /^u_[a-z2-7]{16}@masked\.invalid$/);
  });

  it('hash: is HMAC-SHA-256 of the value under the key (first 80 bits, base32)', () => {
    const d = createHmac('sha256', KEY).update('Jonathan').digest();
    const bits = [...d.subarray(0, 10)].map((b) => b.toString(2).padStart(8, '0')).join('');
    const b32 = bits.match(/.{5}/g)!.map((g) => 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(g, 2)]).join('');
    assert.equal(maskText({ fn: 'hash' }, TEXT, 'Jonathan'), `h_${b32}`);
  });

  it('hash: stable per key, different across keys and values', () => {
    const a = maskText({ fn: 'hash' }, TEXT, 'alice@example.com');
    assert.equal(maskText({ fn: 'hash' }, TEXT, 'alice@example.com'), a);
    assert.notEqual(maskText({ fn: 'hash', key: KEY2 }, TEXT, 'alice@example.com'), a);
    assert.notEqual(maskText({ fn: 'hash' }, TEXT, 'alicf@example.com'), a);
  });

  it('hash: fits varchar(n) and char(n); char padding does not change the pseudonym', () => {
    assert.match(maskText({ fn: 'hash' }, varchar(10), 'Jonathan')!, /^[a-z2-7]{10}$/);
    assert.match(maskText({ fn: 'hash' }, varchar(20), 'alice@example.com')!, /^h_[a-z2-7]{16}$/); // email shape needs 33
    assert.match(maskText({ fn: 'hash' }, varchar(33), 'alice@example.com')!, /^u_[a-z2-7]{16}@masked\.invalid$/);
    const padded = maskText({ fn: 'hash' }, char(40), 'alice@example.com' + ' '.repeat(23))!;
    assert.equal(padded.length, 40);
    assert.equal(padded.trimEnd(), maskText({ fn: 'hash' }, TEXT, 'alice@example.com'));
    assert.equal(maskText({ fn: 'hash' }, char(2), 'ab'), maskText({ fn: 'hash' }, varchar(2), 'ab'));
  });

  it('default and null', () => {
    assert.equal(maskText({ fn: 'default' }, TEXT, 'alice'), '');
    assert.equal(mask({ fn: 'null' }, TEXT, 'alice'), null);
  });

  it('SQL NULL stays NULL for every function', () => {
    for (const fn of MASK_FUNCTIONS) assert.equal(compileMasker({ fn, key: KEY }, TEXT)(null), null, fn);
  });

  it('binary text formats are the same bytes', () => {
    for (const fn of MASK_FUNCTIONS) {
      for (const typeId of [PgType.text, PgType.varchar, PgType.name]) {
        assert.deepEqual(mask({ fn }, col(typeId, -1, true), 'alice@example.com'), mask({ fn }, col(typeId), 'alice@example.com'), `${fn} ${typeId}`);
      }
    }
  });

  it('name: at most 63 bytes, cut at a character boundary', () => {
    const out = mask({ fn: 'partial', keepFirst: 0, keepLast: 0, maskChar: '€' }, col(PgType.name), 'a'.repeat(63))!;
    assert.equal(out.length, 63);
    assert.equal(utf8.decode(out), '€'.repeat(21));
  });

  it('non-built-in types (citext, enums) are text in text format; binary only when declared textual', () => {
    const citext = 91234;
    assert.equal(maskText({ fn: 'email' }, col(citext), 'Alice@Example.com'), 'A****@Example.com');
    assert.equal(mask({ fn: 'email' }, col(citext, -1, true), 'Alice@Example.com'), null);
    assert.equal(mask({ fn: 'redact' }, col(citext, -1, true), 'x'), null);
    assert.equal(maskText({ fn: 'email' }, col(citext, -1, true, true), 'Alice@Example.com'), 'A****@Example.com');
  });
});

/** Expected defaults: [typeId, typmod, text, binary hex]. */
const DEFAULTS: Array<[string, number, number, string, string]> = [
  ['bool', PgType.bool, -1, 'f', '00'],
  ['bytea', PgType.bytea, -1, '\\x', ''],
  ['int2', PgType.int2, -1, '0', '0000'],
  ['int4', PgType.int4, -1, '0', '00000000'],
  ['int8', PgType.int8, -1, '0', '0000000000000000'],
  ['oid', PgType.oid, -1, '0', '00000000'],
  ['float4', PgType.float4, -1, '0', '00000000'],
  ['float8', PgType.float8, -1, '0', '0000000000000000'],
  ['money', PgType.money, -1, '0.00', '0000000000000000'],
  ['numeric', PgType.numeric, -1, '0', '0000000000000000'],
  ['numeric(10,2)', PgType.numeric, ((10 << 16) | 2) + 4, '0.00', '0000000000000002'],
  ['json', PgType.json, -1, '{}', '7b7d'],
  ['jsonb', PgType.jsonb, -1, '{}', '017b7d'],
  ['xml', PgType.xml, -1, '', ''],
  ['date', PgType.date, -1, '1900-01-01', 'ffff7154'],
  ['time', PgType.time, -1, '00:00:00', '0000000000000000'],
  ['timetz', PgType.timetz, -1, '00:00:00+00', '000000000000000000000000'],
  ['timestamp', PgType.timestamp, -1, '1900-01-01 00:00:00', 'fff4c9ee7c0b8000'],
  ['timestamptz', PgType.timestamptz, -1, '1900-01-01 00:00:00+00', 'fff4c9ee7c0b8000'],
  ['interval', PgType.interval, -1, '00:00:00', '00'.repeat(16)],
  ['uuid', PgType.uuid, -1, '00000000-0000-0000-0000-000000000000', '00'.repeat(16)],
  ['inet', PgType.inet, -1, '0.0.0.0', '0220000400000000'],
  ['cidr', PgType.cidr, -1, '0.0.0.0/0', '0200010400000000'],
  ['macaddr', PgType.macaddr, -1, '00:00:00:00:00:00', '00'.repeat(6)],
  ['macaddr8', PgType.macaddr8, -1, '00:00:00:00:00:00:00:00', '00'.repeat(8)],
  ['text[]', 1009, -1, '{}', '000000000000000000000019'],
  ['int4[]', 1007, -1, '{}', '000000000000000000000017'],
];

describe('default on every type', () => {
  for (const [name, typeId, typmod, text, hex] of DEFAULTS) {
    it(`${name}: text ${JSON.stringify(text)}, binary ${hex || '(empty)'}`, () => {
      assert.equal(maskText({ fn: 'default' }, col(typeId, typmod), 'anything'), text);
      assert.equal(mask({ fn: 'default' }, col(typeId, typmod, true), Buffer.alloc(3))!.toString('hex'), hex);
    });
  }

  it('redact, partial and email fall back to the default on non-text types', () => {
    for (const [name, typeId, typmod] of DEFAULTS) {
      for (const binary of [false, true]) {
        const c = col(typeId, typmod, binary);
        for (const fn of ['redact', 'partial', 'email'] as const) assert.deepEqual(mask({ fn }, c, 'x'), defaultValue(c), `${fn} ${name} ${binary}`);
      }
    }
  });

  it('hash falls back to the default on types without a typed pseudonym', () => {
    for (const typeId of [PgType.bool, PgType.float4, PgType.float8, PgType.numeric, PgType.timestamp, PgType.timestamptz, PgType.time, PgType.interval, PgType.macaddr, 1009]) {
      for (const binary of [false, true]) assert.deepEqual(mask({ fn: 'hash' }, col(typeId, -1, binary), '1'), defaultValue(col(typeId, -1, binary)), String(typeId));
    }
  });

  it('built-in types without a known default become NULL (point, tsvector, "char")', () => {
    for (const typeId of [600, 3614, 18]) {
      for (const fn of MASK_FUNCTIONS) {
        assert.equal(mask({ fn }, col(typeId), '(1,2)'), null);
        assert.equal(mask({ fn }, col(typeId, -1, true), Buffer.alloc(16)), null);
      }
    }
  });
});

describe('hash on typed columns', () => {
  const h = (c: ColumnType, v: string | Buffer, key = KEY): Buffer => mask({ fn: 'hash', key }, c, v)!;

  it('integers: non-negative, in range, the same in text and binary', () => {
    const t2 = Number(h(col(PgType.int2), '42').toString());
    assert.ok(t2 >= 0 && t2 <= 0x7fff);
    assert.equal(h(col(PgType.int2, -1, true), Buffer.from([0, 42])).readInt16BE(), t2);
    const t4 = Number(h(col(PgType.int4), '-7').toString());
    assert.ok(t4 >= 0 && t4 <= 0x7fffffff);
    assert.equal(h(col(PgType.int4, -1, true), int32(-7)).readInt32BE(), t4);
    const t8 = h(col(PgType.int8), '-9223372036854775808').toString();
    const b8 = Buffer.alloc(8);
    b8.writeBigInt64BE(-9223372036854775808n);
    assert.equal(h(col(PgType.int8, -1, true), b8).readBigInt64BE().toString(), t8);
    assert.ok(BigInt(t8) >= 0n && BigInt(t8) <= BigInt(Number.MAX_SAFE_INTEGER));
    // int2, int4 and int8 hash the same int64, so 42 maps consistently within each type.
    assert.notEqual(h(col(PgType.int4), '42').toString(), h(col(PgType.int4), '43').toString());
  });

  it('uuid: a version 8 UUID, the same in text and binary', () => {
    const text = '550e8400-e29b-41d4-a716-446655440000';
    const out = h(col(PgType.uuid), text).toString();
    assert.match(out, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const bin = h(col(PgType.uuid, -1, true), Buffer.from(text.replaceAll('-', ''), 'hex'));
    assert.equal(bin.length, 16);
    assert.equal(bin.toString('hex'), out.replaceAll('-', ''));
    assert.equal(h(col(PgType.uuid), text.toUpperCase()).toString(), out);
  });

  it('date: a day in 1900..2099, the same in text and binary', () => {
    const out = h(col(PgType.date), '2024-02-29').toString();
    assert.match(out, /^(19|20)\d\d-\d\d-\d\d$/);
    const days = Math.round((Date.UTC(2024, 1, 29) - Date.UTC(2000, 0, 1)) / 86400000);
    const bin = h(col(PgType.date, -1, true), int32(days));
    const back = new Date(Date.UTC(2000, 0, 1) + bin.readInt32BE() * 86400000).toISOString().slice(0, 10);
    assert.equal(back, out);
    // Unparsable text (another DateStyle, infinity) is hashed as sent: still a valid date.
    assert.match(h(col(PgType.date), 'infinity').toString(), /^(19|20)\d\d-\d\d-\d\d$/);
  });

  it('inet/cidr: 10.0.0.0/8 for IPv4, 2001:db8::/32 for IPv6, the same in text and binary', () => {
    const v4 = h(col(PgType.inet), '192.168.1.5').toString();
    assert.match(v4, /^10\.\d{1,3}\.\d{1,3}\.\d{1,3}$/);
    const bin4 = h(col(PgType.inet, -1, true), Buffer.from([2, 32, 0, 4, 192, 168, 1, 5]));
    assert.equal(bin4.toString('hex').slice(0, 8), '02200004');
    assert.equal([...bin4.subarray(4)].join('.'), v4);
    assert.match(h(col(PgType.cidr), '192.168.0.0/16').toString(), /^10\.\d+\.\d+\.\d+\/32$/);
    assert.equal(h(col(PgType.cidr, -1, true), Buffer.from([2, 16, 1, 4, 192, 168, 0, 0])).toString('hex').slice(0, 8), '02200104');
    const v6 = h(col(PgType.inet), '2001:db8:85a3::8a2e:370:7334').toString();
    assert.match(v6, /^2001:db8(:[0-9a-f]{1,4}){6}$/);
    const bin6 = h(col(PgType.inet, -1, true), Buffer.concat([Buffer.from([3, 128, 0, 16]), Buffer.from('20010db885a3000000008a2e03707334', 'hex')]));
    assert.equal(bin6.length, 20);
    assert.equal(
      bin6.subarray(4).toString('hex').match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16)).join(':'),
      v6,
    );
    assert.equal(h(col(PgType.inet), '::ffff:1.2.3.4').toString(), h(col(PgType.inet), '::ffff:102:304').toString());
  });

  it('bytea: the 32-byte HMAC of the bytes, the same for hex text and binary', () => {
    const text = h(col(PgType.bytea), '\\xdeadbeef').toString();
    assert.match(text, /^\\x[0-9a-f]{64}$/);
    assert.equal(text.slice(2), createHmac('sha256', KEY).update(Buffer.from('deadbeef', 'hex')).digest('hex'));
    assert.equal(h(col(PgType.bytea, -1, true), Buffer.from('deadbeef', 'hex')).toString('hex'), text.slice(2));
    assert.equal(h(col(PgType.bytea), '\\x').toString().length, 66);
  });

  it('json/jsonb: a JSON string pseudonym; jsonb binary keeps version byte 1', () => {
    assert.match(h(col(PgType.json), '{"a": 1}').toString(), /^"h_[a-z2-7]{16}"$/);
    const jb = h(col(PgType.jsonb, -1, true), Buffer.from('\x01{"a": 1}', 'latin1'));
    assert.equal(jb[0], 1);
    assert.equal(jb.subarray(1).toString(), h(col(PgType.jsonb), '{"a": 1}').toString());
  });
});

describe('spec validation (at compile time)', () => {
  const bad: Array<[string, MaskSpec]> = [
    ['unknown function', { fn: 'shuffle' as MaskFunction }],
    ['hash without a key', { fn: 'hash' }],
    ['hash with a short key', { fn: 'hash', key: Buffer.alloc(8) }],
    ['two-character maskChar', { fn: 'partial', maskChar: '**' }],
    ['empty maskChar', { fn: 'redact', maskChar: '' }],
    ['control maskChar', { fn: 'redact', maskChar: '\n' }],
    ['negative keepFirst', { fn: 'partial', keepFirst: -1 }],
    ['fractional keepLast', { fn: 'partial', keepLast: 1.5 }],
  ];
  for (const [what, spec] of bad) it(`${what} is a ConfigError`, () => assert.throws(() => compileMasker(spec, TEXT), ConfigError));

  it('a multi-unit but single code point maskChar is fine', () => {
    assert.equal(maskText({ fn: 'partial', maskChar: '😀' }, TEXT, 'abc'), 'a😀c');
  });
});

describe('KeyedHash', () => {
  it('equals node:crypto HMAC-SHA-256 for any key and message (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 150 }), fc.uint8Array({ maxLength: 300 }), fc.nat(), (key, msg, skip) => {
        const start = msg.length === 0 ? 0 : skip % msg.length;
        const got = Buffer.from(new KeyedHash(key).digest(msg, start, msg.length)).toString('hex');
        assert.equal(got, createHmac('sha256', key).update(msg.subarray(start)).digest('hex'));
      }),
      { numRuns: 400 },
    );
  });

  it('handles the padding boundaries (55, 56, 63, 64, 119, 120 bytes)', () => {
    const kh = new KeyedHash(KEY);
    for (const n of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000]) {
      const m = Buffer.alloc(n, 0x61);
      assert.equal(Buffer.from(kh.digest(m)).toString('hex'), createHmac('sha256', KEY).update(m).digest('hex'), String(n));
    }
  });
});

describe('properties', () => {
  const TEXT_FNS = ['redact', 'partial', 'email', 'hash', 'default'] as const;
  const maskChars = fc.constantFrom('*', '#', 'x', '•', '█', '😀');
  const anyText = fc.string({ unit: 'binary', maxLength: 40 });
  const emailish = fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 10 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 10 })).map(([a, b]) => `${a.replace(/[@\s]/g, 'a')}@${b.replace(/[@\s.]/g, 'b')}.com`);
  const values = fc.oneof(anyText, emailish);
  const spec = fc.record({
    fn: fc.constantFrom(...TEXT_FNS),
    keepFirst: fc.integer({ min: 0, max: 5 }),
    keepLast: fc.integer({ min: 0, max: 5 }),
    maskChar: maskChars,
  });

  it('text-format output is valid UTF-8', () => {
    fc.assert(
      fc.property(spec, values, (s, v) => {
        const out = mask(s, TEXT, v)!;
        utf8.decode(out);
      }),
      { numRuns: 1000 },
    );
  });

  it('partial and email keep the value length in code points', () => {
    fc.assert(
      fc.property(fc.constantFrom('partial', 'email') as fc.Arbitrary<'partial' | 'email'>, maskChars, values, (fn, maskChar, v) => {
        assert.equal(codePoints(utf8.decode(mask({ fn, maskChar }, TEXT, v)!)), codePoints(v));
      }),
    );
  });

  it('varchar(n) output has at most n characters, char(n) exactly n, name at most 63 bytes', () => {
    fc.assert(
      fc.property(spec, values, fc.integer({ min: 1, max: 40 }), (s, v, n) => {
        const fitted = [...v].slice(0, n).join('');
        const vc = utf8.decode(mask(s, col(PgType.varchar, n + 4), fitted)!);
        assert.ok(codePoints(vc) <= n, `${JSON.stringify(vc)} > ${n}`);
        const padded = fitted + ' '.repeat(n - codePoints(fitted));
        const bc = utf8.decode(mask(s, col(PgType.bpchar, n + 4), padded)!);
        assert.equal(codePoints(bc), n, JSON.stringify(bc));
        const nameOut = mask(s, col(PgType.name), Buffer.from(fitted).length <= 63 ? fitted : 'x')!;
        assert.ok(nameOut.length <= 63);
        utf8.decode(nameOut);
      }),
      { numRuns: 1000 },
    );
  });

  it('hash is stable for a key and depends on it', () => {
    fc.assert(
      fc.property(values, fc.uint8Array({ minLength: 16, maxLength: 64 }), fc.uint8Array({ minLength: 16, maxLength: 64 }), (v, k1, k2) => {
        const a = mask({ fn: 'hash', key: Buffer.from(k1) }, TEXT, v)!;
        assert.deepEqual(mask({ fn: 'hash', key: Buffer.from(k1) }, TEXT, v), a);
        if (!Buffer.from(k1).equals(Buffer.from(k2))) assert.notDeepEqual(mask({ fn: 'hash', key: Buffer.from(k2) }, TEXT, v), a);
      }),
    );
  });

  it('binary outputs of fixed-size types have the type size, for every function', () => {
    const sizes: Array<[number, number, fc.Arbitrary<Buffer>]> = [
      [PgType.int2, 2, fc.integer({ min: -32768, max: 32767 }).map((x) => Buffer.from([(x >> 8) & 0xff, x & 0xff]))],
      [PgType.int4, 4, fc.integer().map(int32)],
      [PgType.int8, 8, fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((x) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(x);
        return b;
      })],
      [PgType.uuid, 16, fc.uint8Array({ minLength: 16, maxLength: 16 }).map((u) => Buffer.from(u))],
      [PgType.date, 4, fc.integer({ min: -2451545, max: 2147483494 }).map(int32)],
      [PgType.float8, 8, fc.double().map((x) => {
        const b = Buffer.alloc(8);
        b.writeDoubleBE(x);
        return b;
      })],
      [PgType.timestamptz, 8, fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.from(u))],
      [PgType.bool, 1, fc.constantFrom(Buffer.from([0]), Buffer.from([1]))],
    ];
    for (const [typeId, size, arb] of sizes) {
      const maskers = MASK_FUNCTIONS.filter((f) => f !== 'null').map((fn) => compileMasker({ fn, key: KEY }, col(typeId, -1, true)));
      fc.assert(
        fc.property(arb, (v) => {
          for (const m of maskers) assert.equal(m(v)!.length, size, String(typeId));
        }),
        { numRuns: 200 },
      );
    }
  });

  it('integer pseudonyms agree between text and binary results', () => {
    const t = compileMasker({ fn: 'hash', key: KEY }, col(PgType.int8));
    const b = compileMasker({ fn: 'hash', key: KEY }, col(PgType.int8, -1, true));
    const t4 = compileMasker({ fn: 'hash', key: KEY }, col(PgType.int4));
    const b4 = compileMasker({ fn: 'hash', key: KEY }, col(PgType.int4, -1, true));
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.integer(), (x, y) => {
        const buf = Buffer.alloc(8);
        buf.writeBigInt64BE(x);
        assert.equal(t(Buffer.from(String(x)))!.toString(), b(buf)!.readBigInt64BE().toString());
        assert.equal(t4(Buffer.from(String(y)))!.toString(), String(b4(int32(y))!.readInt32BE()));
      }),
    );
  });
});
