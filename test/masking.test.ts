/**
 * Dynamic data masking end to end: through the real proxy to the real PostgreSQL, a `mask` rule
 * for everyone outside `dba` (carol) rewrites result rows on the wire, and alice (dba) sees clear
 * values. Every function of the policy is asserted with its exact output where it is
 * deterministic (the `hash` key is a file this test writes, so pseudonyms are recomputed here
 * with node:crypto), in the simple and extended protocols, text and binary formats, through
 * expressions, CTEs, views, aliases, whole-row references, cursors and psql. Wherever carol reads,
 * `assertNoLeak` also checks that no clear sensitive value appears anywhere in what she got, so
 * every test but alice's fails if the masking stage is disabled.
 *
 * Regression tests for four leaks found here (whole-row references resolved with the catalog
 * session's search_path and folded case; a column added outside the proxy classified by its
 * alias; unresolvable columns left clear by a plan without a `secret` function; values read
 * by a function's body). Known limits that remain are in docs/masking.md.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { AuditEvent } from '../src/audit/event.js';
import { compileMasker, PgType } from '../src/masking/index.js';
import { openStore, storeSpec } from '../src/store/open.js';
import { createTestDatabase, direct, run } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';
import { dataRow, dataRowRaw, errorFields, fe, RawClient, rowDescription, summary, type BackendMessage } from './helpers/raw-client.js';

type Db = Awaited<ReturnType<typeof createTestDatabase>>;

/** The HMAC key of `hash` (masking.hash_key_file): the file's text, trimmed, as UTF-8 bytes. */
const KEY_TEXT = '6d61736b696e672d746573742d6b65792d6e6f742d666f722d70726f64756374696f6e21';
const KEY = Buffer.from(KEY_TEXT, 'utf8');

const POLICY = `
rules:
  - id: test.mask-pii
    description: mask personal data for everyone outside dba
    when: '!("dba" in identity.groups)'
    action: mask
    mask:
      email: email
      phone: partial
      payment_card: { fn: partial, keep_last: 4 }
      national_id: redact
      secret: "null"
      person_name: hash
      ip_address: hash
      date_of_birth: default
      free_text: scrub
`;

/** Column by column; classes come from names (email, phone, ssn, card_number, api_key, ip), config and a name rule. */
const SCHEMA = `
CREATE TABLE customers (
  id int PRIMARY KEY,
  name text,
  email text,
  phone varchar(20),
  ssn char(11),
  card_number text,
  api_key text,
  notes text,
  born date,
  ip inet,
  balance numeric(10,2),
  uuid uuid,
  contact_info text,
  support_email text
);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(10,2));
CREATE VIEW customers_v AS SELECT id, email FROM customers;
CREATE VIEW contacts_v AS SELECT id, email AS contact, upper(email) AS shout, id * 2 AS twice FROM customers;
CREATE TABLE wide (id int PRIMARY KEY, email text);
CREATE TABLE many (id int PRIMARY KEY, email text);
-- Same-named tables in two schemas, and a quoted mixed-case name beside its lower-case twin:
-- whole-row references must be classified by the table the client's search_path picks.
CREATE TABLE ledger (id int, amount numeric);
CREATE SCHEMA s2;
CREATE TABLE s2.ledger (id int, email text);
CREATE TABLE contacts (id int, note text);
CREATE TABLE "Contacts" (id int, email text);
INSERT INTO ledger VALUES (1, 9.99);
INSERT INTO s2.ledger VALUES (1, 'alice@example.com');
INSERT INTO contacts VALUES (1, 'hello');
INSERT INTO "Contacts" VALUES (1, 'bob@example.org');
`;

interface Customer {
  id: number;
  name: string | null;
  email: string | null;
  phone: string | null;
  ssn: string | null;
  card_number: string | null;
  api_key: string | null;
  notes: string | null;
  born: string | null;
  ip: string | null;
  balance: string | null;
  uuid: string | null;
  contact_info: string | null;
  support_email: string | null;
}

const CUSTOMERS: Customer[] = [
  {
    id: 1,
    name: 'Alice Smith',
    email: 'alice@example.com',
    phone: '+1 415-555-2671',
    ssn: '123-45-6789',
    card_number: '4111 1111 1111 1111',
    api_key: 'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
    notes: 'Call me at bob.jones@example.org please',
    born: '1980-05-17',
    ip: '192.168.1.10',
    balance: '100.50',
    uuid: '8c7a4f40-59d1-4c8e-9d0e-1f1b2a3c4d5e',
    contact_info: 'alice.home@example.net',
    support_email: 'help@example.com',
  },
  {
    id: 2,
    name: 'Bob Jones',
    email: 'bob@example.org',
    phone: '020 7946 0958',
    ssn: '234-56-7890',
    card_number: '5500 0000 0000 0004',
    api_key: 'ghp_0123456789abcdefghijABCDEFGHIJ012345',
    notes: 'no personal data here',
    born: '1975-12-01',
    ip: '2001:db8:85a3::8a2e:370:7334',
    balance: '-3.00',
    uuid: '0b6f1d3e-7a5c-4e2f-8d9a-6c4b2e1f0a9b',
    contact_info: 'bob.work@example.org',
    support_email: 'desk@example.org',
  },
  // Same name as customer 1: equal pseudonyms.
  {
    id: 3,
    name: 'Alice Smith',
    email: 'alice2@example.com',
    phone: '555-2671',
    ssn: '345-67-8901',
    card_number: '4012888888881881',
    api_key: 'xoxb-1234567890-abcdefghij',
    notes: 'card 4111 1111 1111 1111 on file',
    born: '1990-01-31',
    ip: '10.1.2.3',
    balance: '0.00',
    uuid: 'f47ac10b-58cc-4372-a567-0e02b2c3d479',
    contact_info: '+44 20 7946 0000',
    support_email: 'help@example.com',
  },
  // Multibyte text.
  {
    id: 4,
    name: '日本 太郎 🎌',
    email: 'renée@example.fr',
    phone: '☎ 06 12 34 56 78 😀',
    ssn: '456-78-9012',
    card_number: '4111-1111-1111-1111',
    api_key: 'clé-secrète-日本-🔑',
    notes: 'é日本😀 écrire à zoë@example.com 🎉',
    born: '2000-02-29',
    ip: '172.16.0.1',
    balance: '12.34',
    uuid: '00000000-0000-4000-8000-000000000001',
    contact_info: 'josé@example.es',
    support_email: 'ayuda@example.es',
  },
  // NULLs stay NULL.
  { id: 5, name: null, email: null, phone: null, ssn: null, card_number: null, api_key: null, notes: null, born: null, ip: null, balance: null, uuid: null, contact_info: null, support_email: null },
];

const COLUMNS = Object.keys(CUSTOMERS[0]!) as Array<keyof Customer>;

/** Orders: customer 1 has two, customer 3 one, customer 2 one. */
const ORDERS = [
  [1, 1, '10.00'],
  [2, 1, '20.00'],
  [3, 2, '5.00'],
  [4, 3, '7.50'],
] as const;

// ---- expected masked values, computed independently of src/masking where the rule is simple ----

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** First `chars` base32 characters of the HMAC-SHA-256 of `value` under the test key. */
function hmac32(value: string | Buffer, chars = 16): string {
  const d = createHmac('sha256', KEY).update(value).digest();
  let out = '';
  let acc = 0;
  let bits = 0;
  let i = 0;
  while (out.length < chars) {
    if (bits < 5) {
      acc = ((acc << 8) | d[i++]!) & 0xffff;
      bits += 8;
    }
    out += BASE32[(acc >>> (bits - 5)) & 31];
    bits -= 5;
  }
  return out;
}

/** `hash` of a text value: h_<16 base32>. */
const hashText = (v: string | null): string | null => (v === null ? null : `h_${hmac32(v)}`);

/** `partial`: keep `first` and `last` code points, mask the rest; too short a value is masked whole. */
function partial(v: string | null, first: number, last: number): string | null {
  if (v === null) return null;
  const cps = [...v];
  const n = cps.length;
  const f = first + last < n ? first : 0;
  const l = first + last < n ? last : 0;
  return cps.slice(0, f).join('') + '*'.repeat(n - f - l) + cps.slice(n - l).join('');
}

/** `email`: first code point of the local part kept (when it has two or more), the domain kept. */
function email(v: string | null): string | null {
  if (v === null) return null;
  const at = v.lastIndexOf('@');
  const local = [...v.slice(0, at)];
  return (local.length >= 2 ? local[0]! + '*'.repeat(local.length - 1) : '*') + v.slice(at);
}

/** `hash` of an inet, in text or binary (from the masking library: its canonical form is internal). */
function hashInet(v: string | null, binary = false): Buffer | null {
  const m = compileMasker({ fn: 'hash', key: KEY }, { typeId: PgType.inet, typmod: -1, binary });
  return m(v === null ? null : binary ? inetBinary(v) : Buffer.from(v));
}

/** An inet host address in PostgreSQL's binary format (family, bits, is_cidr, length, address). */
function inetBinary(v: string): Buffer {
  if (v.includes(':')) {
    const [head, tail] = v.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
    const b = Buffer.alloc(20);
    b.set([3, 128, 0, 16]);
    groups.forEach((g, i) => b.writeUInt16BE(g, 4 + 2 * i));
    return b;
  }
  return Buffer.from([2, 32, 0, 4, ...v.split('.').map(Number)]);
}

/** Free-text scrub: each detected run replaced code point by code point. */
function scrub(v: string | null, runs: string[]): string | null {
  if (v === null) return null;
  let out = v;
  for (const r of runs) out = out.replace(r, '*'.repeat([...r].length));
  return out;
}

const SCRUBBED: Record<number, string[]> = { 1: ['bob.jones@example.org'], 2: [], 3: ['4111 1111 1111 1111'], 4: ['zoë@example.com'], 5: [] };

/** What carol must see for a customer row, column by column (text format). */
function masked(c: Customer): Record<keyof Customer, string | number | null> {
  return {
    id: c.id,
    name: hashText(c.name),
    email: email(c.email),
    phone: partial(c.phone, 0, 2),
    ssn: c.ssn === null ? null : '*'.repeat(11), // redact of char(11): its width
    card_number: partial(c.card_number, 0, 4),
    api_key: null, // secret: null
    notes: scrub(c.notes, SCRUBBED[c.id]!),
    born: c.born === null ? null : '1900-01-01', // default of date
    ip: c.ip === null ? null : hashInet(c.ip)!.toString('latin1'),
    balance: c.balance,
    uuid: c.uuid,
    // masking.columns: contact_info is an email (a phone-shaped value falls back to partial 1/1).
    contact_info: c.contact_info === null ? null : c.contact_info.includes('@') ? email(c.contact_info) : partial(c.contact_info, 1, 1),
    support_email: c.support_email, // masking.columns: none
  };
}

/** The clear sensitive values carol must never see, anywhere. */
const SENSITIVE: string[] = CUSTOMERS.flatMap((c) => [c.name, c.email, c.phone, c.ssn, c.card_number, c.api_key, c.born, c.ip, c.contact_info])
  .concat(['bob.jones@example.org', 'zoë@example.com'])
  .filter((v): v is string => v !== null)
  // Whole values and their distinctive parts (the local part of an email is what email() hides).
  .flatMap((v) => (v.includes('@') ? [v, v.slice(0, v.lastIndexOf('@'))] : [v]))
  .filter((v) => v.length >= 4);

/** Assert that no clear sensitive value (nor its upper-case form) appears in `what`. */
function assertNoLeak(what: unknown, label = 'result'): void {
  // Buffers reach a replacer already turned into { type: 'Buffer', data: [...] } by their toJSON.
  const bytes = (v: unknown): v is { type: 'Buffer'; data: number[] } => typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data);
  const text = typeof what === 'string' ? what : JSON.stringify(what, (_k, v: unknown) => (bytes(v) ? Buffer.from(v.data).toString('utf8') : v));
  for (const s of SENSITIVE) {
    assert.ok(!text.includes(s), `${label} leaks the clear value ${JSON.stringify(s)}: ${text.slice(0, 300)}`);
    assert.ok(!text.includes(s.toUpperCase()), `${label} leaks the clear value ${JSON.stringify(s.toUpperCase())}`);
  }
}

/** Every value as the raw text PostgreSQL sent (no date or numeric parsing). */
const RAW_TYPES = { getTypeParser: () => (v: string | Buffer) => v } as unknown as pg.CustomTypesConfig;

/** A query with binary results (pg's QueryConfig type does not declare `binary`). */
function binaryQuery(c: pg.Client, text: string, values: unknown[]): Promise<pg.QueryResult> {
  return c.query({ text, values, binary: true } as pg.QueryConfig);
}

describe('masking through the proxy', () => {
  let db: Db;
  let proxy: TestProxy;
  const dir = mkdtempSync(join(tmpdir(), 'gh-mask-'));
  const stateDir = join(dir, 'state');

  /** A client of `user` on the production connection, values as raw text. */
  const client = (user: string): Promise<pg.Client> => proxy.client({ user, database: 'prod', types: RAW_TYPES });

  before(async () => {
    db = await createTestDatabase('gh_mask');
    await direct(db.name, SCHEMA);
    for (const c of CUSTOMERS) {
      await direct(db.name, `INSERT INTO customers (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`, COLUMNS.map((k) => c[k]));
    }
    for (const o of ORDERS) await direct(db.name, 'INSERT INTO orders VALUES ($1, $2, $3)', [...o]);
    await direct(db.name, `INSERT INTO wide VALUES (1, repeat('w', 1048576)), (2, repeat('é', 524288))`);
    await direct(db.name, `INSERT INTO many SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 100000) g`);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, POLICY);
    const keyFile = join(dir, 'masking.key');
    writeFileSync(keyFile, `${KEY_TEXT}\n`, { mode: 0o600 });
    proxy = await startProxy({
      database: db.name,
      stateDir,
      logStatements: false,
      extraYaml: `policy: { files: [${policyFile}], watch: false }
audit: { flush_delay: 20ms }
masking:
  hash_key_file: ${keyFile}
  columns:
    public.customers.name: person_name
    customers.notes: free_text
    customers.contact_info: email
    customers.support_email: none
  name_rules:
    - { pattern: born, class: date_of_birth }
`,
    });
  });

  after(async () => {
    await proxy?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('alice (dba) is exempt: she sees every value in clear', async () => {
    const c = await client('alice');
    const r = await c.query(`SELECT ${COLUMNS.join(', ')} FROM customers ORDER BY id`);
    assert.deepEqual(
      r.rows.map((row) => ({ ...row, id: Number(row.id) })),
      CUSTOMERS,
    );
    const v = await c.query('SELECT email FROM customers_v WHERE id = 1');
    assert.equal(v.rows[0].email, 'alice@example.com');
  });

  it('simple protocol: SELECT * gives carol every function applied, exactly', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT * FROM customers ORDER BY id');
    assert.deepEqual(r.fields.map((f) => f.name), COLUMNS);
    assert.deepEqual(
      r.rows.map((row) => ({ ...row, id: Number(row.id) })),
      CUSTOMERS.map(masked),
    );
    assertNoLeak(r.rows);
  });

  it('columns whose maskers write straight from the frame (email, partial, redact, default): values between, NULLs and lengths that change', async () => {
    const c = await client('carol');
    // No "null" or "hash" function among these columns, so rows are rewritten without a Buffer
    // per value; ssn::text is redacted to 8 characters (from 11), so every row changes length.
    const cols = ['id', 'email', 'balance', 'ssn', 'phone', 'born', 'support_email'] as const;
    const r = await c.query(`SELECT id, email, balance, ssn::text AS ssn_text, ssn, phone, born, support_email FROM customers ORDER BY id`);
    const want = CUSTOMERS.map((cu) => {
      const m = masked(cu);
      return { ...Object.fromEntries(cols.map((k) => [k, m[k]])), ssn_text: cu.ssn === null ? null : '********' };
    });
    assert.deepEqual(
      r.rows.map((row) => ({ ...row, id: Number(row.id) })),
      want,
    );
    assertNoLeak(r.rows);
  });

  it('extended protocol: parameters, and a named prepared statement executed twice', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT id, name, email, phone, card_number FROM customers WHERE id = $1', [1]);
    const m = masked(CUSTOMERS[0]!);
    assert.deepEqual(r.rows, [{ id: '1', name: m.name, email: m.email, phone: m.phone, card_number: m.card_number }]);
    const q = { name: 'q1', text: 'SELECT id, email, ssn, ip FROM customers WHERE id = ANY($1::int[]) ORDER BY id' };
    for (let i = 0; i < 2; i++) {
      const rr = await c.query({ ...q, values: [[1, 2]] });
      assert.deepEqual(
        rr.rows,
        CUSTOMERS.slice(0, 2).map(masked).map((x) => ({ id: String(x.id), email: x.email, ssn: x.ssn, ip: x.ip })),
        `execution ${i + 1}`,
      );
      assertNoLeak(rr.rows, `execution ${i + 1}`);
    }
  });

  it('extended protocol without Describe: Gatehouse describes the portal itself and the client sees only its own messages', async () => {
    const raw = await RawClient.connect({ port: proxy.port, user: 'carol', password: 'carol-pw', database: 'prod' });
    try {
      const m = masked(CUSTOMERS[0]!);
      raw.write(fe.parse('s1', 'SELECT email, phone FROM customers WHERE id = $1'), fe.bind('', 's1', ['1']), fe.execute('', 0), fe.sync());
      const first = await raw.untilReady();
      assert.deepEqual(first.map(summary), ['1', '2', `D:${JSON.stringify([m.email, m.phone])}`, 'C:SELECT 1', 'Z:I']);
      // A second execution of the same statement: Bind + Execute only (a driver caching the description).
      raw.write(fe.bind('', 's1', ['3']), fe.execute('', 0), fe.sync());
      const second = await raw.untilReady();
      const m3 = masked(CUSTOMERS[2]!);
      assert.deepEqual(second.map(summary), ['2', `D:${JSON.stringify([m3.email, m3.phone])}`, 'C:SELECT 1', 'Z:I']);
      // A named portal, and a pipeline of two statements in one Sync, none described.
      raw.write(fe.bind('p', 's1', ['2']), fe.execute('p', 0), fe.parse('', 'SELECT card_number, balance FROM customers WHERE id = $1'), fe.bind('', '', ['1']), fe.execute('', 0), fe.sync());
      const third = await raw.untilReady();
      const m2 = masked(CUSTOMERS[1]!);
      assert.deepEqual(third.map(summary), [
        '2',
        `D:${JSON.stringify([m2.email, m2.phone])}`,
        'C:SELECT 1',
        '1',
        '2',
        `D:${JSON.stringify([m.card_number, '100.50'])}`,
        'C:SELECT 1',
        'Z:I',
      ]);
      assertNoLeak([...first, ...second, ...third].map((x) => x.body.toString('utf8')));
    } finally {
      await raw.terminate();
    }
  });

  it('extended protocol with a row limit (PortalSuspended) in a transaction: every batch masked', async () => {
    const raw = await RawClient.connect({ port: proxy.port, user: 'carol', password: 'carol-pw', database: 'prod' });
    try {
      raw.write(fe.query('BEGIN'));
      await raw.untilReady();
      raw.write(fe.parse('', 'SELECT id, email FROM customers ORDER BY id'), fe.bind('p', '', []), fe.execute('p', 2), fe.sync());
      const a = await raw.untilReady();
      raw.write(fe.execute('p', 2), fe.sync());
      const b = await raw.untilReady();
      raw.write(fe.execute('p', 0), fe.sync());
      const c = await raw.untilReady();
      raw.write(fe.query('COMMIT'));
      await raw.untilReady();
      const rows = [...a, ...b, ...c].filter((x) => x.type === 'D').map(dataRow);
      assert.deepEqual(
        rows,
        CUSTOMERS.map((x) => [String(x.id), email(x.email)]),
      );
      assert.deepEqual([...a, ...b].filter((x) => x.type === 's').length, 2, 'two PortalSuspended');
    } finally {
      await raw.terminate();
    }
  });

  it('binary results: text columns masked as in text format; inet pseudonyms equal in both formats', async () => {
    const c = await client('carol');
    const r = await binaryQuery(c, 'SELECT name, email, phone, ssn FROM customers WHERE id = $1', [4]);
    const m = masked(CUSTOMERS[3]!);
    const row = r.rows[0] as Record<string, Buffer>;
    assert.ok(Buffer.isBuffer(row.email), 'binary values arrive as bytes');
    assert.deepEqual(
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v.toString('utf8')])),
      { name: m.name, email: m.email, phone: m.phone, ssn: m.ssn },
    );
    // Exact bytes (pg decodes binary values as UTF-8 first, so use the raw client for inet/uuid/date).
    const raw = await RawClient.connect({ port: proxy.port, user: 'carol', password: 'carol-pw', database: 'prod' });
    try {
      raw.write(fe.parse('', 'SELECT ip, uuid, born, api_key, id FROM customers ORDER BY id'), fe.bind('', '', [], [1]), fe.describe('P', ''), fe.execute('', 0), fe.sync());
      const msgs = await raw.untilReady();
      const cols = rowDescription(msgs.find((x) => x.type === 'T')!);
      assert.deepEqual(cols.map((x) => x.format), [1, 1, 1, 1, 1]);
      const rows = msgs.filter((x) => x.type === 'D').map(dataRowRaw);
      assert.equal(rows.length, CUSTOMERS.length);
      rows.forEach((values, i) => {
        const cust = CUSTOMERS[i]!;
        assert.deepEqual(values[0], hashInet(cust.ip, true), `ip of ${cust.id}`);
        if (cust.ip !== null) {
          // The same pseudonym as in text format: 10.a.b.c <-> bytes 10, a, b, c.
          const text = masked(cust).ip as string;
          if (!text.includes(':')) assert.equal([...values[0]!.subarray(4)].join('.'), text);
        }
        assert.equal(values[1] === null ? null : values[1].toString('hex'), cust.uuid === null ? null : cust.uuid.replace(/-/g, ''), 'uuid is not sensitive');
        // date default in binary: days from 2000-01-01 to 1900-01-01 = -36524.
        assert.equal(values[2] === null ? null : values[2].readInt32BE(0), cust.born === null ? null : -36524);
        assert.equal(values[3], null, 'secret: null');
      });
    } finally {
      await raw.terminate();
    }
  });

  it('hash: the same value gets the same pseudonym across queries and sessions; GROUP BY and joins still group', async () => {
    const c1 = await client('carol');
    const c2 = await client('carol');
    const a = await c1.query('SELECT id, name FROM customers ORDER BY id');
    const b = await c2.query({ text: 'SELECT id, name FROM customers WHERE id = ANY($1::int[]) ORDER BY id', values: [[1, 3]] });
    const alice = hashText('Alice Smith')!;
    assert.equal(a.rows[0].name, alice);
    assert.equal(a.rows[2].name, alice, 'two customers with the same name: the same pseudonym');
    assert.notEqual(a.rows[1].name, alice);
    assert.deepEqual(b.rows.map((r) => r.name), [alice, alice], 'another session, another protocol: the same pseudonym');
    // GROUP BY in SQL groups the clear values; the output is the pseudonym of each group.
    const g = await c1.query('SELECT name, count(*)::int AS n FROM customers GROUP BY name ORDER BY n DESC, name');
    assert.deepEqual(g.rows[0], { name: alice, n: '2' });
    assertNoLeak(g.rows);
    // A join through the proxy: the pseudonym of the customer's name is the same as above.
    const j = await c2.query('SELECT c.name AS who, sum(o.total)::text AS spent FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY sum(o.total)');
    assert.deepEqual(j.rows, [
      { who: hashText('Bob Jones'), spent: '5.00' },
      { who: alice, spent: '37.50' },
    ]);
    // Client-side grouping on the masked column still works.
    const counts = new Map<string, number>();
    for (const r of a.rows) if (r.name !== null) counts.set(r.name, (counts.get(r.name) ?? 0) + 1);
    assert.equal(counts.get(alice), 2);
    // ip (inet) pseudonyms are stable too.
    const ip1 = await c1.query('SELECT ip FROM customers WHERE id = 1');
    const ip2 = await c2.query('SELECT ip FROM customers WHERE id = $1', [1]);
    assert.equal(ip1.rows[0].ip, ip2.rows[0].ip);
    assert.match(ip1.rows[0].ip, /^10\.\d+\.\d+\.\d+$/);
  });

  it('expressions, CTEs and subqueries derive their class from their sources', async () => {
    const c = await client('carol');
    const one = (sql: string): Promise<unknown[]> => c.query({ text: sql, rowMode: 'array' }).then((r) => r.rows.map((row: unknown[]) => row[0]));
    assert.deepEqual(await one('SELECT upper(email) FROM customers WHERE id = 1'), ['A****@EXAMPLE.COM']);
    assert.deepEqual(await one(`SELECT email || '' FROM customers WHERE id = 1`), ['a****@example.com']);
    assert.deepEqual(await one(`SELECT lower(email) AS e FROM customers WHERE id = 2`), ['b**@example.org']);
    assert.deepEqual(await one('WITH x AS (SELECT email AS e FROM customers) SELECT upper(e) FROM x ORDER BY 1 LIMIT 1'), ['A*****@EXAMPLE.COM']);
    assert.deepEqual(await one('WITH x AS (SELECT id, email FROM customers) SELECT email FROM x WHERE id = 1'), ['a****@example.com']);
    assert.deepEqual(await one('SELECT e FROM (SELECT email AS e, id FROM customers) s WHERE id = 2'), ['b**@example.org']);
    assert.deepEqual(await one('SELECT (SELECT email FROM customers WHERE id = 1)'), ['a****@example.com']);
    assert.deepEqual(await one('SELECT (SELECT max(email) FROM customers)'), ['r****@example.fr']);
    // Strictest source wins: email (email) and ssn (national_id) -> redact.
    assert.deepEqual(await one(`SELECT email || ssn FROM customers WHERE id = 1`), ['********']);
    // The same with parameters (extended protocol).
    const r = await c.query({ text: 'SELECT upper(email) AS u, coalesce(phone, $2) AS p FROM customers WHERE id = $1', values: [1, 'none'] });
    assert.deepEqual(r.rows, [{ u: 'A****@EXAMPLE.COM', p: partial('+1 415-555-2671', 0, 2) }]);
    // Not sensitive: computed from balance only.
    assert.deepEqual(await one('SELECT balance * 2 FROM customers WHERE id = 1'), ['201.00']);
  });

  it('a view: its columns are classified by their own names', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT * FROM customers_v ORDER BY id');
    assert.deepEqual(
      r.rows,
      CUSTOMERS.map((x) => ({ id: String(x.id), email: email(x.email) })),
    );
    const e = await c.query('SELECT v.email AS mail FROM customers_v v WHERE v.id = $1', [2]);
    assert.deepEqual(e.rows, [{ mail: 'b**@example.org' }]);
    assertNoLeak([r.rows, e.rows]);
  });

  it('a view that renames or computes from a sensitive column: classified through its definition', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT id, contact, shout, twice FROM contacts_v ORDER BY id');
    assert.deepEqual(
      r.rows.map((x) => x.contact),
      CUSTOMERS.map((x) => email(x.email)),
    );
    assert.ok(r.rows.every((x) => !String(x.shout).includes('@') || String(x.shout).includes('*')), 'upper(email) in the view is masked');
    assert.deepEqual(
      r.rows.map((x) => x.twice),
      CUSTOMERS.map((x) => String(x.id * 2)),
      'a view column computed from no sensitive column stays clear',
    );
    assertNoLeak(r.rows);
  });

  it('table and column aliases in joins do not unmask', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT c.email AS contact, c.phone AS "x", o.total FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id');
    assert.deepEqual(r.rows, [
      { contact: 'a****@example.com', x: partial('+1 415-555-2671', 0, 2), total: '10.00' },
      { contact: 'a****@example.com', x: partial('+1 415-555-2671', 0, 2), total: '20.00' },
      { contact: 'b**@example.org', x: partial('020 7946 0958', 0, 2), total: '5.00' },
      { contact: 'a*****@example.com', x: partial('555-2671', 0, 2), total: '7.50' },
    ]);
    const s = await c.query('SELECT c.* FROM orders o, customers AS c WHERE o.customer_id = c.id AND o.id = 3');
    assert.deepEqual({ ...s.rows[0], id: Number(s.rows[0].id) }, masked(CUSTOMERS[1]!));
    assertNoLeak([r.rows, s.rows]);
  });

  it('whole-row references (row_to_json, c::text) do not leak: the strictest class of the row applies', async () => {
    const c = await client('carol');
    const j = await c.query('SELECT row_to_json(c) AS j FROM customers c ORDER BY id');
    const t = await c.query('SELECT c::text AS t FROM customers c ORDER BY id');
    const e = await c.query({ text: 'SELECT to_jsonb(c.*) AS j FROM customers c WHERE id = $1', values: [1] });
    const v = await c.query('SELECT row_to_json(v) AS j FROM customers_v v ORDER BY id');
    // The row holds an api_key (secret), whose function here is null.
    assert.deepEqual(j.rows.map((r) => r.j), CUSTOMERS.map(() => null));
    assert.deepEqual(t.rows.map((r) => r.t), CUSTOMERS.map(() => null));
    assert.deepEqual(e.rows, [{ j: null }]);
    // The view's row holds an email: the email function on a json value gives json's default, {}.
    assert.deepEqual(v.rows.map((r) => r.j), CUSTOMERS.map(() => '{}'));
    assertNoLeak([j.rows, t.rows, e.rows, v.rows]);
  });

  it('COPY ... TO is refused for carol (gatehouse.mask-copy, 42501), not for alice', async () => {
    const c = await client('carol');
    for (const sql of ['COPY customers TO STDOUT', 'COPY (SELECT email FROM customers) TO STDOUT', 'copy customers_v to stdout with (format csv)']) {
      await assert.rejects(c.query(sql), (err: pg.DatabaseError) => {
        assert.equal(err.code, '42501', `${sql}: ${err.message}`);
        assert.match(err.message, /COPY \.\.\. TO is not available while your results are masked \(rule test\.mask-pii\); use SELECT/);
        assert.equal(err.detail, 'Refused by Gatehouse rule "gatehouse.mask-copy".');
        return true;
      });
    }
    // The session goes on.
    assert.deepEqual((await c.query('SELECT email FROM customers WHERE id = 1')).rows, [{ email: 'a****@example.com' }]);
    const psql = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\copy customers to stdout'], { env: proxy.env('carol', 'prod') });
    assert.notEqual(psql.code, 0);
    assert.match(psql.stderr, /gatehouse\.mask-copy|not available while your results are masked/);
    assertNoLeak(psql.stdout, 'psql \\copy');
    const ok = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'COPY (SELECT email FROM customers WHERE id = 1) TO STDOUT'], { env: proxy.env('alice', 'prod') });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'alice@example.com\n');
  });

  it('NULL values stay NULL under partial, email, redact, hash, default and scrub', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT * FROM customers WHERE id = 5');
    assert.deepEqual(r.rows[0], { ...Object.fromEntries(COLUMNS.map((k) => [k, null])), id: '5' });
    const b = await binaryQuery(c, 'SELECT name, email, phone, ssn FROM customers WHERE id = $1', [5]);
    assert.deepEqual(b.rows[0], { name: null, email: null, phone: null, ssn: null });
    // Beside a non-NULL value of the same column in the same result.
    const both = await c.query('SELECT email, phone FROM customers WHERE id IN (1, 5) ORDER BY id');
    assert.deepEqual(both.rows, [
      { email: 'a****@example.com', phone: partial('+1 415-555-2671', 0, 2) },
      { email: null, phone: null },
    ]);
  });

  it('multibyte text stays valid UTF-8, length kept in characters', async () => {
    const raw = await RawClient.connect({ port: proxy.port, user: 'carol', password: 'carol-pw', database: 'prod' });
    try {
      raw.write(fe.query('SELECT name, email, phone, card_number, notes, contact_info, api_key FROM customers WHERE id = 4'));
      const msgs = await raw.untilReady();
      const values = dataRowRaw(msgs.find((x) => x.type === 'D')!);
      const strict = new TextDecoder('utf-8', { fatal: true });
      const text = values.map((v) => (v === null ? null : strict.decode(v)));
      const m = masked(CUSTOMERS[3]!);
      assert.deepEqual(text, [m.name, m.email, m.phone, m.card_number, m.notes, m.contact_info, null]);
      assert.equal(text[1], 'r****@example.fr');
      assert.equal(text[2], '*'.repeat(16) + ' 😀', 'partial keeps the last 2 code points: a space and the emoji');
      assert.equal(text[4], `é日本😀 écrire à ${'*'.repeat(15)} 🎉`);
      assert.equal(text[5], 'j***@example.es');
      assertNoLeak(text);
    } finally {
      await raw.terminate();
    }
  });

  it('very wide rows: a 1 MB value is masked whole', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT id, email FROM wide ORDER BY id');
    assert.equal(r.rows.length, 2);
    // Not email-shaped: partial, keeping the first and last code point.
    assert.equal(r.rows[0].email, 'w' + '*'.repeat(1048576 - 2) + 'w');
    assert.equal(r.rows[1].email, 'é' + '*'.repeat(524288 - 2) + 'é');
    const b = await binaryQuery(c, 'SELECT email FROM wide WHERE id = $1', [2]);
    assert.equal((b.rows[0].email as Buffer).toString('utf8'), 'é' + '*'.repeat(524288 - 2) + 'é');
  });

  it('100,000 rows stream masked and in order (simple and extended protocol)', async () => {
    const c = await client('carol');
    const expected = (i: number): string => `u${'*'.repeat(`user${i}`.length - 1)}@example.com`;
    const check = (rows: Array<{ id: string; email: string }>, label: string): void => {
      assert.equal(rows.length, 100_000, label);
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!;
        if (row.id !== String(i + 1) || row.email !== expected(i + 1)) assert.fail(`${label}: row ${i}: ${JSON.stringify(row)}, expected email ${expected(i + 1)}`);
      }
    };
    check((await c.query('SELECT id, email FROM many ORDER BY id')).rows, 'simple');
    check((await c.query({ text: 'SELECT id, email FROM many WHERE id > $1 ORDER BY id', values: [0] })).rows, 'extended');
    // Through psql, fetching in batches of 1000 (FETCH_COUNT).
    const p = await run('psql', ['-X', '-At', '-v', 'FETCH_COUNT=1000', '-c', 'SELECT id, email FROM many ORDER BY id'], { env: proxy.env('carol', 'prod'), timeoutMs: 120_000 });
    assert.equal(p.code, 0, p.stderr);
    const lines = p.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 100_000);
    assert.equal(lines[0], `1|${expected(1)}`);
    assert.equal(lines[99_999], `100000|${expected(100000)}`);
    assert.ok(!p.stdout.includes('user1@'), 'no clear email in the psql output');
  });

  it('100,000 rows rebuilt in the arena stay intact, read at once or after the client stops reading for a while', async () => {
    // api_key masks to NULL and name to a pseudonym of another length: every row is rebuilt in
    // the relay's arenas. A client that stops reading makes the proxy's writes back up while
    // they still point into those arenas.
    const sql = 'SELECT m.id, m.email, c.api_key, c.name FROM many m CROSS JOIN customers c WHERE c.id = 1 ORDER BY m.id';
    const expected = (i: number): string => `u${'*'.repeat(`user${i}`.length - 1)}@example.com`;
    const check = (rows: Array<{ id: string; email: string; api_key: string | null; name: string }>, label: string): void => {
      assert.equal(rows.length, 100_000, label);
      const name = rows[0]!.name;
      assert.match(name, /^h_[a-z2-7]{16}$/, label);
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!;
        if (row.id !== String(i + 1) || row.email !== expected(i + 1) || row.api_key !== null || row.name !== name) assert.fail(`${label}: row ${i}: ${JSON.stringify(row)}`);
      }
    };
    const c = await client('carol');
    check((await c.query(sql)).rows, 'read at once');
    const socket = (c as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
    // A client that stops reading for a while: the proxy's writes back up, then drain.
    const pending = c.query(sql);
    socket.pause();
    await new Promise((r) => setTimeout(r, 300));
    socket.resume();
    check((await pending).rows, 'read after a pause');
    check((await c.query(sql)).rows, 'read at once again');
  });

  it('explicit masking.columns: a non-obvious name classified by configuration, and a "none" exemption', async () => {
    const c = await client('carol');
    const r = await c.query('SELECT contact_info, support_email, contact_info AS anything FROM customers WHERE id IN (1, 2) ORDER BY id');
    assert.deepEqual(r.rows, [
      { contact_info: 'a*********@example.net', support_email: 'help@example.com', anything: 'a*********@example.net' },
      { contact_info: 'b*******@example.org', support_email: 'desk@example.org', anything: 'b*******@example.org' },
    ]);
    // A column named like an email but exempted stays clear in expressions too.
    const u = await c.query({ text: 'SELECT upper(support_email) AS u FROM customers WHERE id = 1', rowMode: 'array' });
    assert.deepEqual(u.rows, [['HELP@EXAMPLE.COM']]);
  });

  it('a multi-statement simple query: both result sets masked', async () => {
    const c = await client('carol');
    const results = (await c.query('SELECT id, email FROM customers WHERE id = 1; SELECT phone, ssn, upper(email) AS up, balance FROM customers WHERE id = 2')) as unknown as pg.QueryResult[];
    assert.equal(results.length, 2);
    assert.deepEqual(results[0]!.rows, [{ id: '1', email: 'a****@example.com' }]);
    const second = results[1]!.rows[0];
    assert.equal(second.phone, partial('020 7946 0958', 0, 2));
    assert.equal(second.ssn, '*'.repeat(11));
    assert.equal(second.balance, '-3.00');
    // A computed column of a multi-statement query has no lineage: masked as a secret (null here) or as an email.
    assert.ok(second.up === null || second.up === 'B**@EXAMPLE.ORG', `upper(email): ${second.up}`);
    assertNoLeak(results.map((x) => x.rows));
    // psql sends the same as one Query message.
    const p = await run('psql', ['-X', '-At', '-c', 'SELECT email FROM customers WHERE id = 1; SELECT card_number FROM customers WHERE id = 3'], { env: proxy.env('carol', 'prod') });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, `a****@example.com\n${partial('4012888888881881', 0, 4)}\n`);
  });

  it('cursors: FETCH from a cursor never returns clear values', async () => {
    const c = await client('carol');
    await c.query('BEGIN');
    await c.query('DECLARE cur CURSOR FOR SELECT id, email, upper(email) AS up, phone FROM customers ORDER BY id');
    const first = await c.query('FETCH 2 FROM cur');
    const rest = await c.query('FETCH ALL FROM cur');
    await c.query('CLOSE cur');
    await c.query('COMMIT');
    const rows = [...first.rows, ...rest.rows];
    assert.equal(rows.length, CUSTOMERS.length);
    rows.forEach((r, i) => {
      const x = CUSTOMERS[i]!;
      assert.equal(r.id, String(x.id));
      // Table columns keep their origin through the cursor: masked by their class.
      assert.equal(r.email, email(x.email));
      assert.equal(r.phone, partial(x.phone, 0, 2));
      // A computed column's query is not in sight at FETCH: masked as a secret (null here).
      assert.equal(r.up, null);
    });
    assertNoLeak(rows);
    // psql's FETCH_COUNT and a cursor through the extended protocol.
    const p = await run('psql', ['-X', '-At', '-v', 'FETCH_COUNT=2', '-c', 'SELECT email FROM customers ORDER BY id'], { env: proxy.env('carol', 'prod') });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, CUSTOMERS.map((x) => email(x.email) ?? '').join('\n') + '\n');
    await c.query('BEGIN');
    await c.query('DECLARE cur2 CURSOR FOR SELECT email FROM customers WHERE id = $1', [1]).catch(() => c.query('DECLARE cur2 CURSOR FOR SELECT email FROM customers WHERE id = 1'));
    const f = await c.query({ text: 'FETCH ALL FROM cur2', values: [] });
    await c.query('COMMIT');
    assert.deepEqual(f.rows, [{ email: 'a****@example.com' }]);
  });

  it('psql (simple protocol, aligned output) shows masked values', async () => {
    const p = await run('psql', ['-X', '-At', '-F', ',', '-c', 'SELECT id, email, ssn, card_number, born FROM customers ORDER BY id'], { env: proxy.env('carol', 'prod') });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(
      p.stdout,
      CUSTOMERS.map((x) => {
        const m = masked(x);
        return [m.id, m.email, m.ssn, m.card_number, m.born].map((v) => v ?? '').join(',');
      }).join('\n') + '\n',
    );
    assertNoLeak(p.stdout, 'psql');
  });

  it('the audit event of a masked statement records masked_columns', async () => {
    const c = await client('carol');
    await c.query('SELECT id, email, phone, balance AS audit_probe FROM customers WHERE id = 1');
    await c.query('SELECT upper(email) AS shout FROM customers WHERE id = 2');
    const a = await client('alice');
    await a.query('SELECT id, email FROM customers WHERE id = 1');
    const find = async (): Promise<AuditEvent[] | null> => {
      const store = await openStore(storeSpec(proxy.loaded));
      try {
        const events = (await store.audit.search({ identity: 'carol' }, 200, 'desc')).map((e) => JSON.parse(e.body) as AuditEvent);
        const got = events.filter((e) => e.type === 'statement' && e.statement?.text.includes('as shout from customers'));
        return got.length > 0 ? events : null;
      } finally {
        await store.close();
      }
    };
    const events = (await waitFor(find, 10_000, 'the audit events of carol'))!;
    const plain = events.find((e) => e.type === 'statement' && e.statement?.text.includes('audit_probe'));
    assert.ok(plain, 'the statement event');
    assert.equal(plain.decision?.action, 'mask');
    assert.ok(plain.decision?.matches.some((m) => m.id === 'test.mask-pii' && m.action === 'mask'));
    assert.deepEqual(plain.masked_columns, ['public.customers.email', 'public.customers.phone']);
    const computed = events.find((e) => e.type === 'statement' && e.statement?.text.includes('as shout from customers'));
    assert.deepEqual(computed?.masked_columns, ['shout']);
    assertNoLeak(events, 'audit events');
    // alice's statements are not masked: no masked_columns.
    const store = await openStore(storeSpec(proxy.loaded));
    try {
      const mine = (await store.audit.search({ identity: 'alice' }, 200, 'desc')).map((e) => JSON.parse(e.body) as AuditEvent);
      const st = mine.filter((e) => e.type === 'statement' && e.statement?.kind === 'SELECT');
      assert.ok(st.length > 0);
      for (const e of st) assert.equal(e.masked_columns, undefined);
      assert.ok(st.every((e) => e.decision?.action === 'allow'));
    } finally {
      await store.close();
    }
  });

  it('errors in a masked session relay with their SQLSTATE and the session goes on', async () => {
    const raw = await RawClient.connect({ port: proxy.port, user: 'carol', password: 'carol-pw', database: 'prod' });
    try {
      raw.write(fe.query('SELECT email FROM customers WHERE id = 1/0'));
      const msgs: BackendMessage[] = await raw.untilReady();
      const err = msgs.find((m) => m.type === 'E')!;
      assert.equal(errorFields(err).C, '22012');
      raw.write(fe.query('SELECT email FROM customers WHERE id = 1'));
      const ok = await raw.untilReady();
      assert.deepEqual(ok.filter((m) => m.type === 'D').map(dataRow), [['a****@example.com']]);
    } finally {
      await raw.terminate();
    }
  });

  it('PREPARE/EXECUTE, UNION, VALUES, LATERAL and RETURNING are masked too', async () => {
    const c = await client('carol');
    const one = async (sql: string, values?: unknown[]): Promise<unknown[][]> => (await c.query({ text: sql, values, rowMode: 'array' })).rows;
    await c.query('PREPARE p1 AS SELECT id, email, upper(email) FROM customers WHERE id = $1');
    // EXECUTE: table columns keep their origin; the computed column is out of sight: a secret (null).
    assert.deepEqual(await one('EXECUTE p1(1)'), [['1', 'a****@example.com', null]]);
    assert.deepEqual(await one('EXECUTE p1(2)'), [['2', 'b**@example.org', null]]);
    await c.query('DEALLOCATE p1');
    assert.deepEqual(await one(`SELECT 'x' UNION ALL SELECT email FROM customers WHERE id = 1`), [['*'], ['a****@example.com']]);
    assert.deepEqual(await one('SELECT v FROM (VALUES ((SELECT email FROM customers WHERE id = 1))) t(v)'), [['a****@example.com']]);
    assert.deepEqual(await one('SELECT x.e FROM customers c, LATERAL (SELECT c.email AS e) x WHERE c.id = 1'), [['a****@example.com']]);
    assert.deepEqual(await one(`SELECT string_agg(email, ',' ORDER BY id) FROM customers WHERE id IN (1, 2)`), [[email('alice@example.com,bob@example.org')]]);
    await c.query('BEGIN');
    try {
      assert.deepEqual(await one('UPDATE customers SET balance = balance WHERE id = 1 RETURNING id, email, upper(phone)'), [['1', 'a****@example.com', partial('+1 415-555-2671', 0, 2)]]);
      assert.deepEqual(await one('DELETE FROM orders WHERE id = $1 RETURNING (SELECT email FROM customers WHERE id = customer_id)', [1]), [['a****@example.com']]);
    } finally {
      await c.query('ROLLBACK');
    }
  });

  it('whole-row references follow the client\'s search_path and quoted names (no clear values from a same-named table)', async () => {
    const c = await client('carol');
    // public.ledger holds nothing sensitive: row_to_json(l) over it may pass (or be masked: both
    // tables named ledger count), but the s2.ledger row must never come back in clear.
    await c.query('SET search_path = s2, public');
    const a = await c.query('SELECT row_to_json(l) AS j, l::text AS t FROM ledger l');
    await c.query('RESET search_path');
    assert.equal(a.rows.length, 1);
    assert.ok(!JSON.stringify(a.rows).includes('alice@'), `clear email from s2.ledger: ${JSON.stringify(a.rows)}`);
    assert.deepEqual(a.rows, [{ j: '{}', t: '(*******@example.com)' }]);
    const q = await c.query('SELECT row_to_json(x) AS j FROM "Contacts" x');
    assert.deepEqual(q.rows, [{ j: '{}' }], 'the quoted "Contacts" is not its lower-case twin');
    const s2 = await c.query('SELECT row_to_json(l) AS j FROM s2.ledger l');
    assert.deepEqual(s2.rows, [{ j: '{}' }]);
  });

  it('a column added outside the proxy after the catalog was cached is still classified (not by its alias)', async () => {
    const c = await client('carol');
    assert.deepEqual((await c.query('SELECT id AS x, balance FROM customers WHERE id = 1')).rows, [{ x: '1', balance: '100.50' }]);
    await direct(db.name, 'ALTER TABLE customers ADD COLUMN email2 text; UPDATE customers SET email2 = email');
    try {
      assert.deepEqual((await c.query('SELECT email2 AS x FROM customers WHERE id = 1')).rows, [{ x: 'a****@example.com' }]);
      assert.deepEqual((await c.query('SELECT email2 FROM customers WHERE id = $1', [2])).rows, [{ email2: 'b**@example.org' }]);
      // System columns are not table data: not masked.
      const sys = await c.query('SELECT ctid FROM customers WHERE id = 1');
      assert.equal(sys.rows[0].ctid.startsWith('('), true);
    } finally {
      await direct(db.name, 'ALTER TABLE customers DROP COLUMN email2');
    }
  });

  it('masks what comes out of a function that is not built-in, which may read any table', async () => {
    await direct(
      db.name,
      `CREATE OR REPLACE FUNCTION email_of(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT email FROM customers WHERE id = i';
       CREATE OR REPLACE FUNCTION s2.email_of(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT email FROM customers WHERE id = i';
       CREATE OR REPLACE FUNCTION emails() RETURNS SETOF text LANGUAGE sql STABLE AS 'SELECT email FROM customers ORDER BY id';
       CREATE OR REPLACE FUNCTION double_it(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i * 2';
       CREATE OR REPLACE VIEW via_function_v AS SELECT id, email_of(id) AS contact FROM customers`,
    );
    try {
      const c = await client('carol');
      // The value of a user function (secret: "null" in this plan), wherever it flows.
      for (const sql of [
        'SELECT email_of(1) AS e',
        'SELECT public.email_of(1) AS e',
        'SELECT s2.email_of(2) AS e',
        'SELECT upper(email_of(1)) AS e',
        'WITH x AS (SELECT email_of(id) AS e FROM customers) SELECT e FROM x',
        'SELECT e FROM (SELECT email_of(2) AS e) sub',
        'SELECT * FROM emails()',
        'SELECT e FROM emails() AS e',
        'SELECT contact FROM via_function_v',
      ]) {
        const r = await c.query(sql);
        assert.ok(r.rows.length > 0, sql);
        for (const row of r.rows) for (const v of Object.values(row)) assert.equal(v, null, `${sql}: ${String(v)}`);
        assertNoLeak(r.rows, sql);
      }
      // Built-in functions that run a query given as text read what the statement does not show.
      const xml = await c.query("SELECT query_to_xml('SELECT email FROM customers', true, false, '') AS x, table_to_xml('customers', true, false, '') AS t");
      assert.deepEqual(xml.rows, [{ x: null, t: null }]);
      // Over-masking is the price: a user function that reads nothing is masked too. Built-in
      // functions of columns that are not sensitive stay clear.
      assert.deepEqual((await c.query('SELECT double_it(21) AS d')).rows, [{ d: null }]);
      assert.deepEqual((await c.query('SELECT abs(balance) AS b, round(id * 2.0) AS twice, count(*) OVER () AS k, pg_catalog.abs(-2) AS a FROM customers WHERE id = 2')).rows, [
        { b: '3.00', twice: '4', k: '1', a: '2' },
      ]);
      // dba sees the values.
      const a = await client('alice');
      assert.deepEqual((await a.query('SELECT email_of(1) AS e, double_it(21) AS d')).rows, [{ e: 'alice@example.com', d: '42' }]);
    } finally {
      await direct(db.name, 'DROP VIEW via_function_v; DROP FUNCTION email_of(int); DROP FUNCTION s2.email_of(int); DROP FUNCTION emails(); DROP FUNCTION double_it(int)');
    }
  });

  it('error messages that echo a value are scrubbed by the detectors', async () => {
    const c = await client('carol');
    await assert.rejects(c.query('SELECT email::int FROM customers WHERE id = 1'), (err: pg.DatabaseError) => {
      assert.equal(err.code, '22P02');
      assertNoLeak(err.message, 'error message');
      return true;
    });
  });
});

/**
 * A rule that names only some classes (here only email), with the documented example's
 * condition (reads only). Columns the stage cannot resolve are classified `secret` (fail closed);
 * they must be masked even though this plan names no function for `secret`.
 */
describe('masking with a rule that names only some classes', () => {
  let db: Db;
  let proxy: TestProxy;
  const dir = mkdtempSync(join(tmpdir(), 'gh-mask2-'));

  before(async () => {
    db = await createTestDatabase('gh_mask');
    await direct(db.name, `CREATE TABLE customers (id int PRIMARY KEY, email text, phone text);
      INSERT INTO customers VALUES (1, 'alice@example.com', '+1 415-555-2671'), (2, 'bob@example.org', '020 7946 0958')`);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(
      policyFile,
      `rules:
  - id: test.mask-email
    when: connection.environment == "production" && !("dba" in identity.groups)
    action: mask
    mask: { email: email }
`,
    );
    proxy = await startProxy({ database: db.name, stateDir: join(dir, 'state'), logStatements: false, extraYaml: `policy: { files: [${policyFile}], watch: false }\naudit: { enabled: false }\n` });
  });

  after(async () => {
    await proxy?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const carol = (): Promise<pg.Client> => proxy.client({ user: 'carol', database: 'prod', types: RAW_TYPES });

  it('classes the plan does not name pass; named ones are masked', async () => {
    const c = await carol();
    const r = await c.query('SELECT id, email, phone FROM customers ORDER BY id');
    assert.deepEqual(r.rows, [
      { id: '1', email: 'a****@example.com', phone: '+1 415-555-2671' },
      { id: '2', email: 'b**@example.org', phone: '020 7946 0958' },
    ]);
  });

  it('unresolvable computed columns (FETCH, multi-statement, EXECUTE) are masked although the plan names no function for secret', async () => {
    const c = await carol();
    await c.query('BEGIN');
    await c.query('DECLARE cur CURSOR FOR SELECT id, email, upper(email) AS up FROM customers ORDER BY id');
    const f = await c.query('FETCH ALL FROM cur');
    await c.query('COMMIT');
    assert.deepEqual(
      f.rows.map((r) => r.email),
      ['a****@example.com', 'b**@example.org'],
    );
    // Unresolvable: redacted (the fail-closed function when the plan has none for secret).
    assert.deepEqual(
      f.rows.map((r) => r.up),
      ['********', '********'],
      'FETCH: a computed column of the cursor',
    );
    const m = (await c.query(`SELECT 1 AS one; SELECT upper(email) AS up, phone FROM customers WHERE id = 1`)) as unknown as pg.QueryResult[];
    assert.deepEqual(m[1]!.rows, [{ up: '********', phone: '+1 415-555-2671' }], 'multi-statement: a computed column');
    await c.query('PREPARE p2 AS SELECT email, lower(email) AS low FROM customers WHERE id = $1');
    const e = await c.query('EXECUTE p2(1)');
    assert.deepEqual(e.rows, [{ email: 'a****@example.com', low: '********' }], 'EXECUTE: a computed column');
  });

  it('RETURNING of a write is masked too (the rule is not limited to reads, as docs/policy.md advises)', async () => {
    const c = await carol();
    await c.query('BEGIN');
    try {
      const r = await c.query('UPDATE customers SET phone = phone WHERE id = 1 RETURNING email');
      assert.equal(r.rows[0].email, 'a****@example.com');
    } finally {
      await c.query('ROLLBACK');
    }
  });
});

/** `refuse_predicates`: filtering, joining or sorting on a masked column is refused (inference by filtering). */
describe('masking with refuse_predicates', () => {
  let db: Db;
  let proxy: TestProxy;
  const dir = mkdtempSync(join(tmpdir(), 'gh-mask3-'));

  before(async () => {
    db = await createTestDatabase('gh_mask');
    await direct(db.name, `CREATE TABLE customers (id int PRIMARY KEY, email text, phone text);
      CREATE TABLE orders (id int PRIMARY KEY, customer_id int, contact_email text);
      INSERT INTO customers VALUES (1, 'alice@example.com', '+1 415-555-2671');
      INSERT INTO orders VALUES (10, 1, 'alice@example.com')`);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(
      policyFile,
      `rules:
  - id: test.mask-strict
    when: connection.environment == "production" && !("dba" in identity.groups)
    action: mask
    mask: { email: email }
    refuse_predicates: true
`,
    );
    proxy = await startProxy({ database: db.name, stateDir: join(dir, 'state'), logStatements: false, extraYaml: `policy: { files: [${policyFile}], watch: false }\naudit: { enabled: false }\n` });
  });

  after(async () => {
    await proxy?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const refused = (e: Error & { code?: string }): boolean => e.code === '42501' && /masked column "email".*gatehouse\.mask-predicate/s.test(`${e.message}`);

  it('refuses WHERE, ORDER BY and JOIN ON over a masked column, in both protocols; the session stays usable', async () => {
    const c = await proxy.client({ user: 'carol', database: 'prod' });
    await assert.rejects(c.query("SELECT id FROM customers WHERE email = 'alice@example.com'"), refused);
    await assert.rejects(c.query('SELECT id FROM customers WHERE email = $1', ['alice@example.com']), refused);
    await assert.rejects(c.query('SELECT id FROM customers ORDER BY email'), refused);
    await assert.rejects(c.query('SELECT o.id FROM orders o JOIN customers c ON c.email = o.contact_email'), refused);
    // Predicates on other columns are fine, and the masked column is still returned masked.
    const r = await c.query('SELECT id, email FROM customers WHERE id = $1 ORDER BY phone', [1]);
    assert.deepEqual(r.rows, [{ id: 1, email: 'a****@example.com' }]);
  });

  it('does not apply to an exempt identity', async () => {
    const a = await proxy.client({ user: 'alice', database: 'prod' });
    const r = await a.query("SELECT id FROM customers WHERE email = 'alice@example.com'");
    assert.deepEqual(r.rows, [{ id: 1 }]);
  });
});
