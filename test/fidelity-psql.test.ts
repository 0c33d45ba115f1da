/**
 * psql through the proxy against the real PostgreSQL: catalog backslash commands (compared with
 * the same commands run directly), \copy both ways, multi-statement strings and files, errors
 * and recovery, ON_ERROR_STOP, notices and application_name.
 */
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, direct, PG_HOST, PG_PORT, run } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';

describe('fidelity: psql through the proxy', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  let tmp: string;
  /** libpq environment for psql directly to PostgreSQL (trust), for baselines. */
  let directEnv: Record<string, string>;

  const psql = (args: string[], input?: string, env: Record<string, string> = {}) => run('psql', ['-X', ...args], { env: { ...proxy.env('alice'), ...env }, input });

  before(async () => {
    db = await createTestDatabase('gh_fid_psql');
    await direct(
      db.name,
      `create table widgets (
         id serial primary key,
         name text not null unique,
         price numeric(10, 2) not null default 0,
         created timestamptz not null default now()
       );
       comment on table widgets is 'things we sell';
       comment on column widgets.price is 'unit price in EUR';
       create index widgets_price_idx on widgets (price) where price > 0;
       create view widget_names as select id, name from widgets;
       create table copy_in (id int primary key, label text, amount numeric);`,
    );
    proxy = await startProxy({ database: db.name });
    tmp = mkdtempSync(join(tmpdir(), 'gh-fid-psql-'));
    directEnv = { PGHOST: PG_HOST, PGPORT: String(PG_PORT), PGUSER: 'postgres', PGDATABASE: db.name, PGSSLMODE: 'disable', PGPASSWORD: '' };
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('describes relations with \\d and \\d+ exactly as PostgreSQL does directly', async () => {
    for (const cmd of ['\\d', '\\d+ widgets', '\\d widget_names', '\\di+', '\\dt+ widgets']) {
      const via = await psql(['-c', cmd]);
      const base = await run('psql', ['-X', '-c', cmd], { env: directEnv });
      assert.equal(via.code, 0, via.stderr);
      assert.equal(base.code, 0, base.stderr);
      assert.equal(via.stderr, '');
      assert.equal(via.stdout, base.stdout, `output of ${cmd} differs from a direct connection`);
    }
    const list = await psql(['-c', '\\d']);
    for (const name of ['widgets', 'widgets_id_seq', 'widget_names', 'copy_in']) assert.match(list.stdout, new RegExp(`\\| ${name} +\\|`));
    const plus = await psql(['-c', '\\d+ widgets']);
    assert.match(plus.stdout, /Table "public\.widgets"/);
    assert.match(plus.stdout, /price +\| numeric\(10,2\) +\| +\| not null \| 0 .*unit price in EUR/);
    assert.match(plus.stdout, /"widgets_pkey" PRIMARY KEY, btree \(id\)/);
    assert.match(plus.stdout, /"widgets_name_key" UNIQUE CONSTRAINT, btree \(name\)/);
    assert.match(plus.stdout, /"widgets_price_idx" btree \(price\) WHERE price > 0::numeric/);
    assert.match(plus.stdout, /Access method: heap/);
  });

  it('\\copy from stdin stores the data, \\copy to stdout returns it', async () => {
    const input = '1\tone\t1.5\n2\t\\N\t-2\n3\ttab\\there\t0\n';
    const r = await psql(['-c', '\\copy copy_in from stdin'], input);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'COPY 3');
    const stored = await direct(db.name, 'select id, label, amount::text from copy_in order by id');
    assert.deepEqual(stored.rows, [
      { id: 1, label: 'one', amount: '1.5' },
      { id: 2, label: null, amount: '-2' },
      { id: 3, label: 'tab\there', amount: '0' },
    ]);

    // CSV with a header and quoting, and a bulk load of many rows.
    const csv = 'id,label,amount\n10,"comma, inside",10\n11,"quote "" inside",11\n' + Array.from({ length: 20000 }, (_, i) => `${1000 + i},bulk-${i},${i}`).join('\n') + '\n';
    const r2 = await psql(['-c', '\\copy copy_in from stdin with (format csv, header true)'], csv);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.stdout.trim(), 'COPY 20002');
    const agg = await direct(db.name, `select count(*)::int as n, sum(amount)::text as s from copy_in where id >= 1000`);
    assert.deepEqual(agg.rows, [{ n: 20000, s: String((19999 * 20000) / 2) }]);
    assert.deepEqual((await direct(db.name, 'select label from copy_in where id in (10, 11) order by id')).rows, [{ label: 'comma, inside' }, { label: 'quote " inside' }]);

    const out = await psql(['-c', '\\copy (select id, label, amount from copy_in where id < 1000 order by id) to stdout']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, '1\tone\t1.5\n2\t\\N\t-2\n3\ttab\\there\t0\n10\tcomma, inside\t10\n11\tquote " inside\t11\n');
    const outCsv = await psql(['-c', '\\copy (select id, label from copy_in where id in (10, 11) order by id) to stdout with (format csv, header true)']);
    assert.equal(outCsv.stdout, 'id,label\n10,"comma, inside"\n11,"quote "" inside"\n');
    const bulk = await psql(['-c', '\\copy copy_in to stdout']);
    assert.equal(bulk.stdout.split('\n').filter(Boolean).length, 20005);
  });

  it('\\copy from a large file into a table that stalls now and then: every row arrives intact', async () => {
    // The server stops reading for a while at three rows (a trigger sleeps), so the proxy's writes
    // upstream queue up while they still point into the buffer the client's bytes are read into,
    // and psql keeps sending: that buffer must not be read into again until they are written.
    await direct(
      db.name,
      `create table copy_slow (id int, label text);
       create function copy_slow_stall() returns trigger language plpgsql as $$ begin perform pg_sleep(0.3); return new; end $$;
       create trigger copy_slow_stall before insert on copy_slow for each row when (new.id % 100000 = 1000) execute function copy_slow_stall();`,
    );
    const rows = 300_000;
    const file = join(tmp, 'copy-slow.tsv');
    const label = (i: number): string => `row-${i}-${'x'.repeat(i % 50)}`;
    writeFileSync(file, Array.from({ length: rows }, (_, i) => `${i}\t${label(i)}\n`).join(''));
    const r = await psql(['-c', `\\copy copy_slow from '${file}'`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `COPY ${rows}`);
    const check = await direct(db.name, `select count(*)::int as n, sum(id)::text as s, count(*) filter (where label is distinct from 'row-' || id || '-' || repeat('x', id % 50))::int as bad from copy_slow`);
    assert.deepEqual(check.rows, [{ n: rows, s: String(((rows - 1) * rows) / 2), bad: 0 }]);
  });

  it('runs multi-statement strings and files', async () => {
    const multi = await psql(['-At', '-c', 'select 1; select 2; select 3 union all select 4']);
    assert.equal(multi.code, 0, multi.stderr);
    assert.equal(multi.stdout, '1\n2\n3\n4\n');
    const base = await run('psql', ['-X', '-At', '-c', 'select 1; select 2; select 3 union all select 4'], { env: directEnv });
    assert.equal(multi.stdout, base.stdout);

    const file = join(tmp, 'script.sql');
    writeFileSync(
      file,
      `create table multi_f (a int);
insert into multi_f values (1), (2);
insert into multi_f select a + 10 from multi_f;
select sum(a) from multi_f;
\\set x 5
select :x * 2 as ten;
select 'multi-line',
       'statement'
  ; \\echo done
`,
    );
    const r = await psql(['-At', '-v', 'ON_ERROR_STOP=1', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'CREATE TABLE\nINSERT 0 2\nINSERT 0 2\n26\n10\nmulti-line|statement\ndone\n');
    assert.deepEqual((await direct(db.name, 'select array_agg(a order by a) as a from multi_f')).rows, [{ a: [1, 2, 11, 12] }]);
    // A large result set.
    const big = await psql(['-At', '-c', 'select g from generate_series(1, 100000) g']);
    const lines = big.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 100000);
    assert.equal(lines[99999], '100000');
  });

  it('reports errors, an aborted transaction until ROLLBACK, and the session stays usable', async () => {
    const script = `begin;
insert into widgets (name) values ('in-failed-tx');
select 1/0;
select 'after error';
rollback;
select 'usable ' || count(*) from widgets where name = 'in-failed-tx';
`;
    const r = await psql(['-qAt'], script);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'usable 0\n');
    assert.match(r.stderr, /ERROR: {2}division by zero/);
    assert.match(r.stderr, /ERROR: {2}current transaction is aborted, commands ignored until end of transaction block/);
    assert.equal((await direct(db.name, `select count(*)::int as n from widgets where name = 'in-failed-tx'`)).rows[0].n, 0);

    // Error fields survive: SQLSTATE and position with VERBOSITY verbose.
    const v = await psql(['-qAt', '-v', 'VERBOSITY=verbose', '-c', 'select * from no_such_table']);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /ERROR: {2}42P01: relation "no_such_table" does not exist\nLINE 1: select \* from no_such_table\n {22}\^/);
  });

  it('stops at the first error with ON_ERROR_STOP, and -1 rolls the whole script back', async () => {
    const r = await psql(['-qAt', '-v', 'ON_ERROR_STOP=1'], `select 'a';\nselect 1/0;\nselect 'b';\n`);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'a\n');
    assert.match(r.stderr, /division by zero/);

    const file = join(tmp, 'single.sql');
    writeFileSync(file, `insert into widgets (name) values ('single-tx-1');\ninsert into widgets (name) values ('single-tx-1');\n`);
    const one = await psql(['-qAt', '-1', '-v', 'ON_ERROR_STOP=1', '-f', file]);
    assert.equal(one.code, 3);
    assert.match(one.stderr, /duplicate key value violates unique constraint "widgets_name_key"/);
    assert.equal((await direct(db.name, `select count(*)::int as n from widgets where name = 'single-tx-1'`)).rows[0].n, 0);
  });

  it('shows notices and warnings on stderr', async () => {
    const r = await psql(['-qAt', '-c', `DO $$BEGIN RAISE NOTICE 'hi'; RAISE WARNING 'careful %', 42; END$$`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'NOTICE:  hi\nWARNING:  careful 42\n');
    assert.equal(r.stdout, '');
  });

  it('imports and exports large objects (\\lo_import, \\lo_export: the FunctionCall fast path)', async () => {
    const data = randomBytes(300_000);
    const src = join(tmp, 'lo-in.bin');
    const dst = join(tmp, 'lo-out.bin');
    writeFileSync(src, data);
    const imp = await psql(['-qAt', '-v', 'ON_ERROR_STOP=1'], `\\lo_import ${src}\n\\echo oid :LASTOID\n`);
    assert.equal(imp.code, 0, imp.stderr);
    const m = /^oid (\d+)$/m.exec(imp.stdout);
    assert.ok(m, imp.stdout);
    const oid = Number(m[1]);
    const stored = await direct(db.name, 'select md5(lo_get($1::oid)) as h, length(lo_get($1::oid)) as n', [oid]);
    assert.deepEqual(stored.rows[0], { h: createHash('md5').update(data).digest('hex'), n: data.length });
    const exp = await psql(['-qAt', '-c', `\\lo_export ${oid} ${dst}`]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.ok(readFileSync(dst).equals(data), 'exported bytes equal the imported file');
    const unlink = await psql(['-qAt', '-c', `\\lo_unlink ${oid}`]);
    assert.equal(unlink.code, 0, unlink.stderr);
    assert.equal((await direct(db.name, 'select count(*)::int as n from pg_largeobject_metadata where oid = $1', [oid])).rows[0].n, 0);
  });

  it('passes startup options (PGOPTIONS) and the client encoding to the server session', async () => {
    const sql = `select current_setting('statement_timeout'), current_setting('search_path'), current_setting('client_encoding')`;
    const env = { PGOPTIONS: '-c statement_timeout=1234 -c search_path=fid_schema,public', PGCLIENTENCODING: 'LATIN1' };
    const r = await psql(['-qAt', '-c', sql], undefined, env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '1234ms|fid_schema,public|LATIN1\n');
    const base = await run('psql', ['-X', '-qAt', '-c', sql], { env: { ...directEnv, ...env } });
    assert.equal(r.stdout, base.stdout);
  });

  it('reports a session the server ends (idle-in-transaction timeout) as psql does directly', async () => {
    const script = 'begin;\n\\! sleep 0.6\nselect 1;\n';
    const env = { PGOPTIONS: '-c idle_in_transaction_session_timeout=200' };
    const base = await run('psql', ['-X'], { env: { ...directEnv, ...env }, input: script });
    const via = await psql([], script, env);
    assert.equal(base.code, 2);
    assert.match(base.stderr, /^FATAL: {2}terminating connection due to idle-in-transaction timeout\n/);
    assert.equal(via.code, base.code);
    assert.equal(via.stdout, base.stdout);
    assert.equal(via.stderr, base.stderr);
  });

  it('makes application_name visible in pg_stat_activity', async () => {
    const app = `fid-psql-${process.pid}`;
    const own = await psql(['-qAt', '-c', 'select application_name from pg_stat_activity where pid = pg_backend_pid()'], undefined, { PGAPPNAME: app });
    assert.equal(own.stdout.trim(), app, own.stderr);

    // Long enough to be seen while it runs, also when each poll's connection is slow to open.
    const running = psql(['-qAt', '-c', 'select pg_sleep(4)'], undefined, { PGAPPNAME: `${app}-live` });
    const seen = await waitFor(
      async () => (await direct(db.name, `select query from pg_stat_activity where application_name = $1 and state = 'active'`, [`${app}-live`])).rows[0],
      20_000,
      'the session in pg_stat_activity',
    );
    assert.equal(seen.query, 'select pg_sleep(4)');
    assert.equal((await running).code, 0);
  });
});
