import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, run, startPrivatePostgres } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';

describe('smoke: psql and node-postgres through the proxy', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  before(async () => {
    db = await createTestDatabase();
    proxy = await startProxy({ database: db.name });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  it('runs a query with psql', async () => {
    const r = await run('psql', ['-XAtc', 'select 40 + 2'], { env: proxy.env() });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '42');
  });

  it('runs parameterized queries with pg', async () => {
    const c = await proxy.client();
    const r = await c.query('select $1::int + 1 as n', [41]);
    assert.equal(r.rows[0].n, 42);
  });
});

describe('private postgres helper', () => {
  it('starts a cluster with TLS', async () => {
    const pgx = await startPrivatePostgres({ ssl: true });
    try {
      const r = await run('psql', ['-XAtc', 'show ssl', '-h', '127.0.0.1', '-p', String(pgx.port), '-U', 'postgres', 'postgres']);
      assert.equal(r.stdout.trim(), 'on', r.stderr);
    } finally {
      await pgx.cleanup();
    }
  });
});
