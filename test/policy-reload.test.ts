/**
 * Policy reload through the real CLI process: on SIGHUP and on file change, without dropping
 * sessions; a bad reload keeps the previous policy and says why.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, direct, freePorts } from './helpers/pg.js';
import { configYaml, spawnCli, waitFor, waitReady } from './helpers/proxy.js';

/** The SQLSTATE a query fails with, or "ok". */
async function outcome(c: pg.Client, sql: string): Promise<string> {
  try {
    await c.query(sql);
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? 'error';
  }
}

const denyFoo = (id: string) => `rules:\n  - id: ${id}\n    when: 'statement.tables.exists(t, t == "foo")'\n    action: deny\n    message: foo is off limits\n`;

describe('policy reload', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db?.drop());

  it('applies a changed policy on SIGHUP and on file change, keeps sessions, and keeps the old policy when the new one is invalid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-reload-'));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'rules: []\n');
    const [pgPort, httpPort] = await freePorts(2);
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, configYaml({ database: db.name, pgPort, httpPort, extraYaml: `policy: { files: [${policy}], watch: true }` }).replace(/log: \{ level: \w+/, 'log: { level: info'));
    const proc = spawnCli(['serve', '--config', file]);
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'alice', password: 'alice-pw', database: 'dev' });
    try {
      await waitReady(httpPort, proc);
      await c.connect();
      await c.query('create table foo (id int)');
      assert.equal((await c.query('select count(*)::int as n from foo')).rows[0].n, 0);

      // 1. File change: picked up by the watcher, same session.
      writeFileSync(policy, denyFoo('team.no-foo'));
      await waitFor(async () => (await outcome(c, 'select 1 from foo')) === '42501', 20_000, 'watch reload');
      const refused = await c.query('select * from foo').catch((e: Error & { code?: string }) => e);
      assert.match((refused as Error).message, /foo is off limits \(rule team\.no-foo\)/);

      // 2. An invalid policy keeps the previous one and says why.
      writeFileSync(policy, "rules:\n  - id: broken\n    when: 'statement.kind =='\n    action: deny\n");
      await waitFor(() => /policy reload failed; keeping the previous policy/.test(proc.output()), 20_000, 'failed reload log');
      assert.match(proc.output(), /rule \\"broken\\": invalid condition/);
      assert.equal(await outcome(c, 'select 1 from foo'), '42501');

      assert.equal((await c.query('select 2 as n')).rows[0].n, 2, 'the same session keeps working');
    } finally {
      await c.end().catch(() => undefined);
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('reloads on SIGHUP when file watching is off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-reload-'));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, denyFoo('team.no-foo'));
    const [pgPort, httpPort] = await freePorts(2);
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, configYaml({ database: db.name, pgPort, httpPort, extraYaml: `policy: { files: [${policy}], watch: false }` }).replace(/log: \{ level: \w+/, 'log: { level: info'));
    const proc = spawnCli(['serve', '--config', file]);
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'alice', password: 'alice-pw', database: 'dev' });
    try {
      await waitReady(httpPort, proc);
      await c.connect();
      await direct(db.name, 'create table if not exists foo (id int)');
      assert.equal(await outcome(c, 'select 1 from foo'), '42501');
      writeFileSync(policy, 'rules: []\n');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await outcome(c, 'select 1 from foo'), '42501', 'not reloaded without SIGHUP');
      proc.child.kill('SIGHUP');
      await waitFor(async () => (await outcome(c, 'select 1 from foo')) === 'ok', 20_000, 'SIGHUP reload');
      await waitFor(() => /"event":"policy_reload"/.test(proc.output()), 10_000, 'reload logged');
    } finally {
      await c.end().catch(() => undefined);
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });
});
