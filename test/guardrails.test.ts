/**
 * The built-in guardrails (src/policy/guardrails.ts) against a corpus of attempts to get
 * destructive SQL past them on a production connection. Every attempt goes through the real
 * proxy to the real PostgreSQL and asserts the exact outcome: refused with SQLSTATE 42501, the
 * rule's message and id, and the data intact afterwards (checked directly, bypassing the proxy).
 * Legitimate statements that merely look dangerous must pass; development connections are not
 * guarded; a dry-run override logs but lets the statement through. The affected-rows breaker
 * (guard.row-cap) has its own describe block at the end.
 *
 * A separate block attacks the machinery around the rules (the shape cache, EXECUTE resolution,
 * pipelined session settings). Tests that fail describe real holes and are kept failing on purpose
 * until src/ is fixed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { GUARDRAILS } from '../src/policy/guardrails.js';
import { createTestDatabase, direct, run } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { dataRow, errorFields, fe, pbe, RawClient, summary, type BackendMessage } from './helpers/raw-client.js';

type Db = Awaited<ReturnType<typeof createTestDatabase>>;

const MESSAGES = new Map(GUARDRAILS.map((g) => [g.id, g.message!]));

/** The exact client-visible message of a refusal by `rule`. */
function refusalMessage(rule: string): string {
  const m = MESSAGES.get(rule);
  assert.ok(m, `unknown guardrail ${rule}`);
  return `${m} (rule ${rule})`;
}

/** Assert that `p` fails with the refusal of `rule` (42501, message, detail). */
async function assertRefused(p: Promise<unknown>, rule: string): Promise<void> {
  await assert.rejects(p, (err: pg.DatabaseError) => {
    assert.equal(err.code, '42501', `expected 42501, got ${err.code}: ${err.message}`);
    assert.equal(err.message, refusalMessage(rule));
    assert.equal(err.detail, `Refused by Gatehouse rule "${rule}".`);
    return true;
  });
}

/** Assert an ErrorResponse from the raw client is the refusal of `rule`. */
function assertRefusalMessage(m: BackendMessage | undefined, rule: string): void {
  assert.ok(m, 'expected an ErrorResponse');
  assert.equal(m.type, 'E', `expected an ErrorResponse, got ${summary(m)}`);
  const f = errorFields(m);
  assert.equal(f.C, '42501');
  assert.equal(f.M, refusalMessage(rule));
  assert.equal(f.D, `Refused by Gatehouse rule "${rule}".`);
}

/** Shared database state and helpers for one describe block. */
class Fixture {
  db!: Db;
  proxy!: TestProxy;
  seq = 0;
  readonly tag = randomBytes(3).toString('hex');

  /** Stop the proxy and drop the database; each step runs even if the one before fails. */
  async cleanup(...more: Array<() => Promise<unknown> | void>): Promise<void> {
    const quiet = async (fn: () => Promise<unknown> | void): Promise<void> => {
      try {
        await fn();
      } catch {
        // best effort: a hung client must not leave the database or roles behind
      }
    };
    await quiet(() => this.proxy?.close());
    await quiet(() => this.db?.drop());
    for (const fn of more) await quiet(fn);
  }

  /** A fresh table `t_<tag>_<n>` (id int primary key, v text, "drop" int) with `rows` rows. */
  async table(rows = 3, prefix = 't'): Promise<string> {
    const t = `${prefix}_${this.tag}_${++this.seq}`;
    await direct(
      this.db.name,
      `create table ${t} (id int primary key, v text, "drop" int default 0);
       insert into ${t} (id, v) select g, 'v' || g from generate_series(1, ${rows}) g`,
    );
    return t;
  }

  /** Row count of a table, or null when it does not exist (directly, bypassing the proxy). */
  async count(t: string): Promise<number | null> {
    const e = await direct<{ ok: boolean }>(this.db.name, `select to_regclass($1) is not null as ok`, [t]);
    if (!e.rows[0]!.ok) return null;
    const r = await direct<{ n: string }>(this.db.name, `select count(*) as n from ${t}`);
    return Number(r.rows[0]!.n);
  }

  async columns(t: string): Promise<string[]> {
    const r = await direct<{ c: string }>(
      this.db.name,
      `select column_name as c from information_schema.columns where table_name = $1 order by ordinal_position`,
      [t],
    );
    return r.rows.map((x) => x.c);
  }

  async columnType(t: string, c: string): Promise<string | undefined> {
    const r = await direct<{ d: string }>(this.db.name, `select data_type as d from information_schema.columns where table_name = $1 and column_name = $2`, [t, c]);
    return r.rows[0]?.d;
  }

  async values(t: string): Promise<string[]> {
    const r = await direct<{ v: string }>(this.db.name, `select v from ${t} order by id`);
    return r.rows.map((x) => x.v);
  }

  async scalar<T = unknown>(sql: string, params: unknown[] = []): Promise<T> {
    const r = await direct(this.db.name, sql, params);
    return Object.values(r.rows[0]!)[0] as T;
  }

  prod(user = 'alice'): Promise<pg.Client> {
    return this.proxy.client({ user, database: 'prod' });
  }

  dev(user = 'alice'): Promise<pg.Client> {
    return this.proxy.client({ user, database: 'dev' });
  }

  raw(database = 'prod', params?: Record<string, string>): Promise<RawClient> {
    return RawClient.connect({ port: this.proxy.port, user: 'alice', password: 'alice-pw', database, params });
  }
}

interface Ctx {
  /** The table under attack (3 rows). */
  readonly t: string;
  /** A second table (3 rows), for USING/MERGE sources. */
  readonly u: string;
  readonly db: string;
  /** A NOLOGIN role created for the test run. */
  readonly role: string;
  /** A unique suffix for objects the attempt would create. */
  readonly tag: string;
  readonly f: Fixture;
}

interface Attempt {
  readonly name: string;
  readonly sql: (c: Ctx) => string;
  readonly rule: string;
  /** Send with parameters (extended protocol). */
  readonly values?: (c: Ctx) => unknown[];
  /** Extra checks that the attempt had no effect. */
  readonly intact?: (c: Ctx) => Promise<void>;
  /** Run on a connection of its own (session state checks). */
  readonly fresh?: boolean;
  /** Prepare objects the attempt needs (directly, bypassing the proxy). */
  readonly setup?: (c: Ctx) => Promise<void>;
}

const gone = (what: string, exists: boolean): void => assert.equal(exists, false, `${what} must not exist`);

/** The corpus: every entry must be refused by `rule` and leave t and u with 3 rows each. */
const CORPUS: Attempt[] = [
  // ---- DROP: case, quoting, schema, comments, whitespace, multi-statement ----
  { name: 'plain DROP TABLE', sql: (c) => `DROP TABLE ${c.t}`, rule: 'guard.drop' },
  { name: 'mixed case DrOp TaBlE', sql: (c) => `DrOp TaBlE ${c.t.toUpperCase()}`, rule: 'guard.drop' },
  { name: 'quoted identifier', sql: (c) => `drop table "${c.t}"`, rule: 'guard.drop' },
  { name: 'schema-qualified', sql: (c) => `drop table public.${c.t}`, rule: 'guard.drop' },
  { name: 'quoted schema and table', sql: (c) => `drop table "public"."${c.t}"`, rule: 'guard.drop' },
  { name: 'U&"..." unicode-escaped identifier', sql: (c) => `drop table U&"\\0074${c.t.slice(1)}"`, rule: 'guard.drop' },
  { name: 'U&"..." with UESCAPE', sql: (c) => `drop table U&"!0074${c.t.slice(1)}" UESCAPE '!'`, rule: 'guard.drop' },
  { name: 'comments between every token', sql: (c) => `/* a */ drop /* b */ table /* c */ ${c.t} /* d */`, rule: 'guard.drop' },
  { name: 'nested block comment before', sql: (c) => `/* outer /* inner */ still a comment; select 1 */ drop table ${c.t}`, rule: 'guard.drop' },
  { name: '-- line comment splitting the keywords', sql: (c) => `drop -- select 1\n table -- nothing to see\n ${c.t}`, rule: 'guard.drop' },
  { name: '-- comment containing */ then DROP', sql: (c) => `-- */ select 1\ndrop table ${c.t}`, rule: 'guard.drop' },
  { name: 'tabs, CR/LF and form feeds', sql: (c) => `\tDROP\r\n\fTABLE\n\t${c.t}\r\n`, rule: 'guard.drop' },
  { name: 'IF EXISTS ... CASCADE with two tables', sql: (c) => `drop table if exists nonexistent_${c.tag}, ${c.t} cascade`, rule: 'guard.drop' },
  { name: 'empty statements around it', sql: (c) => `;;; drop table ${c.t};;;`, rule: 'guard.drop' },
  { name: 'multi-statement: select 1; drop table', sql: (c) => `select 1; drop table ${c.t}`, rule: 'guard.drop' },
  { name: 'multi-statement: drop hidden between selects', sql: (c) => `select 'a'; /* x */ DROP TABLE ${c.t}; select 2`, rule: 'guard.drop' },
  { name: 'dollar-quoted string with ; before a real DROP', sql: (c) => `select $$ ; drop table x; $$; drop table ${c.t}`, rule: 'guard.drop' },
  { name: 'tagged dollar quote holding $$ and a quote', sql: (c) => `select $q$ $$ ' $q$; drop table ${c.t}`, rule: 'guard.drop' },
  { name: "E'' string with \\' escape before DROP", sql: (c) => `select E'it\\'s'; drop table ${c.t}`, rule: 'guard.drop' },
  { name: "standard string ending in a backslash: 'a\\'; drop ...", sql: (c) => `select 'a\\'; drop table ${c.t}; --'`, rule: 'guard.drop' },
  { name: "E'\\\\' (escaped backslash) then DROP", sql: (c) => `select E'\\\\'; drop table ${c.t}; --'`, rule: 'guard.drop' },
  { name: 'doubled quotes in a string before DROP', sql: (c) => `select 'it''s'';'; drop table ${c.t}`, rule: 'guard.drop' },
  { name: 'quoted identifier holding a semicolon', sql: (c) => `select 1 as "a;b"; drop table ${c.t}`, rule: 'guard.drop' },
  { name: 'DROP VIEW', sql: (c) => `drop view v_${c.tag}`, rule: 'guard.drop' },
  { name: 'DROP SCHEMA public CASCADE', sql: () => `DROP SCHEMA public CASCADE`, rule: 'guard.drop' },
  {
    name: 'DROP DATABASE (the test database itself)',
    sql: (c) => `drop database ${c.db} with (force)`,
    rule: 'guard.drop',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_database where datname = $1`, [c.db]), 1),
  },
  {
    name: 'DROP ROLE',
    sql: (c) => `drop role ${c.role}`,
    rule: 'guard.drop',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_roles where rolname = $1`, [c.role]), 1),
  },
  { name: 'DROP OWNED BY', sql: (c) => `DROP OWNED BY ${c.role} CASCADE`, rule: 'guard.drop' },

  // ---- TRUNCATE ----
  { name: 'TRUNCATE', sql: (c) => `TRUNCATE ${c.t}`, rule: 'guard.truncate' },
  { name: 'TRUNCATE ONLY', sql: (c) => `truncate only ${c.t}`, rule: 'guard.truncate' },
  { name: 'TRUNCATE TABLE ... RESTART IDENTITY CASCADE, two tables', sql: (c) => `TrUnCaTe TABLE public.${c.t}, "${c.u}" RESTART IDENTITY CASCADE`, rule: 'guard.truncate' },
  { name: 'TRUNCATE via multi-statement', sql: (c) => `select count(*) from ${c.t}; truncate ${c.t}`, rule: 'guard.truncate' },
  { name: 'TRUNCATE after a comment hiding a newline', sql: (c) => `/* \n */truncate/**/${c.t}`, rule: 'guard.truncate' },

  // ---- UPDATE/DELETE without a bounding WHERE ----
  { name: 'DELETE without WHERE', sql: (c) => `DELETE FROM ${c.t}`, rule: 'guard.unbounded-write' },
  { name: 'DELETE FROM ONLY', sql: (c) => `delete from only ${c.t}`, rule: 'guard.unbounded-write' },
  { name: 'DELETE WHERE true', sql: (c) => `delete from ${c.t} where true`, rule: 'guard.unbounded-write' },
  { name: 'DELETE WHERE 1=1', sql: (c) => `delete from ${c.t} where 1=1`, rule: 'guard.unbounded-write' },
  { name: 'DELETE WHERE EXISTS(select 1)', sql: (c) => `delete from ${c.t} where exists(select 1)`, rule: 'guard.unbounded-write' },
  { name: 'DELETE WHERE a sub-select on the table itself', sql: (c) => `delete from ${c.t} where (select count(*) from ${c.t}) > 0`, rule: 'guard.unbounded-write' },
  { name: "DELETE WHERE current_user = 'postgres'", sql: (c) => `delete from ${c.t} where current_user = 'postgres'`, rule: 'guard.unbounded-write' },
  { name: 'DELETE WHERE NOT false', sql: (c) => `delete from ${c.t} where not false`, rule: 'guard.unbounded-write' },
  { name: 'DELETE ... USING without a join condition', sql: (c) => `delete from ${c.t} using ${c.u}`, rule: 'guard.unbounded-write' },
  { name: 'DELETE WHERE id = 1 OR true (a column, but an OR that bounds nothing)', sql: (c) => `delete from ${c.t} where id = 1 or true`, rule: 'guard.unbounded-write' },
  { name: 'UPDATE WHERE (id = 1 OR 1 = 1) AND true', sql: (c) => `update ${c.t} set v = 'gone' where (id = 1 or 1 = 1) and true`, rule: 'guard.unbounded-write' },
  { name: 'UPDATE without WHERE', sql: (c) => `UPDATE ${c.t} SET v = 'gone'`, rule: 'guard.unbounded-write' },
  { name: 'UPDATE WHERE true', sql: (c) => `update ${c.t} set v = 'gone' where true`, rule: 'guard.unbounded-write' },
  { name: 'UPDATE WHERE 1 = 1', sql: (c) => `update ${c.t} set v = 'gone' where 1 = 1`, rule: 'guard.unbounded-write' },
  { name: 'UPDATE WHERE EXISTS (select 1)', sql: (c) => `update ${c.t} set v = 'gone' where exists (select 1)`, rule: 'guard.unbounded-write' },
  { name: 'UPDATE ... FROM without a join condition', sql: (c) => `update ${c.t} set v = 'gone' from ${c.u}`, rule: 'guard.unbounded-write' },
  { name: 'MERGE ... ON true ... DELETE', sql: (c) => `merge into ${c.t} using ${c.u} on true when matched then delete`, rule: 'guard.unbounded-write' },
  { name: 'MERGE ... ON 1=1 ... UPDATE', sql: (c) => `MERGE INTO ${c.t} USING (select 1 as k) s ON 1=1 WHEN MATCHED THEN UPDATE SET v = 'gone'`, rule: 'guard.unbounded-write' },
  { name: 'COPY (DELETE ... RETURNING) TO STDOUT', sql: (c) => `copy (delete from ${c.t} returning *) to stdout`, rule: 'guard.unbounded-write' },
  { name: 'unbounded DELETE in a data-modifying CTE', sql: (c) => `with d as (delete from ${c.t} returning *) select count(*) from d`, rule: 'guard.unbounded-write' },
  { name: 'EXPLAIN ANALYZE DELETE without WHERE', sql: (c) => `EXPLAIN ANALYZE DELETE FROM ${c.t}`, rule: 'guard.unbounded-write' },
  { name: 'PREPARE p AS DELETE without WHERE (refused at PREPARE)', sql: (c) => `PREPARE p_${c.tag} AS DELETE FROM ${c.t}`, rule: 'guard.unbounded-write' },
  {
    name: 'extended protocol: WHERE on a parameter only ($1::boolean)',
    sql: (c) => `delete from ${c.t} where $1::boolean`,
    values: () => [true],
    rule: 'guard.unbounded-write',
  },

  // ---- writes the breaker cannot see ----
  { name: 'bounded DELETE in a CTE', sql: (c) => `WITH d AS (DELETE FROM ${c.t} WHERE id = 1 RETURNING *) SELECT * FROM d`, rule: 'guard.uncappable-write' },
  { name: 'bounded UPDATE in a CTE feeding an INSERT', sql: (c) => `with x as (update ${c.t} set v = 'gone' where id > 0 returning id, v) insert into ${c.u} select id + 100, v from x`, rule: 'guard.uncappable-write' },
  { name: 'EXPLAIN ANALYZE DELETE ... WHERE', sql: (c) => `explain analyze delete from ${c.t} where id = 1`, rule: 'guard.uncappable-write' },
  { name: 'EXPLAIN (ANALYZE, COSTS off) UPDATE', sql: (c) => `EXPLAIN (ANALYZE, COSTS off) UPDATE ${c.t} SET v = 'gone' WHERE id > 0`, rule: 'guard.uncappable-write' },
  { name: 'EXPLAIN (ANALYZE true) DELETE', sql: (c) => `explain (analyze true) delete from ${c.t} where id = 2`, rule: 'guard.uncappable-write' },
  { name: 'EXPLAIN (ANALYZE on, BUFFERS) MERGE', sql: (c) => `explain (analyze on, buffers) merge into ${c.t} using ${c.u} on ${c.t}.id = ${c.u}.id when matched then delete`, rule: 'guard.uncappable-write' },

  // ---- destructive ALTER ----
  {
    name: 'ALTER TABLE DROP COLUMN',
    sql: (c) => `ALTER TABLE ${c.t} DROP COLUMN v`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.deepEqual(await c.f.columns(c.t), ['id', 'v', 'drop']),
  },
  {
    name: 'ALTER TABLE ALTER COLUMN TYPE',
    sql: (c) => `alter table ${c.t} alter column v type int using 0`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.equal(await c.f.columnType(c.t, 'v'), 'text'),
  },
  {
    name: 'ALTER TABLE ALTER v SET DATA TYPE (short form)',
    sql: (c) => `alter table ${c.t} alter v set data type varchar(1)`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.equal(await c.f.columnType(c.t, 'v'), 'text'),
  },
  { name: 'ALTER TABLE RENAME TO', sql: (c) => `ALTER TABLE ${c.t} RENAME TO ${c.t}_renamed`, rule: 'guard.destructive-alter' },
  {
    name: 'ALTER TABLE RENAME COLUMN',
    sql: (c) => `alter table ${c.t} rename column v to w`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.deepEqual(await c.f.columns(c.t), ['id', 'v', 'drop']),
  },
  {
    name: 'ALTER TABLE RENAME (no COLUMN keyword)',
    sql: (c) => `alter table public.${c.t} rename v to w`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.deepEqual(await c.f.columns(c.t), ['id', 'v', 'drop']),
  },
  {
    name: 'ALTER TABLE DROP CONSTRAINT',
    sql: (c) => `alter table ${c.t} drop constraint ${c.t}_pkey`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_constraint where conname = $1`, [`${c.t}_pkey`]), 1),
  },
  {
    name: 'harmless ADD COLUMN combined with DROP COLUMN',
    sql: (c) => `alter table ${c.t} add column w int, drop column v`,
    rule: 'guard.destructive-alter',
    intact: async (c) => assert.deepEqual(await c.f.columns(c.t), ['id', 'v', 'drop']),
  },

  // ---- privileges and roles ----
  {
    name: 'GRANT ALL ON TABLE',
    sql: (c) => `GRANT ALL ON ${c.t} TO ${c.role}`,
    rule: 'guard.privileges',
    intact: async (c) => assert.equal(await c.f.scalar(`select has_table_privilege($1, $2, 'DELETE')`, [c.role, c.t]), false),
  },
  {
    name: 'REVOKE',
    sql: (c) => `revoke all on ${c.t} from public`,
    rule: 'guard.privileges',
    intact: async (c) => assert.equal(await c.f.scalar(`select relacl is null from pg_class where relname = $1`, [c.t]), true),
  },
  {
    name: 'GRANT a predefined role (pg_read_server_files)',
    sql: (c) => `grant pg_read_server_files to ${c.role}`,
    rule: 'guard.privileges',
    intact: async (c) => assert.equal(await c.f.scalar(`select pg_has_role($1, 'pg_read_server_files', 'member')`, [c.role]), false),
  },
  {
    name: 'CREATE ROLE ... SUPERUSER',
    sql: (c) => `CREATE ROLE evil_${c.tag} SUPERUSER LOGIN PASSWORD 'x'`,
    rule: 'guard.privileges',
    intact: async (c) => gone('role evil_*', (await c.f.scalar<number>(`select count(*)::int from pg_roles where rolname = $1`, [`evil_${c.tag}`])) > 0),
  },
  {
    name: 'ALTER ROLE ... SUPERUSER',
    sql: (c) => `alter role ${c.role} superuser login`,
    rule: 'guard.privileges',
    intact: async (c) => assert.equal(await c.f.scalar(`select rolsuper from pg_roles where rolname = $1`, [c.role]), false),
  },
  { name: 'ALTER ROLE ... SET role', sql: (c) => `alter role ${c.role} set role = 'postgres'`, rule: 'guard.privileges' },
  { name: 'ALTER DEFAULT PRIVILEGES', sql: (c) => `alter default privileges grant all on tables to ${c.role}`, rule: 'guard.privileges' },

  // ---- server administration ----
  {
    name: 'ALTER SYSTEM',
    sql: () => `ALTER SYSTEM SET gatehouse_guard_test.probe = 'x'`,
    rule: 'guard.server-admin',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_file_settings where name = 'gatehouse_guard_test.probe'`), 0),
  },
  { name: 'LOAD a library', sql: () => `LOAD 'auto_explain'`, rule: 'guard.server-admin' },

  // ---- COPY with server-side files or programs ----
  {
    name: 'COPY TO PROGRAM',
    sql: (c) => `COPY ${c.t} TO PROGRAM 'touch /tmp/gh_guard_${c.tag}'`,
    rule: 'guard.copy-server-side',
    intact: async (c) => gone(`/tmp/gh_guard_${c.tag}`, existsSync(`/tmp/gh_guard_${c.tag}`)),
  },
  {
    name: 'COPY (query) TO PROGRAM',
    sql: (c) => `copy (select 1) to program 'touch /tmp/gh_guard_q_${c.tag}'`,
    rule: 'guard.copy-server-side',
    intact: async (c) => gone(`/tmp/gh_guard_q_${c.tag}`, existsSync(`/tmp/gh_guard_q_${c.tag}`)),
  },
  { name: "COPY FROM '/etc/passwd'", sql: (c) => `copy ${c.t} (v) from '/etc/passwd'`, rule: 'guard.copy-server-side' },
  {
    name: 'COPY TO a server file',
    sql: (c) => `COPY ${c.t} TO '/tmp/gh_guard_f_${c.tag}.csv' (FORMAT csv)`,
    rule: 'guard.copy-server-side',
    intact: async (c) => gone('the server file', existsSync(`/tmp/gh_guard_f_${c.tag}.csv`)),
  },
  { name: 'COPY FROM PROGRAM', sql: (c) => `copy ${c.t} (v) from program 'echo pwned'`, rule: 'guard.copy-server-side' },

  // ---- server file/process/config functions ----
  { name: "select pg_read_file('/etc/passwd')", sql: () => `select pg_read_file('/etc/passwd')`, rule: 'guard.server-functions' },
  { name: 'pg_read_file in FROM', sql: () => `select * from pg_read_file('/etc/hostname') as f(x)`, rule: 'guard.server-functions' },
  { name: 'schema-qualified, quoted pg_catalog."pg_read_binary_file"', sql: () => `select pg_catalog."pg_read_binary_file"('/etc/hostname')`, rule: 'guard.server-functions' },
  { name: 'PG_LS_DIR in upper case, nested in an expression', sql: () => `SELECT upper(PG_LS_DIR('.')::text)`, rule: 'guard.server-functions' },
  { name: 'pg_read_file hidden in a sub-select of a WHERE', sql: (c) => `select * from ${c.t} where exists (select pg_read_file('/etc/hostname'))`, rule: 'guard.server-functions' },
  {
    name: 'lo_import',
    sql: () => `select lo_import('/etc/hostname')`,
    rule: 'guard.server-functions',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_largeobject_metadata`), 0),
  },
  { name: 'lo_export', sql: (c) => `select lo_export(0, '/tmp/gh_guard_lo_${c.tag}')`, rule: 'guard.server-functions' },
  { name: 'pg_terminate_backend', sql: () => `select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()`, rule: 'guard.server-functions' },
  { name: 'pg_reload_conf', sql: () => `select pg_reload_conf()`, rule: 'guard.server-functions' },
  { name: "set_config('role', ...)", sql: (c) => `select set_config('role', '${c.role}', false)`, rule: 'guard.server-functions', fresh: true },
  { name: 'set_config in a CTE', sql: (c) => `with x as (select set_config('session_replication_role', 'replica', false)) select * from x`, rule: 'guard.server-functions', fresh: true },

  // ---- session identity ----
  { name: 'SET ROLE', sql: (c) => `SET ROLE ${c.role}`, rule: 'guard.session-identity', fresh: true },
  { name: 'SET SESSION ROLE', sql: (c) => `set session role ${c.role}`, rule: 'guard.session-identity', fresh: true },
  { name: 'SET "role" TO (generic form)', sql: (c) => `SET "role" TO '${c.role}'`, rule: 'guard.session-identity', fresh: true },
  { name: 'SET SESSION AUTHORIZATION', sql: (c) => `SET SESSION AUTHORIZATION ${c.role}`, rule: 'guard.session-identity', fresh: true },
  { name: 'SET SESSION AUTHORIZATION DEFAULT', sql: () => `set session authorization default`, rule: 'guard.session-identity', fresh: true },
  { name: 'RESET ROLE', sql: () => `RESET ROLE`, rule: 'guard.session-identity', fresh: true },
  { name: 'RESET SESSION AUTHORIZATION', sql: () => `reset session authorization`, rule: 'guard.session-identity', fresh: true },
  { name: 'SET session_replication_role = replica', sql: () => `SET session_replication_role = replica`, rule: 'guard.session-identity', fresh: true },
  { name: 'SET LOCAL session_replication_role', sql: () => `set local session_replication_role to 'replica'`, rule: 'guard.session-identity', fresh: true },

  // ---- settings that change how the server reads later statements ----
  { name: 'SET standard_conforming_strings = off', sql: () => `SET standard_conforming_strings = off`, rule: 'guard.lexical-settings', fresh: true },
  { name: "SET client_encoding = 'SJIS'", sql: () => `set client_encoding = 'SJIS'`, rule: 'guard.lexical-settings', fresh: true },
  { name: "SET NAMES 'BIG5'", sql: () => `SET NAMES 'BIG5'`, rule: 'guard.lexical-settings', fresh: true },

  // ---- dynamic SQL ----
  { name: 'DO block with EXECUTE', sql: (c) => `DO $$ BEGIN EXECUTE 'DROP TABLE ' || '${c.t}'; END $$`, rule: 'guard.dynamic-sql' },
  { name: 'DO block with a tagged dollar quote and LANGUAGE', sql: (c) => `do language plpgsql $body$ begin delete from ${c.t}; end $body$`, rule: 'guard.dynamic-sql' },
  {
    name: 'CREATE FUNCTION (then calling it fails: it does not exist)',
    sql: (c) => `create function wipe_${c.tag}() returns void language sql as $$ delete from ${c.t} $$`,
    rule: 'guard.dynamic-sql',
    intact: async (c) => {
      const client = await c.f.prod();
      await assert.rejects(client.query(`select wipe_${c.tag}()`), { code: '42883' });
      await client.end();
    },
  },
  { name: 'CREATE OR REPLACE PROCEDURE', sql: (c) => `create or replace procedure wipep_${c.tag}() language sql as $$ truncate ${c.t} $$`, rule: 'guard.dynamic-sql' },
  { name: 'CREATE TRIGGER', sql: (c) => `create trigger tr_${c.tag} before insert on ${c.t} for each row execute function suppress_redundant_updates_trigger()`, rule: 'guard.dynamic-sql' },
  { name: 'CREATE RULE', sql: (c) => `create rule r_${c.tag} as on insert to ${c.u} do also delete from ${c.t}`, rule: 'guard.dynamic-sql' },
  {
    name: 'CALL an existing procedure that deletes everything',
    sql: (c) => `CALL wipe_proc_${c.tag}()`,
    rule: 'guard.dynamic-sql',
    setup: async (c) => {
      await direct(c.db, `create procedure wipe_proc_${c.tag}() language sql as $$ delete from ${c.t} $$`);
    },
  },
  { name: 'EXECUTE of a statement never prepared through Gatehouse', sql: (c) => `execute nothere_${c.tag}`, rule: 'guard.dynamic-sql' },

  // ---- unparseable ----
  { name: 'misspelled keyword', sql: (c) => `DROP TABLEE ${c.t}`, rule: 'guard.unparseable' },
  { name: 'garbage bytes', sql: () => `\u0001\u0002 drop ))) table ;;`, rule: 'guard.unparseable' },
  { name: 'unterminated string', sql: (c) => `select 'abc; drop table ${c.t}`, rule: 'guard.unparseable' },
  { name: 'unterminated nested comment', sql: (c) => `/* /* */ drop table ${c.t}`, rule: 'guard.unparseable' },
  { name: 'stray */ after a comment', sql: (c) => `/* */ */ drop table ${c.t}`, rule: 'guard.unparseable' },
  { name: 'non-breaking space glued to a keyword', sql: (c) => `drop\u00a0table ${c.t}`, rule: 'guard.unparseable' },
  { name: 'PostgreSQL 15 accepts "select 1abc", the analyzer does not: fail closed', sql: () => `select 1abc`, rule: 'guard.unparseable' },

  // ---- other DDL needs approval ----
  {
    name: 'CREATE TABLE',
    sql: (c) => `create table new_${c.tag} (id int)`,
    rule: 'guard.ddl-approval',
    intact: async (c) => assert.equal(await c.f.count(`new_${c.tag}`), null),
  },
  { name: 'CREATE INDEX', sql: (c) => `create index on ${c.t} (v)`, rule: 'guard.ddl-approval' },
  {
    name: 'ALTER TABLE ADD COLUMN',
    sql: (c) => `alter table ${c.t} add column w int`,
    rule: 'guard.ddl-approval',
    intact: async (c) => assert.deepEqual(await c.f.columns(c.t), ['id', 'v', 'drop']),
  },
  { name: 'CREATE TABLE AS', sql: (c) => `create table copy_${c.tag} as select * from ${c.t}`, rule: 'guard.ddl-approval' },
  { name: 'SELECT INTO', sql: (c) => `select * into copy2_${c.tag} from ${c.t}`, rule: 'guard.ddl-approval' },
  { name: 'COMMENT ON', sql: (c) => `comment on table ${c.t} is 'x'`, rule: 'guard.ddl-approval' },
  { name: 'ALTER TABLE OWNER TO', sql: (c) => `alter table ${c.t} owner to ${c.role}`, rule: 'guard.ddl-approval' },
  {
    name: 'CREATE AGGREGATE (DefineStmt)',
    sql: (c) => `create aggregate agg_${c.tag} (int) (sfunc = int4pl, stype = int4)`,
    rule: 'guard.ddl-approval',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_proc where proname = $1`, [`agg_${c.tag}`]), 0),
  },
  {
    name: 'CREATE OPERATOR (DefineStmt; could shadow = through search_path)',
    sql: () => `create operator public.=== (leftarg = int, rightarg = int, function = int4eq)`,
    rule: 'guard.ddl-approval',
    intact: async (c) => assert.equal(await c.f.scalar(`select count(*)::int from pg_operator where oprname = '==='`), 0),
  },
  { name: 'CREATE COLLATION (DefineStmt)', sql: (c) => `create collation coll_${c.tag} from "C"`, rule: 'guard.ddl-approval' },
  { name: 'SECURITY LABEL', sql: (c) => `security label on table ${c.t} is 'x'`, rule: 'guard.ddl-approval' },
];

describe('guardrails on a production connection', () => {
  const f = new Fixture();
  let role: string;
  let prod: pg.Client;

  before(async () => {
    f.db = await createTestDatabase('gh_guard');
    role = `gh_guard_role_${f.tag}`;
    await direct('postgres', `create role ${role} nologin`);
    f.proxy = await startProxy({ database: f.db.name });
    prod = await f.prod();
  });
  after(async () => {
    await f.cleanup(
      () => direct('postgres', `drop role if exists ${role}`),
      async () => {
        // Only if CREATE ROLE got through (it must not).
        const leaked = await direct<{ r: string }>('postgres', `select rolname as r from pg_roles where rolname like $1`, [`evil\\_${f.tag}%`]);
        for (const { r } of leaked.rows) await direct('postgres', `drop role if exists ${r}`);
      },
    );
  });

  it('the corpus has at least 60 attempts', () => {
    assert.ok(CORPUS.length >= 60, `only ${CORPUS.length} attempts`);
    assert.equal(new Set(CORPUS.map((a) => a.name)).size, CORPUS.length, 'attempt names must be unique');
  });

  describe('destructive attempts are refused and change nothing', () => {
    for (const a of CORPUS) {
      it(`${a.rule}: ${a.name}`, async () => {
        const t = await f.table();
        const u = await f.table(3, 'u');
        const c: Ctx = { t, u, db: f.db.name, role, tag: `${f.tag}_${f.seq}`, f };
        await a.setup?.(c);
        const client = a.fresh ? await f.prod() : prod;
        const sql = a.sql(c);
        const values = a.values?.(c);
        await assertRefused(values ? client.query(sql, values) : client.query(sql), a.rule);
        // The session is still usable and its identity unchanged.
        const who = await client.query<{ u: string; s: string; r: string; scs: string; enc: string }>(
          `select current_user as u, session_user as s, current_setting('session_replication_role') as r,
                  current_setting('standard_conforming_strings') as scs, current_setting('client_encoding') as enc`,
        );
        assert.deepEqual(who.rows[0], { u: 'postgres', s: 'postgres', r: 'origin', scs: 'on', enc: 'UTF8' });
        if (a.fresh) await client.end();
        assert.equal(await f.count(t), 3, `${t} must still have its 3 rows`);
        assert.equal(await f.count(u), 3, `${u} must still have its 3 rows`);
        assert.deepEqual(await f.values(t), ['v1', 'v2', 'v3']);
        await a.intact?.(c);
      });
    }
  });

  it('psql (simple protocol, libpq) shows the refusal with its detail', async () => {
    const t = await f.table();
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', `drop table ${t}`], { env: f.proxy.env('alice', 'prod') });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`ERROR:  ${refusalMessage('guard.drop').replace(/[()]/g, '\\$&')}`));
    assert.match(r.stderr, /DETAIL:  Refused by Gatehouse rule "guard.drop"\./);
    assert.equal(await f.count(t), 3);
  });

  it('extended protocol via pg (queryMode extended, no parameters)', async () => {
    const t = await f.table();
    await assertRefused(prod.query({ text: `drop table ${t}`, values: [], queryMode: 'extended' } as pg.QueryConfig), 'guard.drop');
    await assertRefused(prod.query({ text: `truncate ${t}`, values: [], queryMode: 'extended' } as pg.QueryConfig), 'guard.truncate');
    assert.equal((await prod.query('select $1::int as n', [7])).rows[0].n, 7);
    assert.equal(await f.count(t), 3);
  });

  it('extended protocol via pg with parameters (unbounded DELETE and parameterized pg_read_file)', async () => {
    const t = await f.table();
    await assertRefused(prod.query(`delete from ${t} where $1::int > 0`, [1]), 'guard.unbounded-write');
    await assertRefused(prod.query(`select pg_read_file($1)`, ['/etc/passwd']), 'guard.server-functions');
    assert.equal(await f.count(t), 3);
  });

  it('raw Parse of a DROP: refused at Parse, the statement never exists on the server', async () => {
    const t = await f.table();
    const r = await f.raw();
    try {
      r.write(fe.parse('evil', `drop table ${t}`), fe.bind('', 'evil'), fe.execute(''), fe.sync());
      const msgs = await r.untilReady();
      assert.deepEqual(msgs.map(summary), ['E:42501', 'Z:I']);
      assertRefusalMessage(msgs[0], 'guard.drop');
      // Binding the refused name later: the server never had it.
      r.write(fe.bind('', 'evil'), fe.execute(''), fe.sync());
      const again = await r.untilReady();
      assert.deepEqual(again.map(summary), ['E:26000', 'Z:I']);
      r.write(fe.query('select 1'));
      assert.deepEqual((await r.untilReady()).map(summary), ['T:?column?', 'D:["1"]', 'C:SELECT 1', 'Z:I']);
    } finally {
      await r.terminate();
    }
    assert.equal(await f.count(t), 3);
  });

  it('extended protocol: the refusal arrives in place, the rest is skipped until Sync, and the implicit transaction is rolled back', async () => {
    const t = await f.table();
    const r = await f.raw();
    try {
      r.write(
        ...pbe(`insert into ${t} (id, v) values ($1, 'new')`, ['100']),
        ...pbe(`drop table ${t}`),
        ...pbe(`insert into ${t} (id, v) values (101, 'after')`),
        fe.sync(),
      );
      const msgs = await r.untilReady();
      assert.deepEqual(msgs.map(summary), ['1', '2', 'C:INSERT 0 1', 'E:42501', 'Z:I']);
      assertRefusalMessage(msgs[3], 'guard.drop');
      // The next Sync segment runs normally.
      r.write(...pbe('select 2'), fe.sync());
      assert.deepEqual((await r.untilReady()).map(summary), ['1', '2', 'D:["2"]', 'C:SELECT 1', 'Z:I']);
    } finally {
      await r.terminate();
    }
    assert.equal(await f.count(t), 3, 'the first INSERT was in the same implicit transaction: rolled back');
    assert.equal(await f.scalar(`select count(*)::int from ${t} where id >= 100`), 0);
  });

  it('inside an explicit transaction: the refusal fails the transaction (25P02) until ROLLBACK, then the session works', async () => {
    const t = await f.table();
    const c = await f.prod();
    await c.query('BEGIN');
    await c.query(`insert into ${t} (id, v) values (50, 'in tx')`);
    await assertRefused(c.query(`DROP TABLE ${t}`), 'guard.drop');
    await assert.rejects(c.query('select 1'), { code: '25P02' });
    await assert.rejects(c.query(`select count(*) from ${t}`), { code: '25P02' });
    await c.query('ROLLBACK');
    assert.equal((await c.query('select 41 + 1 as n')).rows[0].n, 42);
    await c.query('BEGIN');
    await assertRefused(c.query(`truncate ${t}`), 'guard.truncate');
    // COMMIT of a failed transaction is a rollback, as PostgreSQL reports it.
    const commit = await c.query('COMMIT');
    assert.equal(commit.command, 'ROLLBACK');
    await c.end();
    assert.equal(await f.count(t), 3);
    assert.equal(await f.scalar(`select count(*)::int from ${t} where id = 50`), 0);
  });

  it('inside an explicit transaction via the raw client: server-reported transaction status is E after the refusal', async () => {
    const t = await f.table();
    const r = await f.raw();
    try {
      r.write(fe.query('BEGIN'));
      assert.deepEqual((await r.untilReady()).map(summary), ['C:BEGIN', 'Z:T']);
      r.write(fe.query(`select 1; drop table ${t}`));
      const msgs = await r.untilReady();
      assert.deepEqual(msgs.map(summary), ['E:42501', 'Z:E']);
      assertRefusalMessage(msgs[0], 'guard.drop');
      r.write(fe.query('select 1'));
      assert.deepEqual((await r.untilReady()).map(summary), ['E:25P02', 'Z:E']);
      r.write(fe.query('ROLLBACK'));
      assert.deepEqual((await r.untilReady()).map(summary), ['C:ROLLBACK', 'Z:I']);
    } finally {
      await r.terminate();
    }
    assert.equal(await f.count(t), 3);
  });

  it('PREPARE of a harmless statement then EXECUTE is allowed', async () => {
    const t = await f.table();
    const c = await f.prod();
    await c.query(`PREPARE getv AS SELECT v FROM ${t} WHERE id = $1`);
    assert.deepEqual((await c.query(`EXECUTE getv(2)`)).rows, [{ v: 'v2' }]);
    await c.query(`prepare setv (int) as update ${t} set v = v where id = $1`);
    assert.equal((await c.query(`execute setv(1)`)).rowCount, 1);
    await c.end();
    assert.equal(await f.count(t), 3);
  });

  it('PREPARE of an unbounded DELETE is refused, so a later EXECUTE is refused too', async () => {
    const t = await f.table();
    const c = await f.prod();
    await assertRefused(c.query(`PREPARE wipe AS DELETE FROM ${t}`), 'guard.unbounded-write');
    await assertRefused(c.query(`EXECUTE wipe`), 'guard.dynamic-sql');
    await c.end();
    assert.equal(await f.count(t), 3);
  });

  describe('startup parameters cannot change the session identity', () => {
    const identity = async (c: RawClient): Promise<string[]> => {
      c.write(fe.query(`select current_user, session_user, current_setting('session_replication_role')`));
      const msgs = await c.untilReady();
      const row = msgs.find((m) => m.type === 'D');
      assert.ok(row, msgs.map(summary).join(' '));
      return dataRow(row).map(String);
    };

    for (const [name, params] of [
      ['options=-c role=<role>', (r: string) => ({ options: `-c role=${r}` })],
      ['options=-crole=<role> (no space)', (r: string) => ({ options: `-crole=${r}` })],
      ['options=--role=<role>', (r: string) => ({ options: `--role=${r}` })],
      ['options with an allowed setting then role', (r: string) => ({ options: `-c statement_timeout=0 -c role=${r} -c session_replication_role=replica` })],
      ['startup parameter role', (r: string) => ({ role: r })],
      ['startup parameter ROLE (upper case)', (r: string) => ({ ROLE: r })],
      ['startup parameter session_authorization', (r: string) => ({ session_authorization: r })],
      ['startup parameter session_replication_role', () => ({ session_replication_role: 'replica' })],
    ] as Array<[string, (r: string) => Record<string, string>]>) {
      it(name, async () => {
        const c = await f.raw('prod', params(role));
        try {
          assert.deepEqual(await identity(c), ['postgres', 'postgres', 'origin']);
        } finally {
          await c.terminate();
        }
      });
    }

    it('node-postgres `options: -c role=...`', async () => {
      const c = await f.proxy.client({ database: 'prod', options: `-c role=${role}` });
      const r = await c.query(`select current_user as u`);
      assert.equal(r.rows[0].u, 'postgres');
      await c.end();
    });
  });

  describe('legitimate statements that look dangerous pass on production', () => {
    const cases: Array<{ name: string; sql: (t: string) => string; check: (r: pg.QueryResult, t: string) => void | Promise<void> }> = [
      { name: 'a string literal containing DROP TABLE', sql: (t) => `select 'drop table ${t}' as s`, check: (r, t) => assert.equal(r.rows[0].s, `drop table ${t}`) },
      { name: 'a commented-out DELETE after a statement', sql: (t) => `select 1 as n -- delete from ${t}`, check: (r) => assert.equal(r.rows[0].n, 1) },
      { name: 'a block comment holding TRUNCATE', sql: (t) => `/* truncate ${t} */ select 1 as n`, check: (r) => assert.equal(r.rows[0].n, 1) },
      { name: 'a nested comment holding a whole DROP', sql: (t) => `/* /* */ drop table ${t}; -- */ select 2 as n`, check: (r) => assert.equal(r.rows[0].n, 2) },
      { name: 'a column named "drop"', sql: (t) => `select "drop" from ${t} where id = 1`, check: (r) => assert.deepEqual(r.rows, [{ drop: 0 }]) },
      { name: 'UPDATE of the column "drop" with a proper WHERE', sql: (t) => `update ${t} set "drop" = 1 where id = 1`, check: (r) => assert.equal(r.rowCount, 1) },
      { name: 'UPDATE with a proper WHERE', sql: (t) => `update ${t} set v = v where id = 1`, check: (r) => assert.equal(r.rowCount, 1) },
      { name: 'DELETE of one row by key', sql: (t) => `delete from ${t} where id = 3 and v = 'nope'`, check: (r) => assert.equal(r.rowCount, 0) },
      { name: 'INSERT', sql: (t) => `insert into ${t} (id, v) values (10, 'drop table x')`, check: async (r, t) => {
        assert.equal(r.rowCount, 1);
        await direct(f.db.name, `delete from ${t} where id = 10`);
      } },
      { name: 'SELECT with functions (now, count, upper)', sql: (t) => `select now() is not null as ok, count(*)::int as n, upper('drop') as u from ${t}`, check: (r) => assert.deepEqual(r.rows[0], { ok: true, n: 3, u: 'DROP' }) },
      { name: 'EXPLAIN (without ANALYZE) DELETE', sql: (t) => `EXPLAIN DELETE FROM ${t}`, check: (r) => assert.match(String(r.rows[0]['QUERY PLAN']), /Delete on/) },
      { name: "EXPLAIN (ANALYZE off) DELETE", sql: (t) => `explain (analyze off) delete from ${t}`, check: (r) => assert.match(String(r.rows[0]['QUERY PLAN']), /Delete on/) },
      { name: 'SET statement_timeout', sql: () => `SET statement_timeout = '5s'`, check: (r) => assert.equal(r.command, 'SET') },
      { name: 'SHOW', sql: () => `SHOW statement_timeout`, check: (r) => assert.equal(r.rows.length, 1) },
      { name: 'a dollar-quoted string containing DROP TABLE', sql: (t) => `select $$DROP TABLE ${t}; TRUNCATE ${t}$$ as s`, check: (r, t) => assert.equal(r.rows[0].s, `DROP TABLE ${t}; TRUNCATE ${t}`) },
      { name: 'a tagged dollar quote containing $$ and a DELETE', sql: (t) => `select $x$ $$ delete from ${t} $$ $x$ as s`, check: (r, t) => assert.equal(r.rows[0].s, ` $$ delete from ${t} $$ `) },
      { name: "an E'' string whose \\' keeps the DROP inside it", sql: (t) => `select E'\\'; drop table ${t}; --' as s`, check: (r, t) => assert.equal(r.rows[0].s, `'; drop table ${t}; --`) },
      { name: 'a LIKE pattern mentioning drop table', sql: (t) => `select count(*)::int as n from ${t} where v like '%drop table%'`, check: (r) => assert.equal(r.rows[0].n, 0) },
      { name: 'a U&"..." identifier for a column', sql: (t) => `select U&"\\0076" as v from ${t} where id = 2`, check: (r) => assert.equal(r.rows[0].v, 'v2') },
      { name: 'a CTE that only reads', sql: (t) => `with x as (select * from ${t}) select count(*)::int as n from x`, check: (r) => assert.equal(r.rows[0].n, 3) },
      { name: 'a data-modifying CTE that only inserts', sql: (t) => `with x as (insert into ${t} (id, v) values (11, 'x') returning id) select id from x`, check: async (r, t) => {
        assert.deepEqual(r.rows, [{ id: 11 }]);
        await direct(f.db.name, `delete from ${t} where id = 11`);
      } },
      { name: 'SET search_path and RESET ALL', sql: () => `set search_path to public; reset all`, check: () => undefined },
      { name: 'an empty query of only comments', sql: (t) => `-- drop table ${t}\n/* truncate ${t} */`, check: (r) => assert.equal(r.command, null) },
    ];
    for (const x of cases) {
      it(x.name, async () => {
        const t = await f.table();
        const r = await prod.query(x.sql(t));
        await x.check(r, t);
        assert.equal(await f.count(t), 3);
      });
    }

    it('BEGIN ... COMMIT', async () => {
      const t = await f.table();
      await prod.query('BEGIN');
      await prod.query(`update ${t} set v = 'changed' where id = 2`);
      await prod.query('COMMIT');
      assert.deepEqual(await f.values(t), ['v1', 'changed', 'v3']);
    });

    it('extended protocol with parameters (a bounded UPDATE, under the row cap)', { timeout: 30_000 }, async () => {
      const t = await f.table();
      const c = await f.prod(); // own connection: the row-cap breaker is work in progress
      const r = await c.query(`update ${t} set v = $1 where id = $2`, ['drop table x', 2]);
      await c.end();
      assert.equal(r.rowCount, 1);
      assert.deepEqual(await f.values(t), ['v1', 'drop table x', 'v3']);
    });
  });

  describe('development connections are not guarded', () => {
    it('DROP TABLE, TRUNCATE and DELETE without WHERE run on dev', async () => {
      const dev = await f.dev();
      const a = await f.table();
      const b = await f.table();
      const c = await f.table();
      await dev.query(`drop table ${a}`);
      await dev.query(`truncate ${b}`);
      assert.equal((await dev.query(`delete from ${c}`)).rowCount, 3);
      await dev.end();
      assert.equal(await f.count(a), null);
      assert.equal(await f.count(b), 0);
      assert.equal(await f.count(c), 0);
    });
  });
});

describe('a dry-run override of guard.drop', () => {
  const f = new Fixture();
  let dir: string;
  before(async () => {
    f.db = await createTestDatabase('gh_guard_dry');
    dir = mkdtempSync(join(tmpdir(), 'gh-guard-policy-'));
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'rules:\n  - id: guard.drop\n    mode: dry-run\n');
    f.proxy = await startProxy({ database: f.db.name, extraYaml: `policy: { files: [${JSON.stringify(file)}] }` });
  });
  after(async () => {
    await f.cleanup(() => rmSync(dir, { recursive: true, force: true }));
  });

  it('lets DROP TABLE through on prod (logged, not enforced); other guardrails still enforce', async () => {
    const t = await f.table();
    const u = await f.table();
    const c = await f.prod();
    await c.query(`DROP TABLE ${t}`);
    assert.equal(await f.count(t), null, 'the table is gone');
    await assertRefused(c.query(`truncate ${u}`), 'guard.truncate');
    await assertRefused(c.query(`delete from ${u}`), 'guard.unbounded-write');
    assert.equal(await f.count(u), 3);
    await c.end();
  });
});

/**
 * Attacks on the machinery around the rules rather than on the rules: the shape cache (facts and
 * decisions reused for texts with the same statementKey), EXECUTE resolution, session settings
 * changed by a pipelined statement. Each got through when first written.
 */
describe('attacks on the shape cache, EXECUTE resolution and session settings', () => {
  const f = new Fixture();
  let role: string;
  before(async () => {
    f.db = await createTestDatabase('gh_guard_bypass');
    role = `gh_guard_brole_${f.tag}`;
    await direct('postgres', `create role ${role} nologin`);
    f.proxy = await startProxy({ database: f.db.name });
  });
  after(async () => {
    await f.cleanup(() => direct('postgres', `drop role if exists ${role}`));
  });

  it("shape cache: EXPLAIN (ANALYZE 'off') allowed, then EXPLAIN (ANALYZE 'on') DELETE without WHERE refused (another session)", async () => {
    // Option values are literals, which statementKey replaces, yet `analyze` depends on them: the
    // 'off' variant (a plain EXPLAIN, allowed) must not be cached for the 'on' variant to reuse.
    const t = await f.table();
    const a = await f.prod('alice');
    const planned = await a.query(`EXPLAIN (ANALYZE 'off') DELETE FROM ${t}`);
    assert.match(String(planned.rows[0]['QUERY PLAN']), /Delete on/);
    await a.end();
    const b = await f.prod('bob'); // another session, another user: the facts cache is shared
    await assertRefused(b.query(`EXPLAIN (ANALYZE 'on') DELETE FROM ${t}`), 'guard.unbounded-write').finally(() => b.end());
    assert.equal(await f.count(t), 3);
  });

  it("shape cache: U&\"!0070g_read_file\" UESCAPE '#' then UESCAPE '!' (= pg_read_file) is refused", async () => {
    // The UESCAPE literal decides what U&"..." decodes to; a key that replaces it reuses the first
    // text's decision for the second.
    const c = await f.prod();
    await assert.rejects(c.query(`select U&"!0070g_read_file" UESCAPE '#'('/etc/hostname')`), { code: '42883' });
    await assertRefused(c.query(`select U&"!0070g_read_file" UESCAPE '!'('/etc/hostname')`), 'guard.server-functions').finally(() => c.end());
  });

  it('shape cache: SET U&"!0072ole" UESCAPE \'#\' then UESCAPE \'!\' (= SET role) is refused', async () => {
    const c = await f.prod();
    await assert.rejects(c.query(`SET U&"!0072ole" UESCAPE '#' TO ${role}`), { code: '42704' });
    try {
      await assertRefused(c.query(`SET U&"!0072ole" UESCAPE '!' TO ${role}`), 'guard.session-identity');
    } finally {
      const who = await c.query(`select current_user as u`).catch(() => ({ rows: [{ u: '?' }] }));
      await c.end();
      assert.equal(who.rows[0]!.u, 'postgres', 'the session role changed');
    }
  });

  it('EXPLAIN ANALYZE EXECUTE of a prepared bounded DELETE is uncappable (EXECUTE resolution keeps EXPLAIN ANALYZE)', async () => {
    // EXECUTE resolution takes the prepared statement's facts; it must keep the EXPLAIN ANALYZE
    // wrapper, or the DELETE runs where the breaker cannot count its rows.
    const t = await f.table();
    const c = await f.prod();
    await c.query(`PREPARE del AS DELETE FROM ${t} WHERE id > 0`);
    await assertRefused(c.query(`EXPLAIN ANALYZE EXECUTE del`), 'guard.uncappable-write').finally(() => c.end());
    assert.equal(await f.count(t), 3);
  });

  it('pipelined SET standard_conforming_strings = off cannot change how the next query is read', async () => {
    // Both queries are decided on arrival, before the server's ParameterStatus could report the
    // change. Read with standard_conforming_strings on, the second query is one string literal; a
    // server with it off reads 'a\'' as the string a' and calls pg_read_file.
    const r = await f.raw();
    let msgs: BackendMessage[];
    try {
      r.write(fe.query('SET standard_conforming_strings = off'), fe.query(`SELECT 'a\\'' , pg_read_file($$/etc/hostname$$) --'`));
      msgs = await r.untilReady(2);
    } finally {
      await r.terminate();
    }
    const rows = msgs.filter((m) => m.type === 'D').map((m) => dataRow(m));
    assert.ok(!rows.some((row) => row.length > 1), `pg_read_file ran on the server: ${JSON.stringify(rows)}`);
    // The SET is refused, so the second query is read as PostgreSQL reads it: one string.
    assert.deepEqual(msgs.map((m) => (m.type === 'D' ? 'D' : summary(m))), ['E:42501', 'Z:I', 'T:?column?', 'D', 'C:SELECT 1', 'Z:I']);
    assert.deepEqual(rows, [["a\\' , pg_read_file($$/etc/hostname$$) --"]]);
    assertRefusalMessage(msgs[0], 'guard.lexical-settings');
  });
});

/** Breaker tests may hang while the breaker is work in progress: fail them, not the file. */
const CAP_TIMEOUT = { timeout: 30_000 };

/**
 * The affected-rows circuit breaker (guard.row-cap, max_rows 1000 by default): an UPDATE, DELETE
 * or MERGE that changes more rows is rolled back and refused. Written to the spec while the
 * breaker is being implemented in the relay.
 */
describe('row cap breaker', () => {
  const f = new Fixture();
  const BIG = 5000;
  before(async () => {
    f.db = await createTestDatabase('gh_guard_cap');
    f.proxy = await startProxy({ database: f.db.name });
  });
  after(async () => {
    await f.cleanup();
  });

  const big = (): Promise<string> => f.table(BIG);
  const changed = (t: string): Promise<number> => f.scalar<number>(`select count(*)::int from ${t} where v <> 'v' || id`);

  it('simple protocol, autocommit: DELETE of 5,000 rows is refused and rolled back; 10 rows pass', CAP_TIMEOUT, async () => {
    const t = await big();
    const c = await f.prod();
    try {
      await assertRefused(c.query(`DELETE FROM ${t} WHERE id > 0`), 'guard.row-cap');
      assert.equal(await f.count(t), BIG);
      assert.equal((await c.query(`DELETE FROM ${t} WHERE id <= 10`)).rowCount, 10);
      assert.equal(await f.count(t), BIG - 10);
    } finally {
      await c.end();
    }
  });

  it('simple protocol, autocommit: UPDATE of 5,000 rows is refused and rolled back; 10 rows pass', CAP_TIMEOUT, async () => {
    const t = await big();
    const c = await f.prod();
    try {
      await assertRefused(c.query(`UPDATE ${t} SET v = 'x' WHERE id > 0`), 'guard.row-cap');
      assert.equal(await changed(t), 0);
      assert.equal((await c.query(`update ${t} set v = 'x' where id <= 10`)).rowCount, 10);
      assert.equal(await changed(t), 10);
    } finally {
      await c.end();
    }
  });

  it('psql: DELETE of 5,000 rows is refused; 1,000 rows (the limit) pass', CAP_TIMEOUT, async () => {
    const t = await big();
    const env = f.proxy.env('alice', 'prod');
    const refused = await run('psql', ['-X', '-c', `delete from ${t} where id > 0`], { env });
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /\(rule guard\.row-cap\)/);
    assert.equal(await f.count(t), BIG);
    const ok = await run('psql', ['-X', '-Atc', `delete from ${t} where id <= 1000`], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'DELETE 1000');
    assert.equal(await f.count(t), BIG - 1000);
  });

  it('extended protocol (pg with parameters), autocommit: DELETE and UPDATE', CAP_TIMEOUT, async () => {
    const t = await big();
    const c = await f.prod();
    try {
      await assertRefused(c.query(`DELETE FROM ${t} WHERE id > $1`, [0]), 'guard.row-cap');
      await assertRefused(c.query(`UPDATE ${t} SET v = $1 WHERE id > $2`, ['x', 0]), 'guard.row-cap');
      assert.equal(await f.count(t), BIG);
      assert.equal(await changed(t), 0);
      assert.equal((await c.query(`DELETE FROM ${t} WHERE id <= $1`, [10])).rowCount, 10);
      assert.equal((await c.query(`UPDATE ${t} SET v = $1 WHERE id > $2 and id <= $3`, ['x', 10, 20])).rowCount, 10);
      assert.equal(await f.count(t), BIG - 10);
      assert.equal(await changed(t), 10);
    } finally {
      await c.end();
    }
  });

  for (const [proto, q] of [
    ['simple', (c: pg.Client, sql: string, _v: unknown[]) => c.query(sql.replace(/\$1/g, '0'))],
    ['extended', (c: pg.Client, sql: string, v: unknown[]) => c.query(sql, v)],
  ] as Array<[string, (c: pg.Client, sql: string, v: unknown[]) => Promise<pg.QueryResult>]>) {
    it(`inside BEGIN (${proto} protocol): the refusal keeps the client's transaction usable`, CAP_TIMEOUT, async () => {
      const t = await big();
      const c = await f.prod();
      try {
        await c.query('BEGIN');
        await c.query(`insert into ${t} (id, v) values (${BIG + 1}, 'v${BIG + 1}')`);
        await assertRefused(q(c, `DELETE FROM ${t} WHERE id > $1`, [0]), 'guard.row-cap');
        await assertRefused(q(c, `UPDATE ${t} SET v = 'x' WHERE id > $1`, [0]), 'guard.row-cap');
        // Still in a usable transaction: the refused statements' changes are gone, the INSERT is not.
        assert.equal((await c.query(`select count(*)::int as n from ${t}`)).rows[0].n, BIG + 1);
        assert.equal((await c.query(`delete from ${t} where id <= 10`)).rowCount, 10);
        await c.query('COMMIT');
      } finally {
        await c.end();
      }
      assert.equal(await f.count(t), BIG + 1 - 10);
      assert.equal(await f.scalar(`select count(*)::int from ${t} where id = ${BIG + 1}`), 1);
      assert.equal(await changed(t), 0);
    });
  }

  it('multi-statement simple query: a small UPDATE then a 5,000-row DELETE is refused; neither effect remains', CAP_TIMEOUT, async () => {
    const t = await big();
    const c = await f.prod();
    try {
      await assertRefused(c.query(`update ${t} set v = '1' where id = 1; delete from ${t} where id > 0`), 'guard.row-cap');
    } finally {
      await c.end();
    }
    assert.equal(await f.count(t), BIG);
    assert.equal(await changed(t), 0);
  });

  it('MERGE ... ON t.id = s.id ... DELETE of 5,000 rows is refused', CAP_TIMEOUT, async () => {
    const t = await big();
    const c = await f.prod();
    try {
      await assertRefused(c.query(`merge into ${t} using ${t} s on ${t}.id = s.id when matched then delete`), 'guard.row-cap');
    } finally {
      await c.end();
    }
    assert.equal(await f.count(t), BIG);
  });

  it('extended protocol pipeline: capped UPDATE then a refused DROP in one Sync: both undone, answers in order', CAP_TIMEOUT, async () => {
    const t = await big();
    const r = await f.raw();
    try {
      r.write(...pbe(`update ${t} set v = 'x' where id = $1`, ['1']), ...pbe(`drop table ${t}`), fe.sync());
      const msgs = await r.untilReady(1, 5_000);
      assert.deepEqual(msgs.map(summary), ['1', '2', 'C:UPDATE 1', 'E:42501', 'Z:I']);
      assertRefusalMessage(msgs[3], 'guard.drop');
      r.write(...pbe(`delete from ${t} where id > $1`, ['0']), fe.sync());
      const capped = await r.untilReady(1, 5_000);
      assert.deepEqual(capped.map(summary), ['1', '2', 'E:42501', 'Z:I']);
      assertRefusalMessage(capped[2], 'guard.row-cap');
    } finally {
      await r.terminate();
    }
    assert.equal(await f.count(t), BIG);
    assert.equal(await changed(t), 0);
  });

  it('COPY (DELETE ... WHERE ... RETURNING) TO STDOUT of 5,000 rows is refused (the rows hide in "COPY n")', CAP_TIMEOUT, async () => {
    const t = await big();
    const r = await run('psql', ['-X', '-c', `copy (delete from ${t} where id > 0 returning id) to stdout`], { env: f.proxy.env('alice', 'prod') });
    assert.equal(r.code, 1, `psql exit ${r.code}; stderr: ${r.stderr}`);
    // Either the breaker counts the COPY rows or the statement is refused up front as uncappable.
    assert.match(r.stderr, /\(rule guard\.(row-cap|uncappable-write)\)/);
    assert.equal(await f.count(t), BIG);
  });

  it('INSERT ... ON CONFLICT DO UPDATE changing 5,000 existing rows is refused (an upsert is an UPDATE too)', CAP_TIMEOUT, async () => {
    const t = await big();
    const c = await f.prod();
    try {
      await assertRefused(c.query(`insert into ${t} (id, v) select id, 'x' from ${t} on conflict (id) do update set v = excluded.v`), 'guard.row-cap');
    } finally {
      await c.end();
    }
    assert.equal(await changed(t), 0);
  });

  it('SQL EXECUTE of a name re-bound after DISCARD ALL is still capped (stale PREPARE map)', CAP_TIMEOUT, async () => {
    // Gatehouse remembers "p = SELECT 1" from the SQL PREPARE; DISCARD ALL drops it on the server;
    // a protocol-level Parse re-creates "p" as a bounded DELETE; SQL EXECUTE p is then judged as SELECT 1.
    const t = await big();
    const r = await f.raw();
    let out: BackendMessage[];
    try {
      const noStatus = (ms: BackendMessage[]): string[] => ms.filter((m) => m.type !== 'S').map(summary);
      r.write(fe.query('PREPARE p AS SELECT 1'));
      assert.deepEqual(noStatus(await r.untilReady(1, 5_000)), ['C:PREPARE', 'Z:I']);
      r.write(fe.query('DISCARD ALL'));
      assert.deepEqual(noStatus(await r.untilReady(1, 5_000)), ['C:DISCARD ALL', 'Z:I']);
      r.write(fe.parse('p', `delete from ${t} where id > $1`), fe.sync());
      assert.deepEqual((await r.untilReady(1, 5_000)).map(summary), ['1', 'Z:I']);
      r.write(fe.query('EXECUTE p(0)'));
      out = await r.untilReady(1, 5_000);
    } finally {
      await r.terminate();
    }
    assert.deepEqual(out.map(summary), ['E:42501', 'Z:I']);
    assert.equal(await f.count(t), BIG);
  });

  it('SQL EXECUTE of a name whose SQL PREPARE failed on the server is still capped (stale PREPARE map)', CAP_TIMEOUT, async () => {
    // The failed PREPARE is remembered as "p = SELECT ... FROM missing"; the server has no "p", so a
    // protocol-level Parse can create it as a DELETE, which SQL EXECUTE then runs uncapped.
    const t = await big();
    const r = await f.raw();
    let out: BackendMessage[];
    try {
      r.write(fe.query(`PREPARE p AS SELECT * FROM missing_${f.tag}`));
      assert.deepEqual((await r.untilReady(1, 5_000)).map(summary), ['E:42P01', 'Z:I']);
      r.write(fe.parse('p', `delete from ${t} where id > $1`), fe.sync());
      assert.deepEqual((await r.untilReady(1, 5_000)).map(summary), ['1', 'Z:I']);
      r.write(fe.query('EXECUTE p(0)'));
      out = await r.untilReady(1, 5_000);
    } finally {
      await r.terminate();
    }
    assert.deepEqual(out.map(summary), ['E:42501', 'Z:I']);
    assert.equal(await f.count(t), BIG);
  });
});

