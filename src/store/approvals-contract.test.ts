/**
 * The approval store contract: one suite, run against every implementation (the embedded SQLite
 * file and the shared PostgreSQL database), so both keep, list, find and change approval
 * requests the same way, including an update that is refused and two nodes voting on one
 * request at the same moment (the second node is a worker thread with its own store instance).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { createTestDatabase, direct, PG_HOST, PG_PORT } from '../../test/helpers/pg.js';
import { ApprovalError, close, execute, newApprovalId, statementKey, vote, type ApprovalRequest, type ApprovalStatus, type Decider } from '../approvals/request.js';
import { PostgresStore } from './postgres-store.js';
import { SqliteStore, type Store } from './sqlite-store.js';
import { useStore as useSharedStore } from './use-store.test-helper.js';

type Impl = 'sqlite' | 'postgres';

/** The approvals schema as the database describes it, read directly (not through the store). */
interface Schema {
  /** Applied migrations: version and when. */
  readonly versions: Array<{ version: number; appliedAt: number }>;
  readonly tables: string[];
  /** Columns of the approvals table, sorted. */
  readonly columns: string[];
  /** Secondary indexes of the approvals table: name -> its columns, comma-separated, in order. */
  readonly indexes: Record<string, string>;
}

/** An empty place for a store: open it (as often as a test likes), look inside, remove it. */
interface Location {
  open(): Promise<Store>;
  /** What a worker thread needs to open its own store here. */
  readonly remote: { readonly impl: Impl; readonly module: string; readonly target: string };
  inspect(): Promise<Schema>;
  /** Run SQL directly (to put the database back to an older schema). */
  exec(sql: string): Promise<void>;
  cleanup(): Promise<void>;
}

/** Typed per implementation, so a new store does not compile until it is covered here. */
const LOCATIONS: Record<Impl, () => Promise<Location>> = {
  sqlite: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-approvals-'));
    const file = join(dir, 'gatehouse.db');
    const withDb = <T>(readonly: boolean, fn: (db: Database.Database) => T): T => {
      const db = new Database(file, { readonly });
      try {
        return fn(db);
      } finally {
        db.close();
      }
    };
    return {
      open: async () => new SqliteStore(file),
      remote: { impl: 'sqlite', module: new URL('./sqlite-store.js', import.meta.url).href, target: file },
      inspect: async () =>
        withDb(true, (db) => {
          const versions = (db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all() as Array<{ version: number; applied_at: number }>).map((r) => ({ version: r.version, appliedAt: r.applied_at }));
          const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
          const columns = db.prepare("SELECT name FROM pragma_table_info('approvals') ORDER BY name").pluck().all() as string[];
          // sql IS NULL: the index SQLite makes for the primary key itself.
          const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'approvals' AND sql IS NOT NULL ORDER BY name").pluck().all() as string[];
          const indexes: Record<string, string> = {};
          for (const n of names) indexes[n] = (db.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').pluck().all(n) as string[]).join(',');
          return { versions, tables, columns, indexes };
        }),
      exec: async (sql) => withDb(false, (db) => void db.exec(sql)),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
  postgres: async () => {
    const db = await createTestDatabase('gh_approvals');
    const url = `postgres://postgres@${PG_HOST}:${PG_PORT}/${db.name}`;
    return {
      open: () => PostgresStore.open(url, { statementTimeoutMs: 10_000 }),
      remote: { impl: 'postgres', module: new URL('./postgres-store.js', import.meta.url).href, target: url },
      inspect: async () => {
        const versions = (await direct<{ version: number; applied_at: string }>(db.name, 'SELECT version, applied_at FROM schema_migrations ORDER BY version')).rows.map((r) => ({ version: r.version, appliedAt: Number(r.applied_at) }));
        const tables = (await direct<{ name: string }>(db.name, 'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1')).rows.map((r) => r.name);
        const columns = (await direct<{ name: string }>(db.name, "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'approvals' ORDER BY 1")).rows.map((r) => r.name);
        const { rows } = await direct<{ name: string; cols: string }>(
          db.name,
          `SELECT i.relname AS name, string_agg(a.attname, ',' ORDER BY k.n) AS cols
             FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid
             CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE t.relname = 'approvals' AND t.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary
            GROUP BY i.relname`,
        );
        return { versions, tables, columns, indexes: Object.fromEntries(rows.map((r) => [r.name, r.cols])) };
      },
      exec: async (sql) => void (await direct(db.name, sql)),
      cleanup: db.drop,
    };
  },
};

const useStore = (impl: Impl): { store(): Store; location(): Location } => useSharedStore(() => LOCATIONS[impl]());

const T0 = 1_700_000_000_000;
const RUN_WINDOW = 15 * 60_000;
const dave: Decider = { name: 'dave', kind: 'human', groups: ['dba'] };
const erin: Decider = { name: 'erin', kind: 'human', groups: ['dba', 'sre'] };

/** A pending request made by the agent "bot" for alice, created at T0 and expiring a minute later. */
function request(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  const statement = over.statement ?? 'DELETE FROM orders WHERE id = 1';
  return {
    id: newApprovalId(),
    status: 'pending',
    mode: 'wait',
    requester: { name: 'bot', kind: 'agent', groups: ['agents'], onBehalfOf: 'alice' },
    connection: 'prod',
    environment: 'production',
    statement,
    statementKey: statementKey('prod', 'bot', statement),
    facts: { kind: 'DELETE', tables: ['orders'], fingerprint: 'delete from orders where id = ?' },
    rule: 'prod-writes',
    message: 'writes to production need a DBA',
    groups: ['dba'],
    quorum: 1,
    votes: [],
    createdAt: T0,
    expiresAt: T0 + 60_000,
    runWindowMs: RUN_WINDOW,
    session: 'sess-1',
    node: 'node-a',
    ...over,
  };
}

/** Request ids, for order assertions. */
const idsOf = (rs: readonly ApprovalRequest[]): string[] => rs.map((r) => r.id);
/** `n` distinct fresh ids in ascending (byte) order. */
const sortedIds = (n: number): string[] => Array.from({ length: n }, newApprovalId).sort();

/** Messages of the worker that plays the second node. */
type Reply = { readonly inside: true } | { readonly done: ApprovalRequest | null } | { readonly error: string };

/**
 * The second node, as a worker thread (its own event loop, its own store instance): it votes as
 * `who` on request `id` and, once inside the update (the request read and locked), says "inside"
 * and holds the update open for `holdMs` before returning its change.
 */
const SECOND_NODE = `
const { parentPort, workerData: w } = require('node:worker_threads');
(async () => {
  const { vote } = await import(w.requestModule);
  const mod = await import(w.remote.module);
  const store = w.remote.impl === 'sqlite' ? new mod.SqliteStore(w.remote.target) : await mod.PostgresStore.open(w.remote.target, { statementTimeoutMs: 10000 });
  try {
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const done = await store.approvals.update(w.id, (r) => {
      parentPort.postMessage({ inside: true });
      Atomics.wait(gate, 0, 0, w.holdMs);
      return vote(r, w.who, 'approve', w.now);
    });
    parentPort.postMessage({ done });
  } finally {
    await store.close();
  }
})().catch((err) => parentPort.postMessage({ error: String((err && err.stack) || err) }));
`;

/** The worker's replies in order; an uncaught error or an early exit is an error reply. */
function mailbox(w: Worker): () => Promise<Reply> {
  const queue: Reply[] = [];
  const waiting: Array<(r: Reply) => void> = [];
  const deliver = (r: Reply): void => {
    const f = waiting.shift();
    if (f) f(r);
    else queue.push(r);
  };
  w.on('message', deliver);
  w.on('error', (err) => deliver({ error: String(err.stack ?? err) }));
  w.on('exit', (code) => deliver({ error: `the worker exited (code ${code})` }));
  return () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => waiting.push(resolve)));
}

function expectReply<K extends 'inside' | 'done'>(r: Reply, key: K): Extract<Reply, Record<K, unknown>> {
  if ('error' in r) assert.fail(`second node: ${r.error}`);
  assert.ok(key in r, `expected "${key}", got ${JSON.stringify(r)}`);
  return r as Extract<Reply, Record<K, unknown>>;
}

for (const impl of ['sqlite', 'postgres'] as const) {
  describe(`approval store contract: ${impl}`, () => {
    describe('migration 3', () => {
      const { store, location } = useStore(impl);

      it('creates the approvals table with its columns and indexes', async () => {
        const { versions, tables, columns, indexes } = await location().inspect();
        assert.deepEqual(
          versions.map((v) => v.version),
          [1, 2, 3, 4],
        );
        assert.ok(tables.includes('approvals'), 'table approvals exists');
        assert.deepEqual(columns, ['body', 'created_at', 'expires_at', 'id', 'statement_key', 'status']);
        assert.deepEqual(indexes, { approvals_created: 'created_at', approvals_key_created: 'statement_key,created_at', approvals_status_expires: 'status,expires_at' });
      });

      it('is not applied again when the store is reopened: the version keeps its time and the requests stay', async () => {
        const r = request();
        await store().approvals.create(r);
        const before = await location().inspect();
        const again = await location().open();
        try {
          assert.deepEqual(await again.approvals.get(r.id), r);
        } finally {
          await again.close();
        }
        assert.deepEqual((await location().inspect()).versions, before.versions);
      });

      it('is applied to a store still at version 2', async () => {
        await store().close();
        // Undo migrations 4 (audit templates) and 3.
        await location().exec(
          'DROP TABLE audit_templates; ALTER TABLE audit_events DROP COLUMN tpl; ALTER TABLE audit_events DROP COLUMN tpl_rows; DROP TABLE approvals; DELETE FROM schema_migrations WHERE version >= 3',
        );
        assert.deepEqual(
          (await location().inspect()).versions.map((v) => v.version),
          [1, 2],
        );
        const reopened = await location().open();
        try {
          const { versions, tables } = await location().inspect();
          assert.deepEqual(
            versions.map((v) => v.version),
            [1, 2, 3, 4],
          );
          assert.ok(tables.includes('approvals'));
          const r = request();
          await reopened.approvals.create(r);
          assert.deepEqual(await reopened.approvals.get(r.id), r);
        } finally {
          await reopened.close();
        }
      });
    });

    describe('create and get', () => {
      const { store } = useStore(impl);

      it('returns what was created, optional fields included', async () => {
        const plain = request();
        const full = request({
          status: 'approved',
          mode: 'retry',
          quorum: 2,
          votes: [
            { name: 'dave', verdict: 'approve', at: T0 + 1, reason: 'looks fine' },
            { name: 'policy', verdict: 'approve', at: T0 + 2, rule: 'auto-small' },
          ],
          decidedAt: T0 + 2,
          runUntil: T0 + 2 + RUN_WINDOW,
          reason: 'quorum reached',
        });
        await store().approvals.create(plain);
        await store().approvals.create(full);
        assert.deepEqual(await store().approvals.get(plain.id), plain);
        assert.deepEqual(await store().approvals.get(full.id), full);
        assert.equal(await store().approvals.get(newApprovalId()), null);
      });

      it('refuses a duplicate id with a 409 ApprovalError and keeps the first request', async () => {
        const r = request();
        await store().approvals.create(r);
        await assert.rejects(store().approvals.create({ ...r, statement: 'DROP TABLE orders' }), (err: unknown) => {
          assert.ok(err instanceof ApprovalError, `an ApprovalError, got ${String(err)}`);
          assert.equal(err.status, 409);
          assert.match(err.message, new RegExp(r.id));
          return true;
        });
        assert.deepEqual(await store().approvals.get(r.id), r);
      });
    });

    describe('list', () => {
      const { store } = useStore(impl);
      // Three requests share a creation time; ids a < b < c, so newest first ends c, b, a. They
      // are inserted b, c, a: neither that order nor its reverse is the expected one.
      const [a, b, c] = sortedIds(3);
      const tie = { a: request({ id: a, createdAt: T0 + 20 }), b: request({ id: b, createdAt: T0 + 20, status: 'denied' }), c: request({ id: c, createdAt: T0 + 20 }) };
      const oldest = request({ createdAt: T0 });
      const approved = request({ createdAt: T0 + 10, status: 'approved' });
      // Pending in the stored status although its expiry has passed long ago.
      const stale = request({ createdAt: T0 + 5, expiresAt: T0 + 6 });
      const newest = request({ createdAt: T0 + 30, status: 'executed' });

      before(async () => {
        for (const r of [approved, tie.b, oldest, tie.c, newest, stale, tie.a]) await store().approvals.create(r);
      });

      it('lists newest first, ties by id descending', async () => {
        assert.deepEqual(idsOf(await store().approvals.list({})), idsOf([newest, tie.c, tie.b, tie.a, approved, stale, oldest]));
      });

      it('filters on the stored status (a stale pending request is still pending)', async () => {
        assert.deepEqual(idsOf(await store().approvals.list({ status: 'pending' })), idsOf([tie.c, tie.a, stale, oldest]));
        assert.deepEqual(await store().approvals.list({ status: 'approved' }), [approved]);
        assert.deepEqual(await store().approvals.list({ status: 'expired' }), []);
      });

      it('stops at the limit, with or without a status', async () => {
        assert.deepEqual(idsOf(await store().approvals.list({ limit: 2 })), idsOf([newest, tie.c]));
        assert.deepEqual(idsOf(await store().approvals.list({ status: 'pending', limit: 3 })), idsOf([tie.c, tie.a, stale]));
        assert.deepEqual(await store().approvals.list({ limit: 0 }), []);
        assert.deepEqual(await store().approvals.list({ limit: -1 }), []);
      });
    });

    describe('list limits', () => {
      const { store } = useStore(impl);
      const COUNT = 1001;

      before(async () => {
        const all = Array.from({ length: COUNT }, (_, i) => request({ createdAt: T0 + i }));
        // A few at a time: PostgreSQL takes them on several pooled connections.
        for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((r) => store().approvals.create(r)));
      });

      it('returns 100 by default and never more than 1000', async () => {
        const first = await store().approvals.list({});
        assert.equal(first.length, 100);
        assert.equal(first[0]!.createdAt, T0 + COUNT - 1);
        assert.equal((await store().approvals.list({ status: 'pending' })).length, 100);
        assert.equal((await store().approvals.list({ limit: 5000 })).length, 1000);
        assert.equal((await store().approvals.list({ status: 'pending', limit: 1001 })).length, 1000);
        assert.equal((await store().approvals.list({ limit: 250 })).length, 250);
      });
    });

    describe('update', () => {
      const { store } = useStore(impl);
      const NOW = T0 + 1000;

      it('applies votes until the quorum, then execution, and get and the queries see each step', async () => {
        const s = store().approvals;
        const r = request({ quorum: 2 });
        await s.create(r);

        const one = await s.update(r.id, (x) => vote(x, dave, 'approve', NOW, 'ok'));
        assert.equal(one?.status, 'pending');
        assert.deepEqual(
          one?.votes.map((v) => v.name),
          ['dave'],
        );
        assert.deepEqual(await s.get(r.id), one);

        const two = await s.update(r.id, (x) => vote(x, erin, 'approve', NOW + 1));
        assert.deepEqual(two, { ...r, votes: [{ name: 'dave', verdict: 'approve', at: NOW, reason: 'ok' }, { name: 'erin', verdict: 'approve', at: NOW + 1 }], status: 'approved', decidedAt: NOW + 1, runUntil: NOW + 1 + RUN_WINDOW });
        assert.deepEqual(await s.get(r.id), two);
        // The status column moved with the body.
        assert.deepEqual(idsOf(await s.list({ status: 'approved' })), [r.id]);
        assert.deepEqual(await s.list({ status: 'pending' }), []);
        assert.deepEqual(await s.findByKey(r.statementKey, ['approved']), two);
        assert.deepEqual(await s.expiredPending(r.expiresAt + 1), []);

        const done = await s.update(r.id, (x) => execute(x, NOW + 2));
        assert.deepEqual(done, { ...two, status: 'executed', executedAt: NOW + 2 });
        assert.deepEqual(await s.get(r.id), done);
        assert.deepEqual(idsOf(await s.list({ status: 'executed' })), [r.id]);
        assert.equal(await s.findByKey(r.statementKey, ['approved']), null);
      });

      it('closes a pending request (cancelled, expired); the expiry sweep no longer sees it', async () => {
        const s = store().approvals;
        const gone = request();
        const late = request();
        await s.create(gone);
        await s.create(late);
        assert.deepEqual((await s.expiredPending(late.expiresAt)).sort(), [gone.id, late.id].sort());

        const cancelled = await s.update(gone.id, (x) => close(x, 'cancelled', NOW, 'client went away'));
        assert.deepEqual(cancelled, { ...gone, status: 'cancelled', decidedAt: NOW, reason: 'client went away' });
        const expired = await s.update(late.id, (x) => close(x, 'expired', late.expiresAt, 'nobody decided'));
        assert.deepEqual(await s.get(late.id), expired);
        assert.equal(expired?.status, 'expired');
        assert.deepEqual(await s.expiredPending(late.expiresAt), []);
        assert.deepEqual(idsOf(await s.list({ status: 'expired' })), [late.id]);
      });

      it('keeps the columns in step with the body when a change moves the expiry', async () => {
        const s = store().approvals;
        const r = request({ expiresAt: T0 + 10 });
        await s.create(r);
        assert.ok((await s.expiredPending(T0 + 10)).includes(r.id));
        const later = await s.update(r.id, (x) => ({ ...x, expiresAt: T0 + 100 }));
        assert.equal(later?.expiresAt, T0 + 100);
        assert.ok(!(await s.expiredPending(T0 + 10)).includes(r.id));
        assert.ok((await s.expiredPending(T0 + 100)).includes(r.id));
      });

      it('writes nothing when the change throws, and rethrows its error unchanged', async () => {
        const s = store().approvals;
        const r = request({ quorum: 2 });
        await s.create(r);
        const stored = await s.get(r.id);

        // The requester's own person may not decide (separation of duties): 403.
        let thrown: unknown;
        const alice: Decider = { name: 'alice', kind: 'human', groups: ['dba'] };
        await assert.rejects(
          s.update(r.id, (x) => {
            try {
              return vote(x, alice, 'approve', NOW);
            } catch (err) {
              thrown = err;
              throw err;
            }
          }),
          (err: unknown) => {
            assert.ok(thrown instanceof ApprovalError && thrown.status === 403, `vote refused alice: ${String(thrown)}`);
            assert.equal(err, thrown, 'the very error the change threw');
            return true;
          },
        );
        // A change that builds a new request and then refuses it writes nothing either.
        await assert.rejects(
          s.update(r.id, (x) => {
            const voted = vote(x, dave, 'approve', NOW);
            return execute(voted, NOW); // still pending (quorum 2): 409
          }),
          (err: unknown) => err instanceof ApprovalError && err.status === 409,
        );
        assert.deepEqual(await s.get(r.id), stored);
        // And the request is not left locked: the next update goes through.
        const ok = await s.update(r.id, (x) => vote(x, dave, 'approve', NOW));
        assert.deepEqual(
          ok?.votes.map((v) => v.name),
          ['dave'],
        );
      });

      it('refuses a change that alters the id, writing nothing under either id', async () => {
        const s = store().approvals;
        const r = request();
        await s.create(r);
        const other = newApprovalId();
        await assert.rejects(
          s.update(r.id, (x) => ({ ...x, id: other, status: 'cancelled' })),
          (err: unknown) => err instanceof TypeError && err.message.includes(r.id) && err.message.includes(other),
        );
        assert.deepEqual(await s.get(r.id), r);
        assert.equal(await s.get(other), null);
      });

      it('returns null for an unknown id, without calling the change', async () => {
        let called = false;
        const out = await store().approvals.update(newApprovalId(), (x) => {
          called = true;
          return x;
        });
        assert.equal(out, null);
        assert.equal(called, false);
      });
    });

    describe('findByKey', () => {
      const { store } = useStore(impl);
      const key = statementKey('prod', 'bot', 'UPDATE accounts SET frozen = true');
      const statement = 'UPDATE accounts SET frozen = true';
      // Three pending ones share a creation time: the largest id counts as newest. Inserted mid,
      // hi, lo: neither that order nor its reverse puts hi first.
      const [lo, mid, hi] = sortedIds(3);
      const executed = request({ statement, statementKey: key, createdAt: T0, status: 'executed' });
      const approvedOld = request({ statement, statementKey: key, createdAt: T0 + 1, status: 'approved' });
      const approvedNew = request({ statement, statementKey: key, createdAt: T0 + 2, status: 'approved' });
      const pendingHi = request({ id: hi, statement, statementKey: key, createdAt: T0 + 3 });
      const pendingMid = request({ id: mid, statement, statementKey: key, createdAt: T0 + 3 });
      const pendingLo = request({ id: lo, statement, statementKey: key, createdAt: T0 + 3 });
      // Newer than all of them, but another statement.
      const elsewhere = request({ createdAt: T0 + 9, status: 'approved' });

      before(async () => {
        for (const r of [approvedNew, pendingMid, elsewhere, pendingHi, executed, pendingLo, approvedOld]) await store().approvals.create(r);
      });

      it('finds the newest request with the key in one of the statuses', async () => {
        const s = store().approvals;
        assert.deepEqual(await s.findByKey(key, ['approved']), approvedNew);
        assert.deepEqual(await s.findByKey(key, ['executed']), executed);
        assert.deepEqual(await s.findByKey(key, ['pending']), pendingHi);
        assert.deepEqual(await s.findByKey(key, ['approved', 'pending']), pendingHi);
        assert.deepEqual(await s.findByKey(key, ['executed', 'approved']), approvedNew);
        assert.deepEqual(await s.findByKey(elsewhere.statementKey, ['approved']), elsewhere);
      });

      it('finds nothing for another status, an unknown key or no statuses', async () => {
        const s = store().approvals;
        const none: readonly ApprovalStatus[] = [];
        assert.equal(await s.findByKey(key, ['denied', 'expired', 'cancelled']), null);
        assert.equal(await s.findByKey(statementKey('prod', 'bot', 'SELECT 1'), ['pending', 'approved']), null);
        assert.equal(await s.findByKey(key, none), null);
      });
    });

    describe('expiredPending', () => {
      const { store } = useStore(impl);
      const NOW = T0 + 60_000;
      const past = request({ expiresAt: NOW - 1 });
      const atNow = request({ expiresAt: NOW });
      const future = request({ expiresAt: NOW + 1 });
      const decided = request({ expiresAt: NOW - 5, status: 'approved' });
      const closed = request({ expiresAt: NOW - 5, status: 'cancelled' });

      before(async () => {
        for (const r of [future, decided, past, closed, atNow]) await store().approvals.create(r);
      });

      it('lists pending requests whose expiry is at or before now, and only those', async () => {
        const s = store().approvals;
        assert.deepEqual((await s.expiredPending(NOW)).sort(), [past.id, atNow.id].sort());
        assert.deepEqual(await s.expiredPending(NOW - 2), []);
        assert.deepEqual((await s.expiredPending(NOW + 1)).sort(), [past.id, atNow.id, future.id].sort());
      });
    });

    describe('two nodes at once', () => {
      const { store, location } = useStore(impl);

      it('serializes concurrent votes from two store instances: both land and the quorum of 2 is reached', async () => {
        const r = request({ quorum: 2 });
        await store().approvals.create(r);
        const NOW = T0 + 1000;
        const worker = new Worker(SECOND_NODE, {
          eval: true,
          workerData: { remote: location().remote, requestModule: new URL('../approvals/request.js', import.meta.url).href, id: r.id, who: dave, now: NOW, holdMs: 500 },
        });
        try {
          const next = mailbox(worker);
          expectReply(await next(), 'inside');
          // The second node holds the request (read, not yet written) for 500 ms: this update
          // starts now and must wait for it, then see its vote. Without the lock both read the
          // request with no votes and one vote is lost (or the update fails).
          const mine = await store().approvals.update(r.id, (x) => vote(x, erin, 'approve', NOW + 1));
          const theirs = expectReply(await next(), 'done').done;
          assert.deepEqual(
            theirs?.votes.map((v) => v.name),
            ['dave'],
          );
          assert.equal(theirs?.status, 'pending');
          assert.deepEqual(
            mine?.votes.map((v) => v.name),
            ['dave', 'erin'],
          );
          assert.equal(mine?.status, 'approved');
          assert.deepEqual(await store().approvals.get(r.id), mine);
        } finally {
          await worker.terminate();
        }
      });
    });
  });
}
