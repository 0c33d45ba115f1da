/**
 * The audit trail through the real proxy and the real PostgreSQL: an event for each kind, audit
 * before effect on production writes, fail-closed when the store cannot be written, and no lost
 * event of a statement that reached the database when the process is SIGKILLed mid-load.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { AuditEvent } from '../src/audit/event.js';
import { loadPublicKey } from '../src/audit/chain.js';
import { verifyAudit } from '../src/audit/verify.js';
import { SqliteAuditStore } from '../src/store/sqlite-audit.js';
import { openStore, type StoreSpec } from '../src/store/open.js';
import { createTestDatabase, direct, freePorts, run } from './helpers/pg.js';
import { BIN, configYaml, spawnCli, startProxy, waitFor, waitReady, type TestProxy } from './helpers/proxy.js';

/** Read a state directory's events (read-only connection of its own). */
function eventsIn(stateDir: string): AuditEvent[] {
  const db = new Database(join(stateDir, 'gatehouse.db'), { readonly: true });
  try {
    return (db.prepare('SELECT body FROM audit_events ORDER BY node, seq').all() as Array<{ body: string }>).map((r) => JSON.parse(r.body) as AuditEvent);
  } finally {
    db.close();
  }
}

/** Events of any store, through the store interface. */
async function eventsOf(spec: StoreSpec): Promise<AuditEvent[]> {
  const store = await openStore(spec);
  try {
    const out: AuditEvent[] = [];
    for (const node of await store.audit.nodes()) for (const r of await store.audit.range(node, 0, 1_000_000)) out.push(JSON.parse(r.body) as AuditEvent);
    return out;
  } finally {
    await store.close();
  }
}

async function verifySpec(spec: StoreSpec, stateDir: string): Promise<Awaited<ReturnType<typeof verifyAudit>>> {
  const store = await openStore(spec);
  try {
    const pub = loadPublicKey(join(stateDir, 'audit-signing.pub'));
    return await verifyAudit(store.audit, new Map([[pub.keyId, pub.key]]));
  } finally {
    await store.close();
  }
}

async function verifyDir(stateDir: string): Promise<Awaited<ReturnType<typeof verifyAudit>>> {
  const db = new Database(join(stateDir, 'gatehouse.db'), { readonly: true });
  try {
    const pub = loadPublicKey(join(stateDir, 'audit-signing.pub'));
    return await verifyAudit(new SqliteAuditStore(db), new Map([[pub.keyId, pub.key]]));
  } finally {
    db.close();
  }
}

const POLICY = `
rules:
  - id: test.no-secrets
    when: statement.tables.exists(t, t == "secrets")
    action: deny
    message: the secrets table is off limits
`;

/** How each store is set up, read and made unwritable by a test. */
const STORES = {
  sqlite: {
    yaml: (): string => '',
    async setup(): Promise<{ url?: string; drop(): Promise<void> }> {
      return { drop: async () => {} };
    },
    /** Hold the write lock, as another process could. */
    async lock(stateDir: string): Promise<() => Promise<void>> {
      const locker = new Database(join(stateDir, 'gatehouse.db'));
      locker.pragma('busy_timeout = 5000');
      locker.exec('BEGIN EXCLUSIVE');
      return async () => {
        locker.exec('ROLLBACK');
        locker.close();
      };
    },
  },
  postgres: {
    yaml: (url?: string): string => `  postgres_url: ${url}\n`,
    async setup(): Promise<{ url?: string; drop(): Promise<void> }> {
      const store = await createTestDatabase('gh_store');
      return { url: `postgres://postgres@127.0.0.1:5432/${store.name}`, drop: store.drop };
    },
    async lock(_stateDir: string, url?: string): Promise<() => Promise<void>> {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query('BEGIN');
      await c.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
      return async () => {
        await c.query('ROLLBACK');
        await c.end();
      };
    },
  },
} satisfies Record<'sqlite' | 'postgres', unknown>;

for (const kind of ['sqlite', 'postgres'] as const) describe(`audit trail through the proxy (${kind} store)`, () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  let store: { url?: string; drop(): Promise<void> };
  const stateDir = mkdtempSync(join(tmpdir(), 'gh-audit-'));
  const policyFile = join(stateDir, 'policy.yaml');
  const spec = (): StoreSpec => (kind === 'sqlite' ? { kind, file: join(stateDir, 'gatehouse.db') } : { kind, url: store.url! });

  before(async () => {
    store = await STORES[kind].setup();
    db = await createTestDatabase();
    await direct(db.name, 'CREATE TABLE items (id int primary key, note text); CREATE TABLE big (id int); INSERT INTO big SELECT generate_series(1, 1200); CREATE TABLE secrets (s text)');
    writeFileSync(policyFile, POLICY);
    proxy = await startProxy({
      database: db.name,
      stateDir,
      extraYaml: `policy: { files: [${policyFile}], watch: false }\naudit: { flush_delay: 20ms }\nstate:\n  dir: ${stateDir}\n${STORES[kind].yaml(store.url)}`,
    });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
    await store?.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('records sessions, authentication, statements with their decisions, breaker trips, reloads and the node', async () => {
    const c = await proxy.client({ user: 'alice', database: 'prod', application_name: 'audit-test' });
    await c.query("INSERT INTO items VALUES (1, 'a')");
    await c.query('SELECT * FROM items WHERE id = $1', [1]);
    await assert.rejects(c.query('SELECT * FROM secrets'), (e: Error & { code?: string }) => e.code === '42501');
    await assert.rejects(c.query('UPDATE big SET id = id + 0 WHERE id > 0'), (e: Error & { code?: string }) => e.code === '42501' && /row/.test(e.message));
    await c.end();
    await assert.rejects(proxy.client({ user: 'alice', password: 'wrong' }), (e: Error & { code?: string }) => e.code === '28P01');
    await assert.rejects(proxy.client({ user: 'bob', database: 'nope' }), (e: Error & { code?: string }) => e.code === '3D000');
    assert.equal(proxy.node.reloadPolicy(), true);
    writeFileSync(policyFile, 'rules: [ { id: broken, when: "(((", action: deny } ]');
    assert.equal(proxy.node.reloadPolicy(), false);
    writeFileSync(policyFile, POLICY);

    const events = (await waitFor(async () => {
      const e = await eventsOf(spec());
      return e.some((x) => x.type === 'policy.reload_failed') && e.some((x) => x.type === 'session.end' && x.identity?.name === 'alice') ? e : null;
    }, 10_000, "events"))!;
    const types = new Set(events.map((e) => e.type));
    for (const t of ['node.start', 'auth.success', 'auth.failure', 'session.start', 'session.end', 'session.fail', 'statement', 'statement.intent', 'breaker.trip', 'policy.reload', 'policy.reload_failed']) {
      assert.ok(types.has(t as AuditEvent['type']), `an event of type ${t}`);
    }
    const insert = events.find((e) => e.type === 'statement' && e.statement?.kind === 'INSERT')!;
    assert.equal(insert.identity?.name, 'alice');
    assert.deepEqual(insert.identity?.groups, ['dba']);
    assert.equal(insert.connection?.environment, 'production');
    assert.equal(insert.client?.application_name, 'audit-test');
    assert.equal(insert.statement?.text, 'insert into items values (?, ?)', 'literals are redacted by default');
    assert.deepEqual(insert.statement?.tables, ['items']);
    assert.equal(insert.rows_affected, 1);
    assert.equal(insert.decision?.action, 'allow');
    // The intent was committed before the insert ran, so it precedes the statement in the chain.
    const intent = events.find((e) => e.type === 'statement.intent' && e.statement?.kind === 'INSERT')!;
    assert.ok(intent.seq < insert.seq);
    assert.equal(intent.statement?.fingerprint, insert.statement?.fingerprint);

    const select = events.find((e) => e.type === 'statement' && e.statement?.kind === 'SELECT' && e.statement.protocol === 'extended')!;
    assert.equal(select.rows, 1);
    assert.ok(!events.some((e) => e.type === 'statement.intent' && e.statement?.kind === 'SELECT'), 'reads are not held for a durable intent');

    const denied = events.find((e) => e.type === 'statement' && e.decision?.action === 'deny')!;
    assert.equal(denied.decision?.rule, 'test.no-secrets');
    assert.equal(denied.refused_by, 'test.no-secrets');
    assert.equal(denied.sqlstate, '42501');

    const update = events.find((e) => e.type === 'statement' && e.statement?.kind === 'UPDATE')!;
    assert.ok(update.decision?.matches.some((m) => m.id === 'guard.row-cap' && m.action === 'limit_rows' && m.mode === 'enforce'), 'every matching rule is recorded');
    assert.equal(update.refused_by, 'guard.row-cap');
    const trip = events.find((e) => e.type === 'breaker.trip')!;
    assert.equal(trip.refused_by, 'guard.row-cap');
    assert.equal(trip.rows_affected, 1200);

    const failure = events.find((e) => e.type === 'auth.failure')!;
    assert.equal(failure.identity?.name, 'alice');
    assert.equal(failure.sqlstate, '28P01');
    const fail = events.find((e) => e.type === 'session.fail')!;
    assert.equal(fail.identity?.name, 'bob');
    assert.equal(fail.sqlstate, '3D000');

    // Everything recorded verifies.
    const result = await verifySpec(spec(), stateDir);
    assert.deepEqual(result.problems, []);
  });

  it('refuses production writes while the store cannot be written; reads and development go on; nothing is lost', async () => {
    const c = await proxy.client({ user: 'alice', database: 'prod' });
    const dev = await proxy.client({ user: 'alice', database: 'dev' });
    const unlock = await STORES[kind].lock(stateDir, store.url);
    try {
      // The first write waits for its intent up to audit.store_timeout, then is refused.
      await assert.rejects(c.query("INSERT INTO items VALUES (100, 'x')"), (e: Error & { code?: string }) => {
        assert.equal(e.code, '58030');
        assert.match(e.message, /audit store is unavailable.*\(rule gatehouse\.audit-unavailable\)/);
        return true;
      });
      await assert.rejects(c.query("INSERT INTO items VALUES (101, 'x')"), (e: Error & { code?: string }) => e.code === '58030');
      // Extended protocol: the Execute is refused, the session stays usable.
      await assert.rejects(c.query('INSERT INTO items VALUES ($1, $2)', [102, 'x']), (e: Error & { code?: string }) => e.code === '58030');
      assert.equal((await c.query('SELECT count(*)::int AS n FROM items WHERE id >= 100')).rows[0].n, 0);
      await dev.query("INSERT INTO items VALUES (200, 'dev')");
    } finally {
      await unlock();
    }
    // The writer retries; once it has caught up, production writes run again.
    await waitFor(() => proxy.node.audit!.healthy && proxy.node.audit!.backlog === 0, 10_000, 'the audit writer to recover');
    await c.query("INSERT INTO items VALUES (103, 'after')");
    await c.end();
    await dev.end();
    const events = (await waitFor(async () => {
      const e = await eventsOf(spec());
      return e.some((x) => x.type === 'statement' && x.statement?.kind === 'INSERT' && x.decision?.action === 'allow' && x.connection?.name === 'prod' && x.seq > 0 && x.rows_affected === 1 && e.filter((y) => y.decision?.rule === 'gatehouse.audit-unavailable').length >= 3) ? e : null;
    }, 10_000, 'events after recovery'))!;
    const refusals = events.filter((e) => e.type === 'statement' && e.decision?.rule === 'gatehouse.audit-unavailable');
    assert.equal(refusals.length, 3, 'each refused write is itself recorded once the store is back');
    assert.ok(refusals.every((e) => e.sqlstate === '58030'));
    assert.deepEqual((await verifySpec(spec(), stateDir)).problems, []);
  });
});

describe('audit durability', () => {
  it('SIGKILL during a write load loses no event of a statement that reached the database', async () => {
    const db = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'gh-kill-'));
    try {
      await direct(db.name, 'CREATE TABLE load (id int primary key, worker int)');
      const [pgPort, httpPort] = await freePorts(2);
      const file = join(dir, 'gatehouse.yaml');
      // Full text so every row can be matched to its own event.
      writeFileSync(file, configYaml({ database: db.name, pgPort, httpPort, stateDir: join(dir, 'state'), extraYaml: 'audit: { statement_text: full, flush_delay: 1s }' }));
      const proc = spawnCli(['serve', '--config', file]);
      await waitReady(httpPort!, proc);
      let stop = false;
      const workers = Array.from({ length: 8 }, async (_, w) => {
        const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'alice', password: 'alice-pw', database: 'prod' });
        c.on('error', () => {});
        await c.connect();
        for (let i = 0; !stop; i++) {
          try {
            if (i % 2 === 0) await c.query(`INSERT INTO load VALUES (${w * 1_000_000 + i}, ${w})`);
            else await c.query('INSERT INTO load VALUES ($1, $2)', [w * 1_000_000 + i, w]);
          } catch {
            return;
          }
        }
      });
      // Kill mid-load, once it has written a fair number of rows (slower when the machine is busy).
      await waitFor(async () => (await direct<{ n: number }>(db.name, 'SELECT count(*)::int AS n FROM load')).rows[0]!.n >= 200, 20_000, 'the write load').catch(() => undefined);
      proc.child.kill('SIGKILL');
      stop = true;
      await Promise.all(workers);
      await proc.exited;

      const rows = (await direct<{ id: number }>(db.name, 'SELECT id FROM load')).rows.map((r) => r.id);
      assert.ok(rows.length > 50, `the load ran (${rows.length} rows)`);
      const stateDir = join(dir, 'state');
      const recorded = new Set<number>();
      for (const e of eventsIn(stateDir)) {
        if (e.type !== 'statement.intent' || e.statement?.kind !== 'INSERT') continue;
        const m = /VALUES \((\d+),/.exec(e.statement.text);
        if (m) recorded.add(Number(m[1]));
      }
      // Extended-protocol inserts carry parameters, not literals: count them per worker instead.
      const simple = rows.filter((id) => (id % 1_000_000) % 2 === 0);
      const missing = simple.filter((id) => !recorded.has(id));
      assert.deepEqual(missing, [], 'every simple-protocol row has its intent event');
      const extendedRows = rows.length - simple.length;
      const extendedIntents = eventsIn(stateDir).filter((e) => e.type === 'statement.intent' && e.statement?.protocol === 'extended').length;
      assert.ok(extendedIntents >= extendedRows, `${extendedIntents} extended intents for ${extendedRows} rows`);
      // The chain is intact; only its tail after the last checkpoint is unsigned.
      const result = await verifyDir(stateDir);
      assert.deepEqual(result.problems, []);

      // A restarted node continues the same chain.
      const again = spawnCli(['serve', '--config', file]);
      await waitReady(httpPort!, again);
      const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'alice', password: 'alice-pw', database: 'dev' });
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      again.child.kill('SIGTERM');
      await again.exited;
      const after = await verifyDir(stateDir);
      assert.deepEqual(after.problems, []);
      assert.equal(after.writers.length, 1);
      assert.equal(after.writers[0]!.unsignedTail, 0, 'the clean shutdown signed the head');
    } finally {
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('audit of tokens issued by the CLI', () => {
  it('token create and revoke are recorded by the CLI writer and verify', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-tok-'));
    try {
      const file = join(dir, 'gatehouse.yaml');
      writeFileSync(file, configYaml({ database: 'test', stateDir: join(dir, 'state'), extraYaml: 'auth: { tokens: true }' }));
      const created = await run(process.execPath, [BIN, 'token', 'create', '--config', file, '--kind', 'agent', '--name', 'bot', '--on-behalf-of', 'alice']);
      assert.equal(created.code, 0, created.stderr);
      const id = /^token ([0-9a-f]{12}) /.exec(created.stdout)![1]!;
      const revoked = await run(process.execPath, [BIN, 'token', 'revoke', id, '--config', file]);
      assert.equal(revoked.code, 0, revoked.stderr);
      const events = eventsIn(join(dir, 'state'));
      assert.deepEqual(events.map((e) => e.type), ['token.issue', 'token.revoke']);
      assert.equal(events[0]!.detail?.token_id, id);
      assert.equal(events[0]!.detail?.on_behalf_of, 'alice');
      assert.ok(events[0]!.node.endsWith('.cli'));
      assert.ok(!readFileSync(join(dir, 'state', 'gatehouse.db')).includes(created.stdout.trim().split('\n').at(-1)!), 'the token itself is not stored');
      const result = await verifyDir(join(dir, 'state'));
      assert.deepEqual(result.problems, []);
      assert.equal(result.writers[0]!.unsignedTail, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
