/**
 * Masked values against the real PostgreSQL of this machine (127.0.0.1:5432, trust): for every
 * supported type, sample value and masking function, PostgreSQL must accept the masked value in
 * both wire formats. Text outputs are bound as text parameters and binary outputs as binary
 * parameters of an INSERT into a column of the exact type (so varchar(n)/char(n) lengths are
 * enforced by assignment, which errors where a cast would silently truncate). The INSERT returns
 * PostgreSQL's own text output and its send-function bytes of the stored value, and the test
 * asserts that they equal the masker's text and binary outputs: both formats are canonical and
 * carry the same value. Inputs are PostgreSQL's own outputs of each sample in each format.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, PG_HOST, PG_PORT } from '../../test/helpers/pg.js';
import { compileMasker, type MaskSpec } from './functions.js';
import { type ColumnType, PgType } from './pg-types.js';
import { compileTextScrubber } from './text-scrubber.js';
import { MASK_CLASSES } from './classes.js';

const KEY = Buffer.from('pg-validity-test-key-0123456789ab');

/** Raw text for every column: the bytes PostgreSQL sent, not pg's parsed values. */
const RAW: pg.CustomTypesConfig = { getTypeParser: () => (v: string) => v };

interface Case {
  /** SQL type as written in a column definition. */
  readonly type: string;
  /** Sample values as SQL literals of that type. */
  readonly samples: readonly string[];
}

const CASES: readonly Case[] = [
  { type: 'text', samples: ["'alice@example.com'", "'héllo wörld 👋'", "''", "'a'"] },
  { type: 'varchar(5)', samples: ["'abc'", "'héllo'", "'a@b.c'"] },
  { type: 'varchar(40)', samples: ["'alice@example.com'", "'日本語のテキスト'"] },
  { type: 'varchar', samples: ["'bob@example.org'"] },
  { type: 'char(5)', samples: ["'ab'", "'héllo'"] },
  { type: 'char(40)', samples: ["'bob@example.com'"] },
  { type: 'char(1)', samples: ["'x'"] },
  { type: 'name', samples: ["'some_name'", "'ünïcödé'", `'${'n'.repeat(63)}'`] },
  { type: 'int2', samples: ['42', '-32768'] },
  { type: 'int4', samples: ['0', '-2147483648', '123456'] },
  { type: 'int8', samples: ['9223372036854775807', '-1'] },
  { type: 'numeric', samples: ['3.14159', "'NaN'"] },
  { type: 'numeric(10,2)', samples: ['123.45'] },
  { type: 'float4', samples: ['1.5'] },
  { type: 'float8', samples: ['-2.5e300'] },
  { type: 'money', samples: ['12.34'] },
  { type: 'bool', samples: ['true'] },
  { type: 'date', samples: ["'2024-02-29'", "'1999-12-31'", "'infinity'", "'0044-03-15 BC'"] },
  { type: 'timestamp', samples: ["'2024-01-15 10:30:00'"] },
  { type: 'timestamptz', samples: ["'2024-01-15 10:30:00+02'"] },
  { type: 'time', samples: ["'12:34:56'"] },
  { type: 'timetz', samples: ["'12:34:56+02'"] },
  { type: 'interval', samples: ["'1 day 2 hours'"] },
  { type: 'uuid', samples: ["'550e8400-e29b-41d4-a716-446655440000'"] },
  { type: 'inet', samples: ["'192.168.1.5'", "'10.0.0.1/8'", "'2001:db8:85a3::8a2e:370:7334'", "'::ffff:1.2.3.4'"] },
  { type: 'cidr', samples: ["'192.168.0.0/16'", "'2001:db8::/32'"] },
  { type: 'json', samples: [`'{"a": [1, 2, {"b": null}], "e": "x@y.io"}'`] },
  { type: 'jsonb', samples: [`'{"a": [1, 2, {"b": null}], "e": "x@y.io"}'`] },
  { type: 'bytea', samples: ["'\\xdeadbeef'::bytea", "''::bytea"] },
  { type: 'macaddr', samples: ["'08:00:2b:01:02:03'"] },
  { type: 'macaddr8', samples: ["'08:00:2b:01:02:03:04:05'"] },
  { type: 'xml', samples: ["'<a>b</a>'"] },
  { type: 'oid', samples: ['1259'] },
  { type: 'text[]', samples: ["'{a,b}'"] },
  { type: 'int4[]', samples: ["'{1,2}'"] },
  { type: 'citext', samples: ["'Alice@Example.com'"] },
];

const SPECS: readonly MaskSpec[] = [
  { fn: 'redact' },
  { fn: 'partial' },
  { fn: 'partial', keepFirst: 0, keepLast: 4, maskChar: '•' },
  { fn: 'email' },
  { fn: 'hash', key: KEY },
  { fn: 'null' },
  { fn: 'default' },
];

/** Where PostgreSQL prints a valid masked text differently (same value, another spelling). */
function textSpellingDiffers(type: string, spec: MaskSpec, masked: string): boolean {
  if (type === 'money') return true; // '0.00' is printed with the currency symbol
  return spec.fn === 'hash' && (type === 'inet' || type === 'cidr') && masked.includes(':'); // IPv6: we do not compress zero groups
}

const parseBytea = (s: string): Buffer => Buffer.from(s.slice(2), 'hex');

describe('masked values are valid for PostgreSQL (127.0.0.1:5432)', () => {
  let db: { name: string; drop: () => Promise<void> };
  let client: pg.Client;
  const hasCitext = { value: false };

  before(async () => {
    db = await createTestDatabase('gh_masking');
    client = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: db.name });
    await client.connect();
    // The formats the masking functions emit and drivers expect.
    await client.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET bytea_output = 'hex'; SET IntervalStyle = 'postgres'");
    hasCitext.value = (await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'citext'")).rowCount === 1;
    if (hasCitext.value) await client.query('CREATE EXTENSION citext');
  });

  after(async () => {
    await client?.end();
    await db?.drop();
  });

  /** Type facts from the catalog: OID, typmod and send function of a column type. */
  async function typeOf(type: string, table: string): Promise<{ oid: number; typmod: number; send: string }> {
    await client.query(`CREATE TEMP TABLE ${table} (v ${type})`);
    const r = await client.query<{ oid: number; typmod: number; send: string }>(
      `SELECT a.atttypid::int AS oid, a.atttypmod AS typmod, t.typsend::text AS send
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = $1::regclass AND a.attname = 'v'`,
      [table],
    );
    return r.rows[0]!;
  }

  let checked = 0;
  CASES.forEach((c, ci) => {
    it(`${c.type}: every function, text and binary`, async (t) => {
      if (c.type === 'citext' && !hasCitext.value) return t.skip('citext extension not available');
      const table = `m_${ci}`;
      const { oid, typmod, send } = await typeOf(c.type, table);
      const builtin = oid < 16384;
      for (const sample of c.samples) {
        // PostgreSQL's own text output and binary (send) form of the sample.
        const src = await client.query({ text: `SELECT (${sample})::${c.type} AS v, ${send}((${sample})::${c.type}) AS b`, types: RAW });
        const textIn = Buffer.from(src.rows[0].v as string, 'utf8');
        const binIn = parseBytea(src.rows[0].b as string);
        for (const spec of SPECS) {
          const what = `${c.type} ${sample} ${JSON.stringify({ ...spec, key: undefined })}`;
          const textCol: ColumnType = { typeId: oid, typmod, binary: false };
          // Non-built-in types are masked in binary only when declared textual (citext is).
          const binCol: ColumnType = { typeId: oid, typmod, binary: true, textual: !builtin };
          const maskedText = compileMasker(spec, textCol)(textIn);
          const maskedBin = compileMasker(spec, binCol)(binIn);
          if (spec.fn === 'null') {
            assert.equal(maskedText, null, what);
            assert.equal(maskedBin, null, what);
            continue;
          }
          assert.ok(maskedText !== null && maskedBin !== null, `${what}: every type here has a default`);
          // Text format: PostgreSQL's input function and the column's typmod must accept it.
          let stored: pg.QueryResult;
          try {
            stored = await client.query({ text: `INSERT INTO ${table} (v) VALUES ($1) RETURNING v, ${send}(v) AS b`, values: [maskedText.toString('utf8')], types: RAW });
          } catch (err) {
            assert.fail(`${what}: text ${JSON.stringify(maskedText.toString('utf8'))} rejected: ${(err as Error).message}`);
          }
          const printed = stored.rows[0].v as string;
          if (!textSpellingDiffers(c.type, spec, maskedText.toString('utf8'))) assert.equal(printed, maskedText.toString('utf8'), `${what}: text is canonical`);
          // The binary output carries the same value as the text output.
          assert.equal(maskedBin.toString('hex'), parseBytea(stored.rows[0].b as string).toString('hex'), `${what}: binary = send(text value)`);
          // Binary format: PostgreSQL's receive function must accept the bytes and send them back unchanged.
          let recv: pg.QueryResult;
          try {
            recv = await client.query({ text: `INSERT INTO ${table} (v) VALUES ($1) RETURNING ${send}(v) AS b`, values: [maskedBin], types: RAW });
          } catch (err) {
            assert.fail(`${what}: binary ${maskedBin.toString('hex')} rejected: ${(err as Error).message}`);
          }
          assert.equal(parseBytea(recv.rows[0].b as string).toString('hex'), maskedBin.toString('hex'), `${what}: binary is canonical`);
          checked++;
        }
      }
    });
  });

  it('built-in types without a default are masked to NULL', async () => {
    const { oid } = await typeOf('point', 'm_point');
    for (const spec of SPECS) assert.equal(compileMasker(spec, { typeId: oid, typmod: -1, binary: false })(Buffer.from('(1,2)')), null);
  });

  it('scrubbed json and jsonb stay valid for PostgreSQL', async () => {
    const doc = '{"note": "call +1 415 555 2671 or mail a.b@example.com", "ssn": 123456789, "k": "AKIAIOSFODNN7EXAMPLE"}';
    for (const type of ['json', 'jsonb', 'text', 'varchar(120)']) {
      const { oid, typmod, send } = await typeOf(type, `s_${type.replace(/\W/g, '_')}`);
      const src = await client.query({ text: `SELECT $1::${type} AS v, ${send}($1::${type}) AS b`, values: [doc], types: RAW });
      const out = compileTextScrubber(MASK_CLASSES, { typeId: oid, typmod, binary: false })(Buffer.from(src.rows[0].v as string))!.toString();
      assert.ok(!out.includes('a.b@example.com') && !out.includes('123456789') && !out.includes('AKIA'), out);
      const r = await client.query({ text: `SELECT $1::${type} AS v`, values: [out], types: RAW });
      assert.ok(r.rowCount === 1);
      const bin = compileTextScrubber(MASK_CLASSES, { typeId: oid, typmod, binary: true })(parseBytea(src.rows[0].b as string))!;
      const rb = await client.query({ text: `SELECT ${send}($1::${type}) AS b`, values: [bin], types: RAW });
      assert.ok(rb.rowCount === 1);
    }
  });

  it('checked a meaningful number of combinations', () => {
    assert.ok(checked > 300, `only ${checked} combinations checked`);
  });
});
