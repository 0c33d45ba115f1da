/**
 * The process as operators run it: the real CLI, SIGTERM with in-flight statements, the
 * multi-worker mode (including cancel routing between workers) and 1,000 concurrent clients.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, freePorts, startPrivatePostgres, untilActive } from './helpers/pg.js';
import { configYaml, spawnCli, startProxy, waitFor, waitReady } from './helpers/proxy.js';

async function writeConfig(database: string, extra: Partial<Parameters<typeof configYaml>[0]> = {}): Promise<{ file: string; pgPort: number; httpPort: number }> {
  const [pgPort, httpPort] = await freePorts(2);
  const dir = mkdtempSync(join(tmpdir(), 'gh-life-'));
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, configYaml({ database, pgPort, httpPort, ...extra }).replace(/log: \{ level: \w+/, 'log: { level: info'));
  return { file, pgPort, httpPort };
}

const client = (port: number, user = 'alice') => {
  const c = new pg.Client({ host: '127.0.0.1', port, user, password: `${user}-pw`, database: 'dev' });
  c.on('error', () => {});
  return c;
};

function cancelRequest(port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve) => {
    const b = Buffer.alloc(16);
    b.writeInt32BE(16, 0);
    b.writeInt32BE(80877102, 4);
    b.writeInt32BE(pid, 8);
    b.writeInt32BE(secret, 12);
    const s = connect({ host: '127.0.0.1', port }, () => s.end(b));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

describe('the gatehouse process', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db?.drop());

  it('SIGTERM: stops accepting, lets the in-flight statement finish, closes idle sessions with 57P01, exits 0', async () => {
    const { file, pgPort, httpPort } = await writeConfig(db.name, { shutdownTimeout: '10s' });
    const proc = spawnCli(['serve', '--config', file]);
    try {
      await waitReady(httpPort, proc);
      const busy = client(pgPort);
      const idle = client(pgPort);
      await busy.connect();
      await idle.connect();
      const idleError = new Promise<Error & { code?: string }>((resolve) => idle.once('error', resolve));
      const marker = `lifecycle-inflight-${process.pid}`;
      const inflight = busy.query(`select pg_sleep(1.5), 42 as n /* ${marker} */`);
      await untilActive(db.name, marker);
      proc.child.kill('SIGTERM');
      assert.equal((await idleError).code, '57P01');
      await new Promise((r) => setTimeout(r, 200));
      const late = client(pgPort);
      await assert.rejects(late.connect());
      assert.equal((await inflight).rows[0].n, 42, 'the in-flight statement completes');
      assert.equal(await proc.exited, 0);
      assert.match(proc.output(), /"event":"stopped"/);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it('SIGTERM: a session that outlives shutdown_timeout is closed at the deadline', async () => {
    const { file, pgPort, httpPort } = await writeConfig(db.name, { shutdownTimeout: '1s' });
    const proc = spawnCli(['serve', '--config', file]);
    try {
      await waitReady(httpPort, proc);
      const c = client(pgPort);
      await c.connect();
      const q = c.query('select pg_sleep(20)').catch((e: Error & { code?: string }) => e);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
      assert.ok(Date.now() - t0 < 5000, 'exits soon after the deadline');
      assert.ok((await q) instanceof Error);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it('runs two workers, aggregates their metrics, and routes cancels to the worker that owns the session', async () => {
    const { file, pgPort, httpPort } = await writeConfig(db.name);
    const proc = spawnCli(['serve', '--config', file, '--workers', '2']);
    try {
      await waitReady(httpPort, proc);
      const clients = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const c = client(pgPort);
          await c.connect();
          return c;
        }),
      );
      const pids = clients.map((c) => (c as unknown as { processID: number }).processID);
      const workers = new Set(pids.map((p) => p >>> 24));
      assert.equal(workers.size, 2, `sessions on both workers (pids ${pids.join(', ')})`);
      // Cancel each session's sleep; the cancel connection lands on either worker.
      await Promise.all(
        clients.map(async (c, i) => {
          const key = c as unknown as { processID: number; secretKey: number };
          const marker = `lifecycle-cancel-${process.pid}-${i}`;
          const q = c.query(`select pg_sleep(30) /* ${marker} */`).then(
            () => 'finished',
            (e: { code?: string }) => e.code,
          );
          await untilActive(db.name, marker);
          await cancelRequest(pgPort, key.processID, key.secretKey);
          assert.equal(await q, '57014');
        }),
      );
      for (const c of clients) assert.equal((await c.query('select 1 as n')).rows[0].n, 1);
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const m = /gatehouse_statements_total\{connection="dev",outcome="ok"\} (\d+)/.exec(metrics);
      assert.ok(m && Number(m[1]) >= 6, 'metrics aggregated across workers');
      await Promise.all(clients.map((c) => c.end()));
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it('/healthz, /readyz and /metrics answer; metrics count connections, statements, bytes, errors and upstream latency', async () => {
    const proxy = await startProxy({ database: db.name });
    try {
      const c = await proxy.client();
      await c.query('select 1');
      await c.query('select * from no_such_table').catch(() => undefined);
      await assert.rejects(proxy.client({ password: 'wrong' }));
      const base = `http://127.0.0.1:${proxy.httpPort}`;
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.match(text, /gatehouse_client_connections_total\{outcome="ok"\} 1/);
      assert.match(text, /gatehouse_client_connections_total\{outcome="auth_failed"\} 1/);
      assert.match(text, /gatehouse_client_connections_active\{connection="dev"\} 1/);
      assert.match(text, /gatehouse_statements_total\{connection="dev",outcome="ok"\} 1/);
      assert.match(text, /gatehouse_statements_total\{connection="dev",outcome="error"\} 1/);
      assert.match(text, /gatehouse_bytes_total\{direction="client_to_upstream"\} [1-9]/);
      assert.match(text, /gatehouse_errors_total\{kind="auth"\} 1/);
      assert.match(text, /gatehouse_upstream_statement_seconds_count\{connection="dev"\} 2/);
      assert.match(text, /gatehouse_upstream_connect_seconds_count\{connection="dev"\} 1/);
    } finally {
      await proxy.close();
    }
  });
});

describe('scale', () => {
  it('holds 1,000 concurrent client sessions, each with its upstream, all usable', async () => {
    const pgx = await startPrivatePostgres({ maxConnections: 1100 });
    const proxy = await startProxy({ database: 'postgres', upstreamPort: pgx.port, logStatements: false });
    const clients: pg.Client[] = [];
    try {
      const N = 1000;
      for (let i = 0; i < N; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, N - i) }, async () => {
            const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'carol', password: 'carol-pw', database: 'dev' });
            c.on('error', () => {});
            await c.connect();
            return c;
          }),
        );
        clients.push(...batch);
      }
      assert.equal(proxy.node.engine.sessionCount, N);
      const results = await Promise.all(clients.map((c, i) => c.query('select $1::int as i', [i])));
      results.forEach((r, i) => assert.equal(r.rows[0].i, i));
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await proxy.close();
      await pgx.cleanup();
    }
  });
});
