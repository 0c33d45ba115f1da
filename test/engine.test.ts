/**
 * Engine behaviour through the real proxy: TLS negotiation, GSSENC, cancel-key mapping,
 * upstream authentication methods and TLS, upstream failures, oversized messages.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, run, startPrivatePostgres, untilActive, type PrivatePostgres } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { makeTestCertificate } from './helpers/tls.js';

/** Send raw bytes as the first packet and collect the reply until close or `ms`. */
function rawExchange(port: number, payload: Buffer, ms = 2000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ host: '127.0.0.1', port });
    const done = (): void => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    };
    s.on('data', (d) => chunks.push(d));
    s.on('close', done);
    s.on('error', done);
    s.setTimeout(ms, done);
    s.write(payload);
  });
}

function untagged(code: number, extra = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8 + extra.length);
  b.writeInt32BE(8 + extra.length, 0);
  b.writeInt32BE(code, 4);
  extra.copy(b, 8);
  return b;
}

describe('TLS on the client side', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let optional: TestProxy;
  let required: TestProxy;
  const tls = makeTestCertificate();
  before(async () => {
    db = await createTestDatabase();
    optional = await startProxy({ database: db.name, listenerYaml: `    host: 127.0.0.1\n    port: 0\n    tls: { cert: ${tls.cert}, key: ${tls.key}, mode: optional }` });
    required = await startProxy({ database: db.name, listenerYaml: `    host: 127.0.0.1\n    port: 0\n    tls: { cert: ${tls.cert}, key: ${tls.key}, mode: required }` });
  });
  after(async () => {
    await optional?.close();
    await required?.close();
    await db?.drop();
  });

  it('psql with sslmode=require negotiates TLS and sees the session as TLS', async () => {
    const r = await run('psql', ['-XAtc', 'select 1'], { env: { ...optional.env(), PGSSLMODE: 'require' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1');
  });

  it('verifies the certificate with sslmode=verify-full and the CA', async () => {
    const r = await run('psql', ['-XAtc', 'select 2'], { env: { ...optional.env(), PGSSLMODE: 'verify-full', PGSSLROOTCERT: tls.cert, PGHOST: 'localhost' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '2');
  });

  it('a required-TLS listener refuses plaintext with SQLSTATE 28000 naming the setting', async () => {
    const r = await run('psql', ['-XAtc', 'select 1'], { env: { ...required.env(), PGSSLMODE: 'disable' } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TLS is required by this listener \(listeners\.postgres\.tls\.mode: required\)/);
    const ok = await run('psql', ['-XAtc', 'select 3'], { env: { ...required.env(), PGSSLMODE: 'require' } });
    assert.equal(ok.stdout.trim(), '3', ok.stderr);
  });

  it('pg connects over TLS', async () => {
    const c = await optional.client({ ssl: { rejectUnauthorized: false } });
    const r = await c.query('select 4 as n');
    assert.equal(r.rows[0].n, 4);
  });

  it('declines GSSENCRequest with N and then accepts a normal startup', async () => {
    const reply = await rawExchange(optional.port, untagged(80877104), 300);
    assert.deepEqual([...reply], [0x4e]);
    const r = await run('psql', ['-XAtc', 'select 5'], { env: { ...optional.env(), PGGSSENCMODE: 'prefer' } });
    assert.equal(r.stdout.trim(), '5', r.stderr);
  });

  it('refuses bytes smuggled after SSLRequest', async () => {
    const reply = await rawExchange(optional.port, Buffer.concat([untagged(80877103), Buffer.from('Qxxxx')]));
    assert.equal(reply[0], 0x45); // ErrorResponse, not 'S'
    assert.match(reply.toString('latin1'), /unexpected data after SSLRequest/);
  });
});

describe('cancel requests', () => {
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

  it('hands out its own key and maps a CancelRequest to the right upstream backend', async () => {
    const victim = await proxy.client();
    const bystander = await proxy.client();
    const upstreamPid = (await victim.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    const key = (victim as unknown as { processID: number; secretKey: number });
    assert.notEqual(key.processID, upstreamPid, 'the client must not see the upstream pid');
    const marker = `engine-cancel-${process.pid}`;
    const sleeping = victim.query(`select pg_sleep(30) /* ${marker} */`).then(
      () => 'finished',
      (err: { code?: string }) => err.code,
    );
    const bystanderSleep = bystander.query('select pg_sleep(1) as s').then(() => 'finished');
    await untilActive(db.name, marker);
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(key.processID, 8);
    cancel.writeInt32BE(key.secretKey, 12);
    const t0 = Date.now();
    await rawExchange(proxy.port, cancel, 2000);
    assert.equal(await sleeping, '57014'); // query_canceled
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(await bystanderSleep, 'finished', 'other sessions are not cancelled');
    assert.equal((await victim.query('select 1 as n')).rows[0].n, 1, 'the session stays usable');
  });

  it('ignores a cancel with a wrong secret', async () => {
    const c = await proxy.client();
    const key = c as unknown as { processID: number; secretKey: number };
    const q = c.query('select pg_sleep(0.5), 1 as n');
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(key.processID, 8);
    cancel.writeInt32BE(key.secretKey ^ 1, 12);
    await rawExchange(proxy.port, cancel, 300);
    assert.equal((await q).rows[0].n, 1);
  });
});

describe('upstream authentication and TLS', () => {
  let pgx: PrivatePostgres & { cleanup(): Promise<void> };
  before(async () => {
    pgx = await startPrivatePostgres({
      ssl: true,
      hba: ['hostssl all tls_user 127.0.0.1/32 scram-sha-256', 'hostnossl all tls_user 127.0.0.1/32 reject', 'host all md5_user 127.0.0.1/32 md5', 'host all scram_user 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 trust'],
      setup: [
        "SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret'",
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret'",
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE tls_user LOGIN PASSWORD 'tls-secret'",
      ],
    });
  });
  after(async () => pgx?.cleanup());

  const conn = (name: string, user: string, extra: string) =>
    `  - name: ${name}\n    upstream: { host: 127.0.0.1, port: ${pgx.port}, database: postgres, user: ${user}${extra} }\n`;

  it('authenticates upstream with md5, SCRAM (password from env and file) and over TLS; clients never see the credentials', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'gh-secret-'));
    writeFileSync(join(dir, 'pw'), 'scram-secret\n');
    const proxy = await startProxy({
      database: 'postgres',
      env: { ...process.env, MD5_PW: 'md5-secret', TLS_PW: 'tls-secret' },
      connectionsYaml:
        'connections:\n' +
        conn('md5', 'md5_user', ', password_env: MD5_PW') +
        conn('scram', 'scram_user', `, password_file: ${join(dir, 'pw')}`) +
        conn('tls', 'tls_user', ", password_env: TLS_PW, tls: { mode: require }") +
        conn('wrong', 'scram_user', ", password: not-it") +
        conn('notls', 'tls_user', ", password_env: TLS_PW, tls: { mode: disable }"),
    });
    try {
      for (const [db, user, ssl] of [['md5', 'md5_user', false], ['scram', 'scram_user', false], ['tls', 'tls_user', true]] as const) {
        const c = await proxy.client({ database: db });
        const r = await c.query('select current_user as u, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl');
        assert.deepEqual(r.rows[0], { u: user, ssl });
        await c.end();
      }
      const bad = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'alice', password: 'alice-pw', database: 'wrong' });
      await assert.rejects(bad.connect(), (err: Error & { code?: string }) => {
        assert.equal(err.code, '08001');
        assert.match(err.message, /upstream authentication failed/);
        assert.doesNotMatch(err.message, /scram_user|not-it/);
        return true;
      });
      const notls = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'alice', password: 'alice-pw', database: 'notls' });
      await assert.rejects(notls.connect(), (err: Error & { code?: string }) => err.code === '08001');
    } finally {
      await proxy.close();
    }
  });

  it('reports an unreachable upstream as 08001 and a lost one as 08006, and keeps serving others', async () => {
    const proxy = await startProxy({
      database: 'postgres',
      connectionsYaml: 'connections:\n' + conn('up', 'postgres', '') + '  - name: down\n    upstream: { host: 127.0.0.1, port: 1, database: postgres, user: postgres }\n',
    });
    try {
      const down = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'alice', password: 'alice-pw', database: 'down' });
      await assert.rejects(down.connect(), (err: Error & { code?: string }) => {
        assert.equal(err.code, '08001');
        assert.match(err.message, /could not connect to connection "down" \(upstream 127\.0\.0\.1:1\): ECONNREFUSED/);
        return true;
      });
      const victim = await proxy.client({ database: 'up' });
      const survivor = await proxy.client({ database: 'up' });
      const pid = (await victim.query('select pg_backend_pid() as pid')).rows[0].pid;
      const errored = new Promise<Error & { code?: string }>((resolve) => victim.once('error', resolve));
      await survivor.query('select pg_terminate_backend($1)', [pid]);
      const err = await Promise.race([errored, victim.query('select 1').catch((e: Error) => e)]);
      assert.ok(err instanceof Error);
      assert.equal((await survivor.query('select 7 as n')).rows[0].n, 7);

      // A restarted upstream: sessions get 08006, new sessions work once it is back.
      const during = await proxy.client({ database: 'up' });
      const lost = new Promise<Error & { code?: string }>((resolve) => during.once('error', resolve));
      await pgx.stop();
      const e = await lost;
      assert.match(String(e.message), /was lost|terminating connection|Connection terminated/);
      await pgx.start();
      const after = await proxy.client({ database: 'up' });
      assert.equal((await after.query('select 8 as n')).rows[0].n, 8);
    } finally {
      await proxy.close();
    }
  });
});

describe('oversized and malformed messages', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  before(async () => {
    db = await createTestDatabase();
    proxy = await startProxy({ database: db.name, listenerYaml: '    host: 127.0.0.1\n    port: 0\n    max_message_bytes: 65536' });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  it('refuses a statement above max_message_bytes with 08P01 and closes only that session', async () => {
    const big = await proxy.client();
    const other = await proxy.client();
    const errored = new Promise<Error>((resolve) => big.once('error', resolve));
    const res = await big.query(`select '${'x'.repeat(100_000)}'`).catch((e: Error & { code?: string }) => e);
    assert.ok(res instanceof Error);
    assert.match(`${res.message} ${(await Promise.race([errored, new Promise((r) => setTimeout(() => r(''), 500))])) as string}`, /exceeds the limit|terminated/);
    assert.equal((await other.query('select 9 as n')).rows[0].n, 9);
  });

  it('relays results far larger than max_message_bytes (only inspected messages are bounded)', async () => {
    const c = await proxy.client();
    const r = await c.query("select repeat('y', 2000000) as s");
    assert.equal(r.rows[0].s.length, 2_000_000);
  });
});
