/**
 * node-postgres through the proxy against the real PostgreSQL: simple and extended queries,
 * prepared statements, binary results, concurrency, large rows, LISTEN/NOTIFY, ParameterStatus,
 * transactions, errors with their SQLSTATE, and COPY (with the raw client: pg-copy-streams is
 * not installed). Data written through the proxy is checked directly in the database.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createTestDatabase, direct } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';
import { dataRow, errorFields, fe, pbe, RawClient, summary } from './helpers/raw-client.js';

/** node-postgres' DatabaseError, with the fields of the ErrorResponse. */
interface PgError extends Error {
  code?: string;
  detail?: string;
  constraint?: string;
  table?: string;
  position?: string;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<PgError> {
  try {
    await p;
  } catch (err) {
    const e = err as PgError;
    assert.equal(e.code, code, `expected SQLSTATE ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected an error with SQLSTATE ${code}`);
}

describe('fidelity: node-postgres through the proxy', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;

  before(async () => {
    db = await createTestDatabase('gh_fid_pg');
    await direct(
      db.name,
      `create table accounts (id int primary key, owner text not null, balance int not null);
       create table blobs (id int primary key, data bytea not null);
       create table copy_target (id int not null, name text, note text);
       insert into accounts select g, 'owner-' || g, 100 from generate_series(1, 10) g;`,
    );
    proxy = await startProxy({ database: db.name });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  it('runs simple queries, multi-statement strings and large result sets', async () => {
    const c = await proxy.client();
    const r = await c.query('select 40 + 2 as answer');
    assert.deepEqual(r.rows, [{ answer: 42 }]);
    assert.equal(r.command, 'SELECT');
    const multi = (await c.query(`select 1 as one; select 'two' as two; update accounts set balance = balance where id <= 3`)) as unknown as pg.QueryResult[];
    assert.equal(multi.length, 3);
    assert.deepEqual(multi[0]!.rows, [{ one: 1 }]);
    assert.deepEqual(multi[1]!.rows, [{ two: 'two' }]);
    assert.equal(multi[2]!.command, 'UPDATE');
    assert.equal(multi[2]!.rowCount, 3);
    const many = await c.query('select g, md5(g::text) as h from generate_series(1, 20000) g');
    assert.equal(many.rowCount, 20000);
    assert.equal(many.rows[19999].g, 20000);
    assert.equal(many.rows[19999].h, createHash('md5').update('20000').digest('hex'));
  });

  it('runs parameterized (extended protocol) queries with typed values', async () => {
    const c = await proxy.client();
    const r = await c.query(
      'select $1::int + 1 as n, $2::text as t, $3::text as nul, $4::jsonb as j, $5::int[] as arr, $6::date::text as d, length($2) as len',
      [41, 'héllo ✓ end', null, JSON.stringify({ a: [1, 2] }), [3, 4, 5], '2024-02-29'],
    );
    assert.deepEqual(r.rows, [{ n: 42, t: 'héllo ✓ end', nul: null, j: { a: [1, 2] }, arr: [3, 4, 5], d: '2024-02-29', len: 11 }]);
    const rows = await c.query('select id, owner from accounts where id = any($1::int[]) order by id', [[2, 4, 99]]);
    assert.deepEqual(rows.rows, [
      { id: 2, owner: 'owner-2' },
      { id: 4, owner: 'owner-4' },
    ]);
  });

  it('prepares a named statement once and executes it many times', async () => {
    const c = await proxy.client();
    for (let i = 0; i < 200; i++) {
      const r = await c.query({ name: 'fid_double', text: 'select $1::int * 2 as v, $2::text as s', values: [i, `s${i}`] });
      assert.deepEqual(r.rows, [{ v: i * 2, s: `s${i}` }]);
    }
    const ps = await c.query(`select name, statement from pg_prepared_statements`);
    assert.deepEqual(ps.rows, [{ name: 'fid_double', statement: 'select $1::int * 2 as v, $2::text as s' }]);
  });

  it('returns binary-format results', async () => {
    const c = await proxy.client();
    // Raw values (pg's own binary parsers are incomplete): check the wire encoding itself.
    const raw = { getTypeParser: () => (v: unknown) => v } as unknown as pg.CustomTypesConfig;
    // (pg decodes binary values through a UTF-8 string, so the test values use bytes < 0x80.)
    const r = await c.query({
      text: `select $1::int4 as i, 'abc'::text as t, true as b, 4200::int8 as big, '\\x0102'::bytea as by, null::int4 as n`,
      values: [7],
      binary: true,
      types: raw,
    } as pg.QueryConfig);
    assert.deepEqual(r.fields.map((f) => f.format), ['binary', 'binary', 'binary', 'binary', 'binary', 'binary']);
    const row = r.rows[0] as Record<string, Buffer | null>;
    assert.equal(row.i!.readInt32BE(0), 7);
    assert.equal(row.t!.toString(), 'abc');
    assert.deepEqual([...row.b!], [1]);
    assert.equal(row.big!.readBigInt64BE(0), 4200n);
    assert.deepEqual([...row.by!], [1, 2]);
    assert.equal(row.n, null);
    // And pg's default parsing of binary int4/text/bool.
    const parsed = await c.query({ text: `select 123::int4 as i, 'xyz'::text as t, false as b`, binary: true } as pg.QueryConfig);
    assert.deepEqual(parsed.rows, [{ i: 123, t: 'xyz', b: false }]);
  });

  it('serves concurrent queries on several clients, each on its own server session', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => proxy.client()));
    // Clients run in parallel; each runs its own queries one after the other.
    const results = await Promise.all(
      clients.map(async (c, ci) => {
        const rows = [];
        for (let qi = 0; qi < 25; qi++) {
          rows.push((await c.query('select $1::int as ci, $2::int as qi, pg_backend_pid() as pid, pg_sleep(0.001)::text as z', [ci, qi])).rows[0]);
        }
        return rows;
      }),
    );
    const pids = new Set<number>();
    results.forEach((rows, ci) => {
      assert.deepEqual(
        rows.map((r) => [r.ci, r.qi]),
        Array.from({ length: 25 }, (_, qi) => [ci, qi]),
      );
      const own = new Set(rows.map((r) => r.pid));
      assert.equal(own.size, 1, 'one server backend per client');
      pids.add([...own][0]);
    });
    assert.equal(pids.size, clients.length, 'distinct server backends');
    await Promise.all(clients.map((c) => c.end()));
  });

  it('relays a row larger than 1 MB and a bytea larger than 1 MB intact', async () => {
    const c = await proxy.client();
    const big = await c.query(`select repeat('x', 3000000) as s, 'after' as tail`);
    assert.equal(big.rows[0].s.length, 3_000_000);
    assert.ok(/^x+$/.test(big.rows[0].s));
    assert.equal(big.rows[0].tail, 'after');

    const blob = randomBytes(2 * 1024 * 1024 + 17);
    const md5 = createHash('md5').update(blob).digest('hex');
    await c.query('insert into blobs (id, data) values ($1, $2)', [1, blob]);
    const back = await c.query('select data from blobs where id = 1');
    assert.ok(Buffer.isBuffer(back.rows[0].data));
    assert.ok(back.rows[0].data.equals(blob), 'bytea read back through the proxy is identical');
    const stored = await direct(db.name, 'select length(data) as len, md5(data) as h from blobs where id = 1');
    assert.deepEqual(stored.rows[0], { len: blob.length, h: md5 });
    // The session is still in step after the large messages.
    assert.deepEqual((await c.query('select 1 as ok')).rows, [{ ok: 1 }]);
  });

  it('delivers LISTEN/NOTIFY between two clients, after COMMIT only', async () => {
    const listener = await proxy.client();
    const sender = await proxy.client();
    const got: pg.Notification[] = [];
    listener.on('notification', (n) => got.push(n));
    await listener.query('LISTEN fid_channel');
    const senderPid = (await sender.query('select pg_backend_pid() as pid')).rows[0].pid as number;

    await sender.query(`NOTIFY fid_channel, 'first'`);
    await waitFor(() => got.length === 1, 5000, 'the first notification');
    assert.equal(got[0]!.channel, 'fid_channel');
    assert.equal(got[0]!.payload, 'first');
    assert.equal(got[0]!.processId, senderPid, 'the notifying backend pid, as PostgreSQL reports it');

    await sender.query('BEGIN');
    await sender.query(`select pg_notify('fid_channel', $1)`, ['in-tx']);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(got.length, 1, 'not delivered before COMMIT');
    await sender.query('COMMIT');
    await waitFor(() => got.length === 2, 5000, 'the notification after COMMIT');
    assert.equal(got[1]!.payload, 'in-tx');

    // Delivered while the listener is idle (no query of its own in flight), then UNLISTEN.
    await listener.query('UNLISTEN fid_channel');
    await sender.query(`NOTIFY fid_channel, 'ignored'`);
    await new Promise((r) => setTimeout(r, 200));
    await listener.query('select 1');
    assert.equal(got.length, 2);
  });

  it('relays ParameterStatus: application_name, SET TIME ZONE, startup parameters', async () => {
    const c = await proxy.client({ application_name: 'fid-startup-app' });
    assert.equal((await c.query('show application_name')).rows[0].application_name, 'fid-startup-app');
    const status = new Map<string, string>();
    (c as unknown as { connection: EventEmitter }).connection.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) =>
      status.set(m.parameterName, m.parameterValue),
    );
    await c.query(`SET application_name = 'fid-pg-app'`);
    assert.equal(status.get('application_name'), 'fid-pg-app');
    assert.equal((await c.query('show application_name')).rows[0].application_name, 'fid-pg-app');
    const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid;
    const seen = await direct(db.name, 'select application_name from pg_stat_activity where pid = $1', [pid]);
    assert.deepEqual(seen.rows, [{ application_name: 'fid-pg-app' }]);

    await c.query(`SET TIME ZONE 'America/New_York'`);
    assert.equal(status.get('TimeZone'), 'America/New_York');
    const t = await c.query(`select '2020-01-01 12:00:00+00'::timestamptz::text as local, current_setting('TimeZone') as tz`);
    assert.deepEqual(t.rows, [{ local: '2020-01-01 07:00:00-05', tz: 'America/New_York' }]);
    await c.query(`SET TIME ZONE 'UTC'`);
    assert.equal(status.get('TimeZone'), 'UTC');
  });

  it('keeps transaction semantics: COMMIT, ROLLBACK, savepoints, failed transactions', async () => {
    const c = await proxy.client();
    const balance = async (id: number): Promise<number | undefined> => (await direct(db.name, 'select balance from accounts where id = $1', [id])).rows[0]?.balance;

    await c.query('BEGIN');
    await c.query('update accounts set balance = balance - 30 where id = 1');
    await c.query('update accounts set balance = balance + 30 where id = 2');
    assert.equal(await balance(1), 100, 'not visible to others before COMMIT');
    await c.query('COMMIT');
    assert.equal(await balance(1), 70);
    assert.equal(await balance(2), 130);

    await c.query('BEGIN');
    await c.query('update accounts set balance = 0 where id = 3');
    assert.equal((await c.query('select balance from accounts where id = 3')).rows[0].balance, 0);
    await c.query('ROLLBACK');
    assert.equal(await balance(3), 100);

    await c.query('BEGIN');
    await c.query('update accounts set balance = 1 where id = 4');
    await c.query('SAVEPOINT sp');
    await c.query('update accounts set balance = 2 where id = 4');
    await rejectsWith(c.query('select 1/0'), '22012');
    await rejectsWith(c.query('select 1'), '25P02');
    await c.query('ROLLBACK TO SAVEPOINT sp');
    await c.query('COMMIT');
    assert.equal(await balance(4), 1);

    await c.query('BEGIN');
    await c.query('insert into accounts values (50, $1, 5)', ['tx-fail']);
    await rejectsWith(c.query('insert into accounts values (1, $1, 5)', ['dup']), '23505');
    const aborted = await rejectsWith(c.query('select 1'), '25P02');
    assert.match(aborted.message, /current transaction is aborted/);
    const commit = await c.query('COMMIT'); // of a failed transaction: the server rolls back
    assert.equal(commit.command, 'ROLLBACK');
    assert.equal((await direct(db.name, 'select count(*)::int as n from accounts where id = 50')).rows[0].n, 0);
    assert.deepEqual((await c.query('select 1 as usable')).rows, [{ usable: 1 }]);
  });

  it('relays errors with their SQLSTATE and fields; the client stays usable', async () => {
    const c = await proxy.client();
    const missing = await rejectsWith(c.query('select * from no_such_table'), '42P01');
    assert.match(missing.message, /relation "no_such_table" does not exist/);
    assert.equal(missing.position, '15');
    const dup = await rejectsWith(c.query('insert into accounts values ($1, $2, 0)', [1, 'dup']), '23505');
    assert.equal(dup.constraint, 'accounts_pkey');
    assert.equal(dup.table, 'accounts');
    assert.match(dup.detail!, /Key \(id\)=\(1\) already exists/);
    await rejectsWith(c.query('selec 1'), '42601');
    await rejectsWith(c.query('select $1::int', ['not a number']), '22P02');
    await rejectsWith(c.query({ name: 'fid_bad', text: 'select 1 / $1::int as q', values: [0] }), '22012');
    assert.deepEqual((await c.query({ name: 'fid_bad', text: 'select 1 / $1::int as q', values: [1] })).rows, [{ q: 1 }]);
    await rejectsWith(c.query(`DO $$BEGIN RAISE EXCEPTION 'custom' USING ERRCODE = 'P0042'; END$$`), 'P0042');
    assert.deepEqual((await c.query('select count(*)::int as n from accounts')).rows, [{ n: 10 }]);
  });

  it('copies data in and out (COPY FROM STDIN / TO STDOUT, CopyFail, extended protocol)', async () => {
    const raw = await RawClient.connect({ port: proxy.port, user: 'alice', password: 'alice-pw', database: 'dev' });
    try {
      // COPY FROM STDIN: rows split across CopyData messages in odd places, one big message.
      raw.write(fe.query('copy copy_target (id, name, note) from stdin'));
      assert.deepEqual((await raw.collect((m) => m.type === 'G')).map(summary), ['G']);
      const bulk = Array.from({ length: 5000 }, (_, i) => `${i + 100}\tbulk-${i}\t\\N\n`).join('');
      raw.write(fe.copyData('1\tone\tfirst\n2\ttw'), fe.copyData('o\t\\N\n3\tthree\ttab\\there\n'), fe.copyData(bulk), fe.copyDone());
      assert.deepEqual((await raw.untilReady(1)).map(summary), ['C:COPY 5003', 'Z:I']);
      const stored = await direct(db.name, 'select id, name, note from copy_target where id <= 3 order by id');
      assert.deepEqual(stored.rows, [
        { id: 1, name: 'one', note: 'first' },
        { id: 2, name: 'two', note: null },
        { id: 3, name: 'three', note: 'tab\there' },
      ]);
      assert.equal((await direct(db.name, 'select count(*)::int as n from copy_target')).rows[0].n, 5003);

      // COPY TO STDOUT.
      raw.write(fe.query('copy (select id, name, note from copy_target where id <= 3 order by id) to stdout'));
      const out = await raw.untilReady(1);
      assert.deepEqual(out.map((m) => m.type), ['H', 'd', 'd', 'd', 'c', 'C', 'Z']);
      const text = out.filter((m) => m.type === 'd').map((m) => m.body.toString()).join('');
      assert.equal(text, '1\tone\tfirst\n2\ttwo\t\\N\n3\tthree\ttab\\there\n');
      raw.write(fe.query('copy copy_target to stdout'));
      const all = await raw.untilReady(1);
      assert.equal(all.filter((m) => m.type === 'd').length, 5003);
      assert.equal(summary(all.at(-2)!), 'C:COPY 5003');

      // CopyFail: the server aborts the COPY, nothing is stored, the session goes on.
      raw.write(fe.query('copy copy_target (id, name) from stdin'));
      await raw.collect((m) => m.type === 'G');
      raw.write(fe.copyData('9001\tnever\n'), fe.copyFail('client changed its mind'));
      const failed = await raw.untilReady(1);
      assert.deepEqual(failed.map(summary), ['E:57014', 'Z:I']);
      assert.match(errorFields(failed[0]!).M!, /client changed its mind/);
      assert.equal((await direct(db.name, 'select count(*)::int as n from copy_target where id = 9001')).rows[0].n, 0);

      // A malformed row: the server's error, then a usable session.
      raw.write(fe.query('copy copy_target (id, name) from stdin'));
      await raw.collect((m) => m.type === 'G');
      raw.write(fe.copyData('not-an-int\tx\n'), fe.copyDone());
      assert.deepEqual((await raw.untilReady(1)).map(summary), ['E:22P02', 'Z:I']);

      // COPY in the extended protocol: CopyInResponse after Execute, Sync after CopyDone.
      raw.write(pbe('copy copy_target (id, name) from stdin'), fe.flush());
      assert.deepEqual((await raw.collect((m) => m.type === 'G')).map(summary), ['1', '2', 'G']);
      raw.write(fe.copyData('7001\text-a\n7002\text-b\n'), fe.copyDone(), fe.sync());
      assert.deepEqual((await raw.untilReady(1)).map(summary), ['C:COPY 2', 'Z:I']);
      assert.deepEqual((await direct(db.name, 'select name from copy_target where id > 7000 order by id')).rows, [{ name: 'ext-a' }, { name: 'ext-b' }]);

      raw.write(fe.query('select count(*) from copy_target'));
      assert.deepEqual(dataRow((await raw.untilReady(1)).find((m) => m.type === 'D')!), ['5005']);
    } finally {
      await raw.terminate();
    }
  });
});
