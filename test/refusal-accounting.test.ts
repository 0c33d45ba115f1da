/**
 * How refusals and breaker trips are accounted: every refusal (Parse included) is an execution
 * that reaches the pipeline with the refusing rule; the database's own 42501 is not a refusal;
 * a breaker trip inside a Sync batch that Gatehouse opened rolls back the whole batch; rules that
 * read statement.text see the statement's own text even when its shape is cached.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Execution } from '../src/session/types.js';
import { createTestDatabase, direct } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';
import { fe, pbe, RawClient, summary } from './helpers/raw-client.js';

describe('refusal accounting', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  const seen: Execution[] = [];
  before(async () => {
    db = await createTestDatabase();
    await direct(db.name, 'create table t (id int primary key, v int); insert into t select g, 0 from generate_series(1, 3000) g; create table secret (x int); revoke all on secret from public');
    await direct(db.name, `do $$ begin if not exists (select from pg_roles where rolname = 'gh_nobody') then create role gh_nobody; end if; end $$`);
    const dir = mkdtempSync(join(tmpdir(), 'gh-acct-'));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, "rules:\n  - id: team.no-magic\n    when: 'statement.text.contains(\"4242\")'\n    action: deny\n    message: no magic numbers\n");
    proxy = await startProxy({ database: db.name, extraYaml: `policy: { files: [${policy}] }`, plugins: [{ name: 'probe', complete: (_s, e) => void seen.push(e) }] });
  });
  after(async () => {
    await proxy?.close();
    await direct('postgres', 'drop role if exists gh_nobody').catch(() => undefined);
    await db?.drop();
  });

  it('a statement refused at Parse is an execution with the refusing rule, counted as denied', async () => {
    const c = await RawClient.connect({ port: proxy.port, user: 'alice', password: 'alice-pw', database: 'prod' });
    try {
      seen.length = 0;
      c.write(...pbe('drop table t'), fe.sync());
      const msgs = (await c.untilReady(1)).map(summary);
      assert.equal(msgs[0], 'E:42501');
      const refused = seen.find((e) => e.statement.text === 'drop table t');
      assert.ok(refused, 'the refused Parse reached the complete phase');
      assert.equal(refused.refusedBy, 'guard.drop');
      assert.equal(refused.sqlstate, '42501');
      const metrics = await (await fetch(`http://127.0.0.1:${proxy.httpPort}/metrics`)).text();
      assert.match(metrics, /gatehouse_statements_total\{connection="prod",outcome="denied"\} 1/);
    } finally {
      await c.terminate();
    }
  });

  it("the database's own permission error is an error, not a Gatehouse refusal", async () => {
    const c = await proxy.client({ database: 'dev' });
    seen.length = 0;
    await c.query('set role gh_nobody');
    const err = await c.query('select * from secret').catch((e: { code?: string }) => e);
    assert.equal((err as { code?: string }).code, '42501');
    // pg rejects at the ErrorResponse; the execution completes at the ReadyForQuery after it,
    // which PostgreSQL may send (and the proxy read) separately.
    const e = await waitFor(() => seen.find((x) => x.statement.text === 'select * from secret'), 5000, 'the execution of the refused select');
    assert.equal(e?.refusedBy, undefined);
    await c.query('reset role');
  });

  it('a breaker trip on the second capped statement of one Sync batch rolls back the first as well', async () => {
    const c = await RawClient.connect({ port: proxy.port, user: 'alice', password: 'alice-pw', database: 'prod' });
    try {
      c.write(...pbe('update t set v = 1 where id <= 10'), ...pbe('update t set v = 2 where id > 0'), fe.sync());
      const msgs = (await c.untilReady(1)).map(summary);
      assert.ok(msgs.includes('C:UPDATE 10'), msgs.join(' '));
      assert.ok(msgs.includes('E:42501'), msgs.join(' '));
      assert.equal(msgs.at(-1), 'Z:I');
      const r = await direct(db.name, 'select count(*)::int as n from t where v <> 0');
      assert.equal(r.rows[0].n, 0, 'nothing of the batch was committed, as with a server error');
    } finally {
      await c.terminate();
    }
  });

  it('a rule on statement.text sees each statement\'s own text, even for a cached shape', async () => {
    const c = await proxy.client({ database: 'dev' });
    const denied = await c.query('select 3 where 3 = 4242').catch((e: { code?: string; message: string }) => e);
    assert.match((denied as Error).message, /no magic numbers \(rule team\.no-magic\)/);
    // Same shape, other literal: must be decided on its own text.
    const allowed = await c.query('select 3 where 3 = 3');
    assert.equal(allowed.rowCount, 1);
  });
});
