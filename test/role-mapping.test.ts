/**
 * Upstream role mapping through the real proxy: identities work as a mapped database role, so
 * PostgreSQL's own grants apply, and nothing the client sends can undo it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, direct } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';

describe('upstream role mapping', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  const ro = `gh_ro_${randomBytes(3).toString('hex')}`;
  before(async () => {
    db = await createTestDatabase();
    await direct(db.name, `create role ${ro} nologin; create table open_t (x int); insert into open_t values (1); grant select on open_t to ${ro}; create table closed_t (x int)`);
    proxy = await startProxy({
      database: db.name,
      connectionsYaml: `connections:
  - name: dev
    environment: development
    roles:
      - { role: ${ro}, groups: [analysts] }
      - { role: missing_role_${ro}, users: [bob] }
    upstream: { host: 127.0.0.1, port: 5432, database: ${db.name}, user: postgres }
`,
    });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
    await direct('postgres', `drop role if exists ${ro}`).catch(() => undefined);
  });

  it('an identity in a mapped group works as the mapped role; the database grants apply', async () => {
    const carol = await proxy.client({ user: 'carol' });
    assert.equal((await carol.query('select current_user as u')).rows[0].u, ro);
    assert.equal((await carol.query('select x from open_t')).rows[0].x, 1);
    const denied = await carol.query('select * from closed_t').catch((e: { code?: string; message: string }) => e);
    assert.equal((denied as { code?: string }).code, '42501');
    assert.match((denied as Error).message, /permission denied for table closed_t/);
    const alice = await proxy.client({ user: 'alice' });
    assert.equal((await alice.query('select current_user as u')).rows[0].u, 'postgres', 'unmapped identities keep the connection user');
  });

  it('the client cannot undo the mapping', async () => {
    const carol = await proxy.client({ user: 'carol' });
    for (const sql of ['set role postgres', 'reset role', 'set session authorization postgres', 'reset all', 'discard all', "select set_config('role', 'postgres', false)", 'begin; set local role postgres; commit']) {
      const err = await carol.query(sql).catch((e: { code?: string; message: string }) => e);
      assert.equal((err as { code?: string }).code, '42501', sql);
      assert.match((err as Error).message, /rule gatehouse\.role-mapping/, sql);
      await carol.query('rollback').catch(() => undefined);
      assert.equal((await carol.query('select current_user as u')).rows[0].u, ro, `still ${ro} after: ${sql}`);
    }
  });

  it('a role the database refuses fails the connection with 08001 naming the key', async () => {
    const err = await proxy.client({ user: 'bob' }).catch((e: { code?: string; message: string }) => e);
    assert.equal((err as { code?: string }).code, '08001');
    assert.match((err as Error).message, /cannot assume upstream role "missing_role_.*" \(connections\[\]\.roles\)/);
  });
});
