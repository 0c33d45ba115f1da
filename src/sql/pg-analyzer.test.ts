/**
 * analyzePostgres: the facts policy conditions see as `statement`. One table-driven block per
 * statement family of pg-analyzer.ts, then the facts the guardrails depend on (tables, writes,
 * WHERE bounds, functions, COPY, SET, EXPLAIN, PREPARE), multi-statement slicing and parse errors.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { StatementFacts } from './facts.js';
import { analyzePostgres, loadPostgresParser } from './pg-analyzer.js';

before(async () => {
  await loadPostgresParser();
});

/** The writes of a statement, as kind/table/bounded/inCte (other fields are checked on their own). */
function writes(f: StatementFacts): Array<{ kind: string; table: string; bounded: boolean; inCte: boolean }> {
  return f.writes.map((w) => ({ kind: w.kind, table: w.table, bounded: w.bounded, inCte: w.inCte }));
}

/** The facts of a text holding exactly one statement. */
function one(sql: string): StatementFacts {
  const fs = analyzePostgres(sql);
  assert.equal(fs.length, 1, `expected one statement in ${JSON.stringify(sql)}`);
  return fs[0]!;
}

type Expect = [sql: string, kind: string, category: string, objectType?: string];

function families(name: string, rows: Expect[]): void {
  describe(name, () => {
    for (const [sql, kind, category, objectType] of rows) {
      it(`${sql} -> ${kind} (${category})`, () => {
        const f = one(sql);
        assert.equal(f.parsed, true, f.parseError);
        assert.equal(f.kind, kind);
        assert.equal(f.category, category);
        if (objectType !== undefined) assert.equal(f.objectType, objectType);
      });
    }
  });
}

families('reads and writes', [
  ['select 1', 'SELECT', 'read'],
  ['select * from t where id = 1 for update', 'SELECT', 'read'],
  ['values (1), (2)', 'SELECT', 'read'],
  ['table t', 'SELECT', 'read'],
  ['insert into t values (1)', 'INSERT', 'write'],
  ['update t set a = 1 where id = 1', 'UPDATE', 'write'],
  ['delete from t where id = 1', 'DELETE', 'write'],
  ['merge into t using s on t.id = s.id when matched then delete', 'MERGE', 'write'],
  ['truncate t', 'TRUNCATE', 'write', 'TABLE'],
  ['refresh materialized view mv', 'REFRESH MATERIALIZED VIEW', 'write'],
  ['with d as (delete from t where id = 1 returning *) select * from d', 'SELECT', 'write'],
  ['declare c cursor for select * from t', 'DECLARE CURSOR', 'read'],
  ['fetch 10 from c', 'FETCH', 'read'],
  ['close c', 'CLOSE', 'read'],
  ['show search_path', 'SHOW', 'read'],
]);

families('DDL', [
  ['create table t (id int)', 'CREATE TABLE', 'ddl'],
  ['create table t2 as select * from t', 'CREATE TABLE AS', 'ddl'],
  ['select * into t2 from t', 'CREATE TABLE AS', 'ddl'],
  ['create materialized view mv as select 1', 'CREATE MATERIALIZED VIEW', 'ddl'],
  ['create index on t (a)', 'CREATE INDEX', 'ddl'],
  ['create view v as select * from t', 'CREATE VIEW', 'ddl'],
  ['create schema s', 'CREATE SCHEMA', 'ddl'],
  ['create sequence q', 'CREATE SEQUENCE', 'ddl'],
  ['alter sequence q restart', 'ALTER SEQUENCE', 'ddl'],
  ['create extension pgcrypto', 'CREATE EXTENSION', 'ddl'],
  ['create database d', 'CREATE DATABASE', 'ddl'],
  ['create type pair as (a int, b int)', 'CREATE TYPE', 'ddl'],
  ["create type mood as enum ('a', 'b')", 'CREATE TYPE', 'ddl'],
  ["comment on table t is 'x'", 'COMMENT', 'ddl'],
  ['create policy p on t using (true)', 'CREATE POLICY', 'ddl'],
  ['alter policy p on t using (false)', 'ALTER POLICY', 'ddl'],
  ['alter database d set work_mem = 1', 'ALTER DATABASE', 'ddl'],
  ['alter database d allow_connections false', 'ALTER DATABASE', 'ddl'],
  ["create tablespace ts location '/tmp'", 'CREATE TABLESPACE', 'ddl'],
  ['create publication p for all tables', 'CREATE PUBLICATION', 'ddl'],
  ["create subscription s connection 'x' publication p", 'CREATE SUBSCRIPTION', 'ddl'],
  ['create domain d as int', 'CREATE DOMAIN', 'ddl'],
  ["import foreign schema s from server x into public", 'IMPORT FOREIGN SCHEMA', 'ddl'],
  ['alter table t add column b int', 'ALTER TABLE', 'ddl', 'TABLE'],
  ['alter index i set tablespace ts', 'ALTER INDEX', 'ddl', 'INDEX'],
  ['alter table t rename to u', 'ALTER TABLE', 'ddl', 'TABLE'],
  ['alter schema s rename to s2', 'ALTER SCHEMA', 'ddl', 'SCHEMA'],
  ['drop table t', 'DROP', 'ddl', 'TABLE'],
  ['drop index i', 'DROP', 'ddl', 'INDEX'],
  ['drop view v', 'DROP', 'ddl', 'VIEW'],
  ['drop materialized view mv', 'DROP', 'ddl', 'MATERIALIZED VIEW'],
  ['drop sequence q', 'DROP', 'ddl', 'SEQUENCE'],
  ['drop schema s cascade', 'DROP', 'ddl', 'SCHEMA'],
  ['drop function f(int)', 'DROP', 'ddl', 'FUNCTION'],
  ['drop extension pgcrypto', 'DROP', 'ddl', 'EXTENSION'],
  ['drop type mood', 'DROP', 'ddl', 'TYPE'],
  ['drop trigger tr on t', 'DROP', 'ddl', 'TRIGGER'],
  ['drop policy p on t', 'DROP', 'ddl', 'POLICY'],
]);

families('dynamic SQL (DDL that runs code, DO, CALL, EXECUTE)', [
  ['create function f() returns int language sql as $$ select 1 $$', 'CREATE FUNCTION', 'ddl', 'FUNCTION'],
  ['create procedure p() language sql as $$ select 1 $$', 'CREATE PROCEDURE', 'ddl', 'PROCEDURE'],
  ['create trigger tr before insert on t for each row execute function f()', 'CREATE TRIGGER', 'ddl'],
  ['create event trigger et on ddl_command_start execute function f()', 'CREATE EVENT TRIGGER', 'ddl'],
  ['create rule r as on insert to t do also delete from u', 'CREATE RULE', 'ddl'],
  ['do $$ begin end $$', 'DO', 'admin'],
  ['call p()', 'CALL', 'write'],
  ['execute p', 'EXECUTE', 'unknown'],
]);

families('privileges and roles', [
  ['grant select on t to bob', 'GRANT', 'dcl', 'TABLE'],
  ['revoke all on t from public', 'REVOKE', 'dcl', 'TABLE'],
  ['grant usage on schema s to bob', 'GRANT', 'dcl', 'SCHEMA'],
  ['create role r', 'CREATE ROLE', 'dcl', 'ROLE'],
  ['create user u superuser', 'CREATE ROLE', 'dcl', 'ROLE'],
  ['alter role r superuser', 'ALTER ROLE', 'dcl', 'ROLE'],
  ['alter role r set work_mem = 1', 'ALTER ROLE', 'dcl', 'ROLE'],
  ['alter role r rename to r2', 'ALTER ROLE', 'dcl', 'ROLE'],
  ['drop owned by r', 'DROP OWNED', 'dcl'],
  ['reassign owned by r to s', 'REASSIGN OWNED', 'dcl'],
  ['alter schema s owner to r', 'ALTER OWNER', 'dcl'],
  ['alter default privileges grant select on tables to r', 'ALTER DEFAULT PRIVILEGES', 'dcl'],
  ['create user mapping for r server s', 'CREATE USER MAPPING', 'dcl'],
]);

families('administration and session', [
  ['alter system set work_mem = 1', 'ALTER SYSTEM', 'admin'],
  ["load 'auto_explain'", 'LOAD', 'admin'],
  ['lock table t', 'LOCK', 'admin'],
  ['cluster t using i', 'CLUSTER', 'admin'],
  ['reindex table t', 'REINDEX', 'admin'],
  ['checkpoint', 'CHECKPOINT', 'admin'],
  ['discard all', 'DISCARD', 'admin'],
  ['listen ch', 'LISTEN', 'admin'],
  ['unlisten ch', 'UNLISTEN', 'admin'],
  ["notify ch, 'x'", 'NOTIFY', 'admin'],
  ['deallocate all', 'DEALLOCATE', 'admin'],
  ['vacuum t', 'VACUUM', 'admin'],
  ['vacuum full analyze t', 'VACUUM', 'admin'],
  ['analyze t', 'ANALYZE', 'admin'],
  ['set search_path = public', 'SET', 'admin'],
  ['reset all', 'RESET', 'admin'],
  ['set constraints all deferred', 'SET CONSTRAINTS', 'tcl'],
]);

families('transaction control', [
  ['begin', 'BEGIN', 'tcl'],
  ['start transaction isolation level serializable', 'BEGIN', 'tcl'],
  ['commit', 'COMMIT', 'tcl'],
  ['end', 'COMMIT', 'tcl'],
  ['rollback', 'ROLLBACK', 'tcl'],
  ['abort', 'ROLLBACK', 'tcl'],
  ['savepoint s', 'SAVEPOINT', 'tcl'],
  ['release savepoint s', 'RELEASE SAVEPOINT', 'tcl'],
  ['rollback to savepoint s', 'ROLLBACK TO SAVEPOINT', 'tcl'],
  ["prepare transaction 'x'", 'PREPARE TRANSACTION', 'tcl'],
  ["commit prepared 'x'", 'COMMIT PREPARED', 'tcl'],
  ["rollback prepared 'x'", 'ROLLBACK PREPARED', 'tcl'],
]);

/**
 * Families that had explicit switch cases bypassing SIMPLE_KINDS / categoryFromKind (found with
 * the guardrail corpus): with a wrong kind or category, DROP DATABASE / ROLE / TABLESPACE /
 * SUBSCRIPTION were only "require approval" instead of guard.drop, GRANT <role> TO <role> matched
 * no guardrail at all, and DefineStmt (CREATE AGGREGATE/OPERATOR/COLLATION/...) and SECURITY
 * LABEL skipped guard.ddl-approval.
 */
families('DROP of databases/roles/tablespaces/subscriptions, role grants, DefineStmt, SECURITY LABEL', [
  ['drop database d', 'DROP', 'ddl', 'DATABASE'],
  ['drop database if exists d with (force)', 'DROP', 'ddl', 'DATABASE'],
  ['drop role r', 'DROP', 'dcl', 'ROLE'],
  ['drop user u', 'DROP', 'dcl', 'ROLE'],
  ['drop tablespace ts', 'DROP', 'ddl', 'TABLESPACE'],
  ['drop subscription s', 'DROP', 'ddl', 'SUBSCRIPTION'],
  ['grant pg_read_server_files to r', 'GRANT', 'dcl', 'ROLE'],
  ['revoke pg_monitor from r', 'REVOKE', 'dcl', 'ROLE'],
  ['create aggregate a (int) (sfunc = int4pl, stype = int4)', 'CREATE AGGREGATE', 'ddl'],
  ['create operator === (leftarg = int, rightarg = int, function = int4eq)', 'CREATE OPERATOR', 'ddl'],
  ['create collation c from "C"', 'CREATE COLLATION', 'ddl'],
  ["security label on table t is 'x'", 'SECURITY LABEL', 'ddl'],
]);

describe('every CREATE is DDL', () => {
  for (const sql of ['create text search dictionary d (template = simple)', 'create type bt (input = f, output = g)', 'create conversion c for $$LATIN1$$ to $$UTF8$$ from f', 'create cast (int as text) with inout', 'create statistics s on a, b from t', 'create foreign table ft (a int) server s', 'create access method am type table handler h', 'create server s foreign data wrapper w', 'create language plpythonu']) {
    it(sql, () => {
      const f = one(sql);
      assert.ok(f.kind.startsWith('CREATE '), f.kind);
      assert.equal(f.category, 'ddl');
    });
  }
});

describe('ALTER subcommands', () => {
  it('lists every subcommand of an ALTER TABLE', () => {
    const f = one('alter table t add column b int, drop column c, alter column d type text, alter column e set default 1, alter column e set not null, alter column e drop not null, add constraint k unique (b), drop constraint k2');
    assert.deepEqual(f.subcommands, ['ADD COLUMN', 'DROP COLUMN', 'ALTER COLUMN TYPE', 'ALTER COLUMN DEFAULT', 'SET NOT NULL', 'DROP NOT NULL', 'ADD CONSTRAINT', 'DROP CONSTRAINT']);
    assert.deepEqual(f.tablesWritten, ['t']);
  });

  it('names the less common subcommands', () => {
    assert.deepEqual(one('alter table t owner to r, enable row level security, disable trigger all, set unlogged').subcommands, ['OWNER TO', 'ENABLE ROW LEVEL SECURITY', 'DISABLE TRIGGER', 'SET UNLOGGED']);
    assert.deepEqual(one('alter table t alter column a set statistics 100').subcommands, ['SET STATISTICS']);
    assert.deepEqual(one('alter table t alter a set data type int').subcommands, ['ALTER COLUMN TYPE']);
  });

  it('renames: table, column, constraint, and of other relation kinds', () => {
    assert.deepEqual(one('alter table s.t rename to u').subcommands, ['RENAME']);
    assert.deepEqual(one('alter table s.t rename to u').tablesWritten, ['s.t']);
    assert.deepEqual(one('alter table t rename column a to b').subcommands, ['RENAME COLUMN']);
    assert.deepEqual(one('alter table t rename a to b').subcommands, ['RENAME COLUMN']);
    assert.deepEqual(one('alter table t rename constraint c to d').subcommands, ['RENAME CONSTRAINT']);
    const v = one('alter view v rename column a to b');
    assert.deepEqual([v.kind, v.objectType, v.subcommands], ['ALTER VIEW', 'VIEW', ['RENAME COLUMN']]);
    const i = one('alter index i rename to j');
    assert.deepEqual([i.kind, i.subcommands], ['ALTER INDEX', ['RENAME']]);
  });
});

describe('tables read and written', () => {
  it('SELECT: every table, schema-qualified as written, joins and sub-selects included', () => {
    const f = one('select * from a join s.b on a.id = b.id where exists (select 1 from c) and a.x in (select x from "D")');
    assert.deepEqual(new Set(f.tables), new Set(['a', 's.b', 'c', 'D']));
    assert.deepEqual(new Set(f.tablesRead), new Set(f.tables));
    assert.deepEqual(f.tablesWritten, []);
  });

  it('CTE names are not tables, within their scope only', () => {
    const f = one('with x as (select * from a) select * from (with y as (select 1) select * from y) s, x, y, s2.x');
    assert.deepEqual(new Set(f.tables), new Set(['a', 'y', 's2.x']));
  });

  it('a recursive CTE referencing itself is not a table', () => {
    const f = one('with recursive r as (select 1 as n union all select n + 1 from r where n < 3) select * from r');
    assert.deepEqual(f.tables, []);
  });

  it('INSERT/UPDATE/DELETE/MERGE: the target is written, the rest read', () => {
    assert.deepEqual(one('insert into t select * from u').tablesWritten, ['t']);
    assert.deepEqual(one('insert into t select * from u').tablesRead, ['u']);
    const up = one('update t set a = u.a from u where t.id = u.id');
    assert.deepEqual([up.tablesWritten, up.tablesRead], [['t'], ['u']]);
    const del = one('delete from s.t using u where t.id = u.id');
    assert.deepEqual([del.tablesWritten, del.tablesRead], [['s.t'], ['u']]);
    const m = one('merge into t using u on t.id = u.id when matched then delete');
    assert.deepEqual([m.tablesWritten, m.tablesRead], [['t'], ['u']]);
  });

  it('a CTE feeding a write: the CTE name is excluded from the read tables', () => {
    const f = one('with x as (select * from a) insert into t select * from x');
    assert.deepEqual(f.tablesWritten, ['t']);
    assert.deepEqual(f.tablesRead, ['a']);
  });

  it('DROP, TRUNCATE, CREATE TABLE AS, CREATE VIEW, LOCK', () => {
    assert.deepEqual(one('drop table a, s.b').tablesWritten, ['a', 's.b']);
    assert.deepEqual(one('drop schema s').tables, []);
    assert.deepEqual(one('truncate a, b').tablesWritten, ['a', 'b']);
    const ctas = one('create table n as select * from a');
    assert.deepEqual([ctas.tablesWritten, ctas.tablesRead], [['n'], ['a']]);
    const v = one('create view v as select * from a');
    assert.deepEqual(new Set(v.tables), new Set(['v', 'a']));
    assert.deepEqual(one('lock table a').tablesRead, ['a']);
  });

  it('columns as written, with * for a star', () => {
    assert.deepEqual(one('select a, t.b, * from t').columns, ['a', 't.b', '*']);
  });
});

describe('writes, WHERE bounds and unbounded writes', () => {
  it('a DML top-level write', () => {
    assert.deepEqual(writes(one('delete from t where id = 1')), [{ kind: 'DELETE', table: 't', bounded: true, inCte: false }]);
    assert.deepEqual(writes(one('update t set a = 1')), [{ kind: 'UPDATE', table: 't', bounded: false, inCte: false }]);
    assert.deepEqual(writes(one('insert into t values (1)')), [{ kind: 'INSERT', table: 't', bounded: true, inCte: false }]);
  });

  it('writes inside CTEs are flagged inCte, also nested and next to a top-level write', () => {
    const f = one('with u as (update t set a = 1 returning id), d as (delete from s where id = 2 returning id) delete from r where id in (select id from u)');
    assert.equal(f.kind, 'DELETE');
    assert.deepEqual(writes(f), [
      { kind: 'UPDATE', table: 't', bounded: false, inCte: true },
      { kind: 'DELETE', table: 's', bounded: true, inCte: true },
      { kind: 'DELETE', table: 'r', bounded: true, inCte: false },
    ]);
    assert.equal(f.unboundedWrite, true);
    assert.deepEqual(new Set(f.tablesWritten), new Set(['t', 's', 'r']));
  });

  it('an INSERT in a CTE is a write but not unbounded', () => {
    const f = one('with x as (insert into t values (1) returning *) select * from x');
    assert.deepEqual(writes(f), [{ kind: 'INSERT', table: 't', bounded: true, inCte: true }]);
    assert.equal(f.unboundedWrite, false);
    assert.equal(f.category, 'write');
  });

  const bounds: Array<[string, boolean]> = [
    ['delete from t where id = 1', true],
    ['delete from t where id > 0', true],
    ['delete from t where t.id in (select id from u)', true],
    ['delete from t where current of c', true],
    ['update t set a = 1 where a is null', true],
    ['delete from t', false],
    ['delete from t where true', false],
    ['delete from t where 1 = 1', false],
    ["delete from t where 'a' = 'a'", false],
    ['delete from t where exists (select 1)', false],
    ['delete from t where exists (select 1 from u where u.id = 1)', false],
    ['delete from t where (select count(*) from t) > 0', false],
    ['delete from t where now() > now() - interval $$1 day$$', false],
    ['delete from t where $1', false],
    ['delete from t where id = 1 or true', false],
    ['delete from t where true or id = 1', false],
    ['delete from t where (id = 1 or 1 = 1) and true', false],
    ['delete from t where id = 1 or id = 2', true],
    ['delete from t where id = 1 and true', true],
    ['delete from t where true and (id = 1 or id = 2)', true],
    ['delete from t where not (id = 1)', true],
    ['delete from t using u', false],
    ['update t set a = 1 where not false', false],
    ['merge into t using u on t.id = u.id when matched then delete', true],
    ['merge into t using u on true when matched then delete', false],
    ['merge into t using u on 1 = 1 when matched then update set a = 1', false],
  ];
  for (const [sql, bounded] of bounds) {
    it(`${sql}: ${bounded ? 'bounded' : 'unbounded'}`, () => {
      const f = one(sql);
      assert.equal(f.hasWhere, bounded, 'hasWhere');
      assert.equal(f.unboundedWrite, !bounded, 'unboundedWrite');
      assert.equal(f.writes[0]!.bounded, bounded);
    });
  }

  it('SELECT: hasWhere is the presence of a WHERE; hasLimit of a LIMIT', () => {
    assert.equal(one('select * from t where true').hasWhere, true);
    assert.equal(one('select * from t').hasWhere, false);
    assert.equal(one('select * from t limit 5').hasLimit, true);
    assert.equal(one('select * from t').hasLimit, false);
  });

  it('COPY (DELETE ... RETURNING) TO STDOUT is a nested write (its rows are only in "COPY n")', () => {
    const f = one('copy (delete from t returning *) to stdout');
    assert.deepEqual(writes(f), [{ kind: 'DELETE', table: 't', bounded: false, inCte: true }]);
    assert.equal(f.unboundedWrite, true);
    assert.deepEqual(writes(one('copy (update t set a = 1 where id = 1 returning *) to stdout')), [{ kind: 'UPDATE', table: 't', bounded: true, inCte: true }]);
  });

  it('INSERT ... ON CONFLICT DO UPDATE is flagged upsert (it changes existing rows); DO NOTHING is not', () => {
    const up = one('insert into t select * from u on conflict (id) do update set a = excluded.a');
    assert.deepEqual(writes(up), [{ kind: 'INSERT', table: 't', bounded: true, inCte: false }]);
    assert.equal(up.writes[0]!.upsert, true);
    assert.ok(!one('insert into t values (1) on conflict do nothing').writes[0]!.upsert);
    assert.ok(!one('insert into t values (1)').writes[0]!.upsert);
  });
});

describe('functions', () => {
  it('bare lower-case names, schema-qualified or quoted, in every position', () => {
    const f = one(`select pg_catalog.PG_READ_FILE('x'), "lo_import"('y'), count(*) filter (where upper(a) = 'A') over (order by lower(b))
      from t, generate_series(1, 2) where exists (select now())`);
    assert.deepEqual(new Set(f.functions), new Set(['pg_read_file', 'lo_import', 'count', 'upper', 'lower', 'generate_series', 'now']));
    assert.equal(f.cacheable, true);
  });

  it('functions in DML, CTEs and COPY queries', () => {
    assert.deepEqual(one('update t set a = md5(b) where id = abs(-1)').functions, ['md5', 'abs']);
    assert.deepEqual(one('with x as (select pg_sleep(1)) select * from x').functions, ['pg_sleep']);
    assert.deepEqual(one('copy (select pg_ls_dir($$.$$)) to stdout').functions, ['pg_ls_dir']);
    assert.deepEqual(one('insert into t values (lo_import($$x$$))').functions, ['lo_import']);
  });

  it('CALL records the called procedure, not only the functions in its arguments', () => {
    // CallStmt.funccall is a bare FuncCall (no { FuncCall: ... } wrapper), so the walker misses it.
    assert.deepEqual(one('call s.p(f(1))').functions, ['p', 'f']);
  });

  it('set_config makes the facts non-cacheable (they depend on literal values)', () => {
    const f = one("select set_config('role', 'x', false)");
    assert.deepEqual(f.functions, ['set_config']);
    assert.equal(f.cacheable, false);
  });
});

describe('COPY', () => {
  const rows: Array<[string, '' | 'from' | 'to', boolean, boolean, string]> = [
    ['copy t to stdout', 'to', false, false, 'read'],
    ['copy t from stdin', 'from', false, false, 'write'],
    ["copy t to '/tmp/x'", 'to', false, true, 'read'],
    ["copy t from '/etc/passwd'", 'from', false, true, 'write'],
    ["copy t to program 'cat'", 'to', true, false, 'read'],
    ["copy t from program 'echo 1'", 'from', true, false, 'write'],
    ["copy (select 1) to program 'cat'", 'to', true, false, 'read'],
  ];
  for (const [sql, direction, program, file, category] of rows) {
    it(sql, () => {
      const f = one(sql);
      assert.equal(f.kind, 'COPY');
      assert.deepEqual([f.copyDirection, f.copyProgram, f.copyFile, f.category], [direction, program, file, category]);
    });
  }

  it('COPY FROM writes the table, COPY TO reads it', () => {
    assert.deepEqual(one('copy s.t from stdin').tablesWritten, ['s.t']);
    assert.deepEqual(one('copy t (a, b) to stdout').tablesRead, ['t']);
    assert.deepEqual(one('copy (select * from u) to stdout').tablesRead, ['u']);
  });
});

describe('SET and RESET', () => {
  const rows: Array<[string, string, string]> = [
    ['set search_path = public', 'SET', 'search_path'],
    ['SET Search_Path TO a, b', 'SET', 'search_path'],
    ['set local statement_timeout = 0', 'SET', 'statement_timeout'],
    ['set role r', 'SET', 'role'],
    ['set local role r', 'SET', 'role'],
    ['set role none', 'SET', 'role'],
    ['set "role" to r', 'SET', 'role'],
    ['set session authorization r', 'SET', 'session_authorization'],
    ['set session authorization default', 'SET', 'session_authorization'],
    ['set session_replication_role = replica', 'SET', 'session_replication_role'],
    ["set time zone 'UTC'", 'SET', 'timezone'],
    ['set work_mem to default', 'SET', 'work_mem'],
    ['set search_path from current', 'SET', 'search_path'],
    ['set transaction isolation level serializable', 'SET', 'transaction'],
    ['reset role', 'RESET', 'role'],
    ['reset session authorization', 'RESET', 'session_authorization'],
    ['reset all', 'RESET', 'all'],
  ];
  for (const [sql, kind, setting] of rows) {
    it(`${sql} -> ${kind} ${setting}`, () => {
      const f = one(sql);
      assert.deepEqual([f.kind, f.setting, f.category], [kind, setting, 'admin']);
    });
  }
});

describe('EXPLAIN', () => {
  it('without ANALYZE: a read of the same tables, no writes', () => {
    const f = one('explain delete from t');
    assert.deepEqual([f.kind, f.category, f.explain, f.analyze], ['EXPLAIN', 'read', true, false]);
    assert.deepEqual([f.writes, f.unboundedWrite, f.tablesWritten, f.tablesRead], [[], false, [], ['t']]);
  });

  for (const sql of ['explain (analyze false) delete from t', 'explain (analyze off) delete from t', "explain (analyze 'off') delete from t", 'explain (costs off) update t set a = 1']) {
    it(`${sql}: not executed`, () => {
      const f = one(sql);
      assert.deepEqual([f.kind, f.analyze, f.writes.length], ['EXPLAIN', false, 0]);
    });
  }

  for (const sql of ['explain analyze delete from t', 'explain analyse verbose delete from t', 'explain (analyze) delete from t', 'explain (analyze true, buffers) delete from t', 'explain (analyze on) delete from t', "explain (analyze 'on') delete from t", 'explain (analyze 1) delete from t', 'EXPLAIN (FORMAT JSON, ANALYZE) DELETE FROM t']) {
    it(`${sql}: executed, so the facts are the DELETE's`, () => {
      const f = one(sql);
      assert.deepEqual([f.kind, f.category, f.explain, f.analyze], ['DELETE', 'write', true, true]);
      assert.deepEqual(writes(f), [{ kind: 'DELETE', table: 't', bounded: false, inCte: false }]);
      assert.equal(f.unboundedWrite, true);
    });
  }

  it("option values are literals: EXPLAIN with an option argument is not cacheable by shape ('off' vs 'on')", () => {
    assert.equal(one("explain (analyze 'off') delete from t").cacheable, false);
    assert.equal(one("explain (analyze 'on') delete from t").cacheable, false);
  });

  it('EXPLAIN ANALYZE of a SELECT stays a read', () => {
    const f = one('explain analyze select * from t');
    assert.deepEqual([f.kind, f.category, f.analyze], ['SELECT', 'read', true]);
  });
});

describe('PREPARE, EXECUTE, DECLARE', () => {
  it('PREPARE: the kind is the prepared statement\'s, with its name', () => {
    const f = one('prepare p (int) as delete from t where id = $1');
    assert.deepEqual([f.kind, f.category, f.preparedName, f.unboundedWrite], ['DELETE', 'write', 'p', false]);
    const u = one('PREPARE Wipe AS DELETE FROM t');
    assert.deepEqual([u.preparedName, u.unboundedWrite], ['wipe', true]);
    assert.equal(one('prepare q as select 1').kind, 'SELECT');
  });

  it('EXECUTE: dynamic until resolved, with the executed name', () => {
    const f = one('execute p(1)');
    assert.deepEqual([f.kind, f.executeName, f.dynamic], ['EXECUTE', 'p', true]);
  });

  it('dynamic is set exactly for DO, CREATE FUNCTION/PROCEDURE/TRIGGER/EVENT TRIGGER/RULE, CALL, EXECUTE', () => {
    for (const sql of ['do $$ begin end $$', 'create function f() returns int language sql as $$ select 1 $$', 'create trigger tr after insert on t execute function f()', 'create rule r as on delete to t do nothing', 'call p()', 'execute p']) {
      assert.equal(one(sql).dynamic, true, sql);
    }
    for (const sql of ['select f()', 'delete from t where id = 1', 'create table t (a int)', 'prepare p as select 1']) {
      assert.equal(one(sql).dynamic, false, sql);
    }
  });

  it('DECLARE CURSOR takes the query\'s facts', () => {
    const f = one('declare c cursor with hold for select pg_read_file($$x$$) from t');
    assert.deepEqual([f.kind, f.tablesRead, f.functions], ['DECLARE CURSOR', ['t'], ['pg_read_file']]);
  });
});

describe('multi-statement texts', () => {
  it('one fact per statement, each with its own text slice', () => {
    const fs = analyzePostgres('select 1; delete from t where id = 2;  update t set a = 1 where id = 3  ');
    assert.deepEqual(fs.map((f) => f.kind), ['SELECT', 'DELETE', 'UPDATE']);
    assert.deepEqual(fs.map((f) => f.text), ['select 1', 'delete from t where id = 2', 'update t set a = 1 where id = 3']);
    assert.ok(fs.every((f) => f.multiStatement));
  });

  it('a single statement is not multi-statement; a trailing semicolon is not part of the text', () => {
    const f = one('select 1;');
    assert.deepEqual([f.text, f.multiStatement], ['select 1', false]);
  });

  it('slices by bytes: non-ASCII text before the second statement', () => {
    const fs = analyzePostgres("select 'héllo wörld 🎉 — ünïcødé'; delete from t where v = 'ß'; select 'ok'");
    assert.deepEqual(fs.map((f) => f.text), ["select 'héllo wörld 🎉 — ünïcødé'", "delete from t where v = 'ß'", "select 'ok'"]);
    assert.deepEqual(fs.map((f) => f.kind), ['SELECT', 'DELETE', 'SELECT']);
  });

  it('slices by bytes: non-ASCII identifiers and comments', () => {
    const fs = analyzePostgres('/* 日本語 */ select "naïve" from "täble"; drop table "ü"');
    assert.deepEqual(fs.map((f) => f.text), ['select "naïve" from "täble"', 'drop table "ü"']);
    assert.deepEqual(fs[1]!.tablesWritten, ['ü']);
  });

  it('leading comments of a later statement are not part of its text', () => {
    const fs = analyzePostgres('select 1; /* c */ select 2; -- d\nselect 3');
    assert.deepEqual(fs.map((f) => f.text), ['select 1', 'select 2', 'select 3']);
  });

  it('a semicolon inside a string, dollar quote, identifier or comment does not split', () => {
    const fs = analyzePostgres(`select ';', $$;$$, ";" /* ; */ -- ;\n; select 2`);
    assert.equal(fs.length, 2);
    assert.deepEqual(fs.map((f) => f.kind), ['SELECT', 'SELECT']);
  });
});

describe('parse errors and empty texts', () => {
  for (const sql of ['selec 1', 'drop tablee t', 'select 1; drop', "select 'unterminated", 'select 1abc', '/* unterminated', '\u0001']) {
    it(`${JSON.stringify(sql)}: one unknown, unparsed fact with the parser's message`, () => {
      const fs = analyzePostgres(sql);
      assert.equal(fs.length, 1);
      const f = fs[0]!;
      assert.deepEqual([f.kind, f.category, f.parsed, f.text], ['unknown', 'unknown', false, sql]);
      assert.ok(f.parseError.length > 0);
    });
  }

  it('empty and comment-only texts are one EMPTY statement', () => {
    for (const sql of ['', '   ', '-- nothing', '/* nothing */', ';']) {
      const f = one(sql);
      assert.deepEqual([f.kind, f.category, f.parsed], ['EMPTY', 'read', true], JSON.stringify(sql));
    }
  });
});
