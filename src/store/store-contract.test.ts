/**
 * The state store contract: one suite, run against every implementation (the embedded SQLite
 * file and the shared PostgreSQL database), so both behave the same for tokens, the audit trail,
 * sink cursors and retention, including atomicity and concurrent appends at a writer's head.
 * Then what only PostgreSQL can do: fail in bounded time when the database does not answer.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ChainEncoder, chainHash, GENESIS, keyId, signCheckpoint, type Checkpoint, type SigningKey } from '../audit/chain.js';
import { Batch, COMPACT_STATEMENT, compactWriter, encodeFragment, expanded, NUMS, templatize, writeCompact, type EncodedFragment, type Fragment } from '../audit/compact.js';
import { canonicalJson, eventColumns, type AuditEvent } from '../audit/event.js';
import { ConfigError } from '../errors.js';
import { createTestDatabase, direct, freePort, PG_HOST, PG_PORT } from '../../test/helpers/pg.js';
import { EVENT_COLUMNS, type AuditFilter, type EventBatch, type StoredEvent } from './audit.js';
import { PostgresStore } from './postgres-store.js';
import { SqliteStore, type Store } from './sqlite-store.js';
import { useStore as useSharedStore } from './use-store.test-helper.js';

type Impl = 'sqlite' | 'postgres';

/** An empty place for a store: open it (as often as a test likes), look inside, remove it. */
interface Location {
  open(): Promise<Store>;
  /** Applied migration versions and the tables that exist, read directly (not through the store). */
  inspect(): Promise<{ versions: number[]; tables: string[] }>;
  /** Rows of a table whose `column` is `value`, read directly. */
  count(table: string, column: string, value: string): Promise<number>;
  /** Run SQL directly (not through the store). */
  exec(sql: string): Promise<void>;
  cleanup(): Promise<void>;
}

/** Typed per implementation, so a new store does not compile until it is covered here. */
const LOCATIONS: Record<Impl, () => Promise<Location>> = {
  sqlite: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-store-'));
    const file = join(dir, 'gatehouse.db');
    return {
      open: async () => new SqliteStore(file),
      inspect: async () => {
        const db = new Database(file, { readonly: true });
        try {
          const versions = (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Array<{ version: number }>).map((r) => r.version);
          const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
          return { versions, tables };
        } finally {
          db.close();
        }
      },
      count: async (table, column, value) => {
        const db = new Database(file, { readonly: true });
        try {
          return (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${column} = ?`).get(value) as { n: number }).n;
        } finally {
          db.close();
        }
      },
      exec: async (sql) => {
        const db = new Database(file);
        try {
          db.exec(sql);
        } finally {
          db.close();
        }
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
  postgres: async () => {
    const db = await createTestDatabase('gh_store');
    const url = `postgres://postgres@${PG_HOST}:${PG_PORT}/${db.name}`;
    return {
      open: () => PostgresStore.open(url, { statementTimeoutMs: 10_000 }),
      inspect: async () => {
        const versions = (await direct<{ version: number }>(db.name, 'SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
        const tables = (await direct<{ name: string }>(db.name, "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1")).rows.map((r) => r.name);
        return { versions, tables };
      },
      count: async (table, column, value) => (await direct<{ n: number }>(db.name, `SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [value])).rows[0]!.n,
      exec: async (sql) => void (await direct(db.name, sql)),
      cleanup: db.drop,
    };
  },
};

const useStore = (impl: Impl): { store(): Store; location(): Location } => useSharedStore(() => LOCATIONS[impl]());

const KEY: SigningKey = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyId: keyId(publicKey) };
})();

/** An event as the writer would number it. */
type Draft = Omit<AuditEvent, 'node' | 'seq'>;

/** Events numbered from `head`, as the flat batch the writer thread hands the store, chained from `head`. */
function chain(node: string, head: { seq: number; hash: string } | null, drafts: readonly Draft[]): { batch: EventBatch; stored: StoredEvent[]; last: { seq: number; hash: string } } {
  const rows: unknown[] = [];
  const hashes: string[] = [];
  const stored: StoredEvent[] = [];
  let prev = head ? head.hash : GENESIS;
  let seq = head?.seq ?? 0;
  for (const d of drafts) {
    seq++;
    const e: AuditEvent = { ...d, node, seq };
    const cols = eventColumns(e);
    const body = canonicalJson(e);
    for (const c of EVENT_COLUMNS) rows.push(cols[c]);
    rows.push(body);
    prev = chainHash(prev, body);
    hashes.push(prev);
    stored.push({ ...cols, body, hash: prev });
  }
  return { batch: { rows, count: drafts.length, hashes }, stored, last: { seq, hash: prev } };
}

/** A compact statement event: its session (fragment 1 or 2), statement (3 or 4), duration and rows. */
interface CompactDraft {
  readonly session: 1 | 2;
  readonly statement: 3 | 4;
  readonly duration: number;
  readonly rows: number;
}

/** Fragments of two sessions, one decision (5) and two statements, as the writer thread keeps them. */
function compactFragments(): Map<number, EncodedFragment> {
  const session = (n: number, name: string): Fragment => ({
    t: 's',
    client: `{"client":{"address":"10.0.0.${n}","application_name":"app ${n}","tls":false}`,
    connection: ',"connection":{"environment":"production","name":"prod"}',
    identity: `,"identity":{"kind":"human","name":"${name}"}`,
    session: `,"session":"s${n}"`,
    sessionId: `s${n}`,
    identityName: name,
    onBehalfOf: null,
    connectionName: 'prod',
    environment: 'production',
  });
  const fragments: Array<[number, Fragment]> = [
    [1, session(1, 'alice')],
    [2, session(2, 'zoë')],
    [5, { t: 'd', decision: ',"decision":{"action":"allow","matches":[]}', kind: 'SELECT', tables: ',t,', action: 'allow' }],
    [3, { t: 'x', statement: ',"statement":{"fingerprint":"a","text":"select * from t where id = ?"}' }],
    [4, { t: 'x', statement: ',"statement":{"fingerprint":"b","text":"select \'é\' from t"}' }],
  ];
  return new Map(fragments.map(([id, f]) => [id, encodeFragment(f)]));
}

/**
 * Compact events numbered and chained from `head`, expanded and templatized exactly as the writer
 * thread does (src/audit/writer-thread.ts), with the whole bodies they were hashed from.
 */
function compactChain(node: string, head: { seq: number; hash: string } | null, fragments: Map<number, EncodedFragment>, drafts: readonly CompactDraft[]): { batch: EventBatch; bodies: string[]; last: { seq: number; hash: string } } {
  const queued = new Batch();
  let seq = head?.seq ?? 0;
  for (const d of drafts) queued.compact(COMPACT_STATEMENT, ++seq, T0 + seq, d.session, 5, d.statement, d.duration, d.rows, false, 'SELECT 1', null, null, null);
  const count = drafts.length;
  const out = expanded(count);
  const enc = new ChainEncoder(head?.hash ?? GENESIS);
  const w = compactWriter(node);
  for (let i = 0, s = 0; i < count; i++) s = writeCompact(enc, w, fragments, queued.nums, i * NUMS, queued.strs, s, out, i);
  const bodies = out.bodies.map((b) => b.toString('utf8'));
  const templated = templatize(out, count, node, (i) => out.rows[i * (EVENT_COLUMNS.length + 1) + 1] as number);
  return { batch: { rows: out.rows, count, hashes: out.hashes, bodies: out.bodies, sets: out.sets, templated }, bodies, last: { seq, hash: out.hashes[count - 1]! } };
}

const EMPTY: EventBatch = { rows: [], count: 0, hashes: [] };
const T0 = 1_700_000_000_000;
const ids = (events: readonly StoredEvent[]): string[] => events.map((e) => `${e.node}#${e.seq}`);
const plain = (n: number, ts = T0 + n): Draft => ({ type: 'statement', ts, statement: { text: `SELECT ${n}`, fingerprint: 'f', kind: 'SELECT', tables: ['t'], protocol: 'simple' } });

const alice = { kind: 'human', name: 'alice', groups: ['dev'] };
const bob = { kind: 'agent', name: 'bob', groups: [], on_behalf_of: 'carol', model: 'm1' };
const dev = { name: 'dev', environment: 'development' };
const prod = { name: 'prod', environment: 'production' };
const stmt = (kind: string, tables: string[]) => ({ text: `${kind} ...`, fingerprint: kind.toLowerCase(), kind, tables, protocol: 'extended' });

for (const impl of ['sqlite', 'postgres'] as const) {
  describe(`state store contract: ${impl}`, () => {
    describe('migrations', () => {
      let location: Location | undefined;
      before(async () => {
        location = await LOCATIONS[impl]();
      });
      after(async () => {
        await location?.cleanup();
      });

      it('applies each migration once, when several nodes open together and on every later open', async () => {
        const stores = await Promise.all([location!.open(), location!.open(), location!.open()]);
        for (const s of stores) await s.close();
        const again = await location!.open();
        // The reopened store works: the schema is complete, not half-applied.
        assert.deepEqual(await again.tokens.list(), []);
        assert.equal(await again.audit.head('n'), null);
        await again.close();
        const { versions, tables } = await location!.inspect();
        assert.deepEqual(versions, [1, 2, 3, 4]);
        for (const t of ['approvals', 'audit_checkpoints', 'audit_events', 'audit_sink_cursors', 'audit_templates', 'schema_migrations', 'tokens']) assert.ok(tables.includes(t), `table ${t} exists`);
      });

      it('applies migration 4 (audit templates) to a store that has events: they read back as they were, and new ones are stored against templates', async () => {
        const s = await location!.open();
        const old = chain('mig', null, [plain(1), plain(2)]);
        await s.audit.append(old.batch, []);
        await s.close();
        await location!.exec('DROP TABLE audit_templates; ALTER TABLE audit_events DROP COLUMN tpl; ALTER TABLE audit_events DROP COLUMN tpl_rows; DELETE FROM schema_migrations WHERE version = 4');
        const upgraded = await location!.open();
        try {
          assert.deepEqual((await location!.inspect()).versions, [1, 2, 3, 4]);
          assert.deepEqual(await upgraded.audit.range('mig', 0, 10), old.stored);
          const fresh = compactChain('mig', old.last, compactFragments(), [1, 2, 3].map((n) => ({ session: 1, statement: 3, duration: n, rows: n })));
          await upgraded.audit.append(fresh.batch, []);
          assert.deepEqual(
            (await upgraded.audit.range('mig', 0, 10)).map((e) => e.body),
            [...old.stored.map((e) => e.body), ...fresh.bodies],
          );
        } finally {
          await upgraded.close();
        }
      });
    });

    describe('tokens', () => {
      const { store } = useStore(impl);
      const NOW = T0;

      it('creates a token shown once and lists it', async () => {
        const { record, token } = await store().tokens.create({ kind: 'agent', name: 'bot', onBehalfOf: 'alice', model: 'gpt', groups: ['a', 'b'], connections: ['dev'], ttlMs: 60_000 }, NOW);
        assert.match(token, new RegExp(`^ghtk_${record.id}_[A-Za-z0-9_-]{43}$`));
        const expected = { id: record.id, kind: 'agent', name: 'bot', onBehalfOf: 'alice', model: 'gpt', groups: ['a', 'b'], connections: ['dev'], createdAt: NOW, expiresAt: NOW + 60_000, revokedAt: null, lastUsedAt: null };
        assert.deepEqual(record, expected);
        const other = await store().tokens.create({ kind: 'service', name: 'etl', ttlMs: 1000 }, NOW + 1);
        assert.deepEqual(other.record.groups, []);
        assert.equal(other.record.connections, null);
        assert.equal(other.record.onBehalfOf, null);
        assert.deepEqual(
          (await store().tokens.list()).map((t) => t.id),
          [record.id, other.record.id],
        );
        assert.deepEqual((await store().tokens.list())[0], expected);
      });

      it('verifies a good token and records its use', async () => {
        const { record, token } = await store().tokens.create({ kind: 'human', name: 'v', ttlMs: 60_000 }, NOW);
        const check = await store().tokens.verify(token, NOW + 500);
        assert.equal(check.ok, true);
        assert.equal(check.ok && check.token.id, record.id);
        assert.equal(check.ok && check.token.lastUsedAt, NOW + 500);
        const listed = (await store().tokens.list()).find((t) => t.id === record.id);
        assert.equal(listed?.lastUsedAt, NOW + 500);
      });

      it('refuses a wrong secret, an unknown id and text that is not a token, without recording a use', async () => {
        const { record, token } = await store().tokens.create({ kind: 'human', name: 'w', ttlMs: 60_000 }, NOW);
        const secret = token.slice(-43);
        const wrong = `${token.slice(0, -43)}${secret[0] === 'A' ? 'B' : 'A'}${secret.slice(1)}`;
        assert.deepEqual(await store().tokens.verify(wrong, NOW), { ok: false, reason: 'unknown token or wrong secret' });
        assert.deepEqual(await store().tokens.verify(`ghtk_000000000000_${secret}`, NOW), { ok: false, reason: 'unknown token or wrong secret' });
        assert.deepEqual(await store().tokens.verify('hello', NOW), { ok: false, reason: 'not a Gatehouse token' });
        assert.equal((await store().tokens.list()).find((t) => t.id === record.id)?.lastUsedAt, null);
      });

      it('refuses an expired token (at its expiry instant)', async () => {
        const { record, token } = await store().tokens.create({ kind: 'human', name: 'e', ttlMs: 1000 }, NOW);
        assert.equal((await store().tokens.verify(token, NOW + 999)).ok, true);
        assert.deepEqual(await store().tokens.verify(token, NOW + 1000), { ok: false, reason: `token ${record.id} expired` });
      });

      it('revokes: a revoked token is refused; revoking twice is fine; an unknown id is false', async () => {
        const { record, token } = await store().tokens.create({ kind: 'human', name: 'r', ttlMs: 60_000 }, NOW);
        assert.equal(await store().tokens.revoke(record.id, NOW + 10), true);
        assert.equal(await store().tokens.revoke(record.id, NOW + 20), true);
        assert.equal(await store().tokens.revoke('ffffffffffff', NOW), false);
        assert.deepEqual(await store().tokens.verify(token, NOW + 30), { ok: false, reason: `token ${record.id} was revoked` });
        // The first revocation time stays.
        assert.equal((await store().tokens.list()).find((t) => t.id === record.id)?.revokedAt, NOW + 10);
      });
    });

    describe('audit append and read', () => {
      const { store } = useStore(impl);

      it('appends batches with checkpoints, then head, range, checkpoints and nodes read them back', async () => {
        const a = store().audit;
        assert.equal(await a.head('alpha'), null);
        const first = chain('alpha', null, [plain(1), plain(2), plain(3)]);
        const cp3 = signCheckpoint(KEY, 'alpha', 3, first.last.hash, T0 + 10);
        await a.append(first.batch, [cp3]);
        assert.deepEqual(await a.head('alpha'), first.last);
        const second = chain('alpha', first.last, [plain(4), plain(5)]);
        const cp5 = signCheckpoint(KEY, 'alpha', 5, second.last.hash, T0 + 20);
        await a.append(second.batch, [cp5]);
        const beta = chain('beta', null, [plain(1)]);
        await a.append(beta.batch, []);

        assert.deepEqual(await a.head('alpha'), { seq: 5, hash: second.last.hash });
        assert.deepEqual(await a.range('alpha', 0, 100), [...first.stored, ...second.stored]);
        assert.deepEqual(ids(await a.range('alpha', 2, 2)), ['alpha#3', 'alpha#4']);
        assert.deepEqual(await a.range('alpha', 5, 100), []);
        assert.deepEqual(await a.checkpoints('alpha'), [cp3, cp5]);
        assert.deepEqual(await a.checkpoints('beta'), []);
        assert.deepEqual(await a.nodes(), ['alpha', 'beta']);
      });

      it('lists a writer that has only a checkpoint', async () => {
        const a = store().audit;
        const cp: Checkpoint = signCheckpoint(KEY, 'gamma', 7, 'ab'.repeat(32), T0);
        await a.append(EMPTY, [cp]);
        assert.deepEqual(await a.nodes(), ['alpha', 'beta', 'gamma']);
        assert.deepEqual(await a.checkpoints('gamma'), [cp]);
      });

      it('takes text columns and bodies as UTF-8 bytes and shared columns by column set, across batches, a failed append and a full set table', async () => {
        const a = store().audit;
        const people = [alice, bob, { ...alice, name: 'zoë' }];
        const draft = (n: number): Draft => ({ type: n % 7 === 0 ? 'statement.intent' : 'statement', ts: T0 + n, session: `s${n % 3}`, identity: people[n % 3], connection: n % 2 ? prod : dev, statement: stmt(n % 2 ? 'UPDATE' : 'SELECT', n % 5 ? ['t'] : []), decision: { action: 'allow', matches: [] } });
        // As the writer thread hands them over: text columns and bodies as bytes, and a set id
        // per distinct shared columns (or none).
        const setKey = (r: readonly unknown[], base: number): string => JSON.stringify([r[base], ...r.slice(base + 3, base + 12)]);
        const ids = new Map<string, number>();
        const asWriter = (batch: EventBatch, offset = 0, setFor?: (key: string, i: number) => number): EventBatch => {
          const width = EVENT_COLUMNS.length + 1;
          const rows = batch.rows.map((v) => (typeof v === 'string' ? Buffer.from(v) : v));
          const bodies = batch.rows.filter((_, i) => i % width === width - 1).map((b) => Buffer.from(b as string));
          const sets = Array.from({ length: batch.count }, (_, i) => {
            const key = setKey(batch.rows, i * width);
            if (setFor !== undefined) return setFor(key, i);
            if ((i + offset) % 11 === 5) return -1;
            let id = ids.get(key);
            if (id === undefined) ids.set(key, (id = ids.size));
            return id;
          });
          for (let i = 0; i < batch.count; i++) rows[i * width + width - 1] = null;
          return { ...batch, rows, bodies, sets };
        };
        const first = chain('sets', null, Array.from({ length: 150 }, (_, i) => draft(i)));
        await a.append(asWriter(first.batch), []);
        // New sets in a batch that fails (a repeated seq): retried, the sets are there.
        const second = chain('sets', first.last, Array.from({ length: 30 }, (_, i) => draft(1000 + i)));
        const failing = chain('sets', { seq: 1, hash: first.stored[0]!.hash }, [draft(0)]);
        const mixed = asWriter({ rows: [...second.batch.rows, ...failing.batch.rows], count: 31, hashes: [...second.batch.hashes, ...failing.batch.hashes] }, 150, (key) => {
          let id = ids.get(key);
          if (id === undefined) ids.set(key, (id = 500 + ids.size));
          return id;
        });
        await assert.rejects(a.append(mixed, []));
        await a.append(asWriter(second.batch, 150), []);
        // More distinct sets than the store keeps at once, then earlier ones again.
        const many = chain('sets', second.last, Array.from({ length: 10_050 }, (_, i) => draft(2000 + i)));
        await a.append(asWriter(many.batch, 0, (_, i) => 100_000 + i), []);
        const again = chain('sets', many.last, Array.from({ length: 40 }, (_, i) => draft(2000 + i)));
        await a.append(asWriter(again.batch, 0, (_, i) => 100_000 + i), []);
        const stored = await a.range('sets', 0, 20_000);
        assert.equal(stored.length, 150 + 30 + 10_050 + 40);
        assert.deepEqual(stored.slice(0, 180), [...first.stored, ...second.stored]);
        assert.deepEqual(stored.slice(-40), again.stored);
        assert.deepEqual(stored[5000], many.stored[5000 - 180]);
      });
    });

    describe('audit events stored against templates', () => {
      const { store, location } = useStore(impl);

      it('stores repeated statement events against a template of their batch and reads every body back whole; retention deletes a template with its last event', async () => {
        const a = store().audit;
        const fragments = compactFragments();
        // Session 1 repeats statement 3 (with various durations and row counts), session 2
        // alternates two statements; one event of statement 4 in session 1 has no repeat.
        const first: CompactDraft[] = [];
        for (let i = 0; i < 12; i++) {
          first.push({ session: 1, statement: 3, duration: [0.123, 1.5, 12, 0, 1234.567][i % 5]!, rows: i % 4 === 3 ? 0 : i });
          first.push({ session: 2, statement: i % 2 ? 3 : 4, duration: 0.001 * i, rows: 1 });
        }
        first.push({ session: 1, statement: 4, duration: 2, rows: 7 });
        const one = compactChain('tpl', null, fragments, first);
        const templated = one.batch.templated!;
        assert.ok(templated !== undefined, 'the batch has templates');
        assert.equal(templated.list.length, 3, 'one per (session, statement) repeated in the batch');
        assert.equal(templated.of.filter((k) => k < 0).length, 1, 'the one event without a repeat keeps its whole body');
        const two = compactChain('tpl', one.last, fragments, first.slice(0, 6));
        await a.append(one.batch, []);
        await a.append(two.batch, []);

        const stored = await a.range('tpl', 0, 1000);
        const bodies = [...one.bodies, ...two.bodies];
        assert.deepEqual(
          stored.map((e) => e.body),
          bodies,
        );
        let prev = GENESIS;
        for (const e of stored) {
          prev = chainHash(prev, e.body);
          assert.equal(e.hash, prev, `event ${e.seq} hashes to its stored hash`);
          assert.equal(e.identity, JSON.parse(e.body).identity.name);
        }
        assert.deepEqual(
          (await a.search({ identity: 'zoë' }, 100, 'asc')).map((e) => e.body),
          bodies.filter((b) => JSON.parse(b).identity.name === 'zoë'),
        );

        // Through seq 10: the templates of the first batch still serve the events after it.
        await a.deleteThrough('tpl', 10);
        assert.deepEqual(
          (await a.range('tpl', 0, 1000)).map((e) => e.body),
          bodies.slice(10),
        );
        assert.equal(await location().count('audit_templates', 'tpl_node', 'tpl'), 3 + two.batch.templated!.list.length);
        // Through the first batch: its templates go with its last events.
        await a.deleteThrough('tpl', one.last.seq);
        assert.equal(await location().count('audit_templates', 'tpl_node', 'tpl'), two.batch.templated!.list.length);
        assert.deepEqual(
          (await a.range('tpl', 0, 1000)).map((e) => e.body),
          two.bodies,
        );
      });
    });

    describe('audit search', () => {
      const { store } = useStore(impl);
      let all: StoredEvent[] = [];

      before(async () => {
        const alpha = chain('alpha', null, [
          { type: 'session.start', ts: T0 + 1000, session: 's1', identity: alice, connection: dev },
          { type: 'statement', ts: T0 + 2000, session: 's1', identity: alice, connection: dev, statement: stmt('SELECT', ['orders']), decision: { action: 'allow', matches: [] } },
          { type: 'statement', ts: T0 + 3000, session: 's1', identity: alice, connection: dev, statement: stmt('INSERT', ['archive', 'users']), decision: { action: 'deny', rule: 'r1', matches: [{ id: 'r1', action: 'deny', mode: 'enforce' }] } },
          { type: 'statement', ts: T0 + 4000, session: 's2', identity: bob, connection: prod, statement: stmt('UPDATE', ['users']), decision: { action: 'allow', matches: [] } },
          { type: 'session.end', ts: T0 + 5000, session: 's2', identity: bob, connection: prod },
        ]);
        const beta = chain('beta', null, [
          // Same ts as alpha#3: ordering falls back to node, then seq.
          { type: 'statement', ts: T0 + 3000, session: 's3', identity: alice, connection: { name: 'prod-ro', environment: 'production' }, statement: stmt('SELECT', ['preorders', 'orders2']), decision: { action: 'allow', matches: [] } },
          { type: 'auth.failure', ts: T0 + 6000, detail: { reason: 'bad password' } },
        ]);
        await store().audit.append(alpha.batch, []);
        await store().audit.append(beta.batch, []);
        all = [...alpha.stored, ...beta.stored];
      });

      const cases: ReadonlyArray<readonly [string, AuditFilter, string[]]> = [
        ['identity', { identity: 'alice' }, ['alpha#1', 'alpha#2', 'alpha#3', 'beta#1']],
        ['onBehalfOf', { onBehalfOf: 'carol' }, ['alpha#4', 'alpha#5']],
        ['connection', { connection: 'prod' }, ['alpha#4', 'alpha#5']],
        ['environment', { environment: 'production' }, ['beta#1', 'alpha#4', 'alpha#5']],
        ['kind, given in lower case', { kind: 'select' }, ['alpha#2', 'beta#1']],
        ['table: a member of the list, not a substring of another name', { table: 'orders' }, ['alpha#2']],
        ['table: the last member of the list', { table: 'users' }, ['alpha#3', 'alpha#4']],
        ['decision', { decision: 'deny' }, ['alpha#3']],
        ['type', { type: 'session.start' }, ['alpha#1']],
        ['session', { session: 's2' }, ['alpha#4', 'alpha#5']],
        ['node', { node: 'beta' }, ['beta#1', 'beta#2']],
        ['since (inclusive) and until (exclusive)', { since: T0 + 3000, until: T0 + 5000 }, ['alpha#3', 'beta#1', 'alpha#4']],
        ['several fields at once', { identity: 'alice', kind: 'SELECT' }, ['alpha#2', 'beta#1']],
        ['nothing matches', { identity: 'nobody' }, []],
      ];
      for (const [name, filter, expected] of cases) {
        it(`filters by ${name}`, async () => {
          assert.deepEqual(ids(await store().audit.search(filter, 100, 'asc')), expected);
          assert.deepEqual(ids(await store().audit.search(filter, 100, 'desc')), [...expected].reverse());
        });
      }

      it('orders by ts, node, seq in either direction, returns whole events, and honours the limit', async () => {
        const asc = ['alpha#1', 'alpha#2', 'alpha#3', 'beta#1', 'alpha#4', 'alpha#5', 'beta#2'];
        assert.deepEqual(ids(await store().audit.search({}, 100, 'asc')), asc);
        assert.deepEqual(ids(await store().audit.search({}, 100, 'desc')), [...asc].reverse());
        assert.deepEqual(ids(await store().audit.search({}, 2, 'asc')), ['alpha#1', 'alpha#2']);
        assert.deepEqual(ids(await store().audit.search({}, 2, 'desc')), ['beta#2', 'alpha#5']);
        const byId = new Map(all.map((e) => [`${e.node}#${e.seq}`, e]));
        assert.deepEqual(await store().audit.search({ decision: 'deny' }, 10, 'asc'), [byId.get('alpha#3')]);
      });

      it('finds a table whose name has an underscore', async () => {
        const s = chain('delta', null, [{ type: 'statement', ts: T0 + 9000, statement: stmt('SELECT', ['order_items']) }]);
        await store().audit.append(s.batch, []);
        assert.deepEqual(ids(await store().audit.search({ table: 'order_items' }, 10, 'asc')), ['delta#1']);
      });
    });

    describe('sink cursors', () => {
      const { store } = useStore(impl);

      it('starts empty, saves per node, and overwrites on save', async () => {
        const a = store().audit;
        assert.deepEqual(await a.sinkCursor('siem'), new Map());
        await a.saveSinkCursor('siem', 'alpha', 5);
        await a.saveSinkCursor('siem', 'beta', 2);
        await a.saveSinkCursor('siem', 'alpha', 9);
        await a.saveSinkCursor('other', 'alpha', 1);
        assert.deepEqual(await a.sinkCursor('siem'), new Map([['alpha', 9], ['beta', 2]]));
        assert.deepEqual(await a.sinkCursor('other'), new Map([['alpha', 1]]));
      });
    });

    describe('retention (deleteThrough)', () => {
      const { store } = useStore(impl);

      it('deletes events through seq and checkpoints before it, keeping the checkpoint at seq', async () => {
        const a = store().audit;
        const r = chain('ret', null, [1, 2, 3, 4, 5, 6].map((n) => plain(n)));
        const cps = [2, 4, 6].map((seq) => signCheckpoint(KEY, 'ret', seq, r.stored[seq - 1]!.hash, T0 + seq));
        await a.append(r.batch, cps);
        const keep = chain('keep', null, [plain(1), plain(2)]);
        await a.append(keep.batch, [signCheckpoint(KEY, 'keep', 1, keep.stored[0]!.hash, T0)]);

        assert.equal(await a.deleteThrough('ret', 4), 4);
        assert.deepEqual(await a.range('ret', 0, 100), r.stored.slice(4));
        assert.deepEqual(await a.checkpoints('ret'), cps.slice(1));
        assert.deepEqual(await a.head('ret'), r.last);
        // Other writers are untouched.
        assert.equal((await a.range('keep', 0, 100)).length, 2);
        assert.equal((await a.checkpoints('keep')).length, 1);

        assert.equal(await a.deleteThrough('ret', 6), 2);
        assert.deepEqual(await a.range('ret', 0, 100), []);
        assert.equal(await a.head('ret'), null);
        assert.deepEqual(await a.checkpoints('ret'), [cps[2]]);
        assert.deepEqual(await a.nodes(), ['keep', 'ret']);
        assert.equal(await a.deleteThrough('ret', 6), 0);
      });
    });

    describe('appendAtHead', () => {
      const { store, location } = useStore(impl);

      it('serializes concurrent appends at the head: 10 at once, from two store instances, give seqs 1..10 in one chain', async () => {
        // A second instance on the same location stands for another node (or CLI process).
        const other = await location().open();
        try {
          const stores = [store(), other];
          const seen: Array<number | null> = [];
          await Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              stores[i % 2]!.audit.appendAtHead('cli', (head) => {
                seen.push(head?.seq ?? null);
                const c = chain('cli', head, [plain(i)]);
                return { batch: c.batch, checkpoints: [signCheckpoint(KEY, 'cli', c.last.seq, c.last.hash, T0)] };
              }),
            ),
          );
          assert.deepEqual([...seen].sort((x, y) => (x ?? 0) - (y ?? 0)), [null, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
          const events = await store().audit.range('cli', 0, 100);
          assert.deepEqual(
            events.map((e) => e.seq),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
          );
          let prev = GENESIS;
          for (const e of events) {
            prev = chainHash(prev, e.body);
            assert.equal(e.hash, prev, `hash of seq ${e.seq} continues the chain`);
          }
          assert.deepEqual(
            (await store().audit.checkpoints('cli')).map((c) => c.seq),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
          );
        } finally {
          await other.close();
        }
      });

      it('writes nothing when make throws, and the next append still gets the head', async () => {
        const a = store().audit;
        await assert.rejects(
          a.appendAtHead('cli', () => {
            throw new Error('no');
          }),
          /no/,
        );
        await a.appendAtHead('cli', (head) => {
          assert.equal(head?.seq, 10);
          return { batch: chain('cli', head, [plain(11)]).batch, checkpoints: [] };
        });
        assert.equal((await a.head('cli'))?.seq, 11);
      });
    });

    describe('atomicity', () => {
      const { store } = useStore(impl);

      it('a batch that repeats a (node, seq) fails and writes none of its events or checkpoints', async () => {
        const a = store().audit;
        const first = chain('dup', null, [plain(1), plain(2)]);
        const cp2 = signCheckpoint(KEY, 'dup', 2, first.last.hash, T0);
        await a.append(first.batch, [cp2]);

        await assert.rejects(a.append(first.batch, []));
        // seq 3 is new, its second row repeats seq 2: neither row, nor the checkpoint, is kept.
        const next = chain('dup', first.last, [plain(3)]);
        const conflicting = chain('dup', { seq: 1, hash: first.stored[0]!.hash }, [plain(2)]);
        const batch: EventBatch = { rows: [...next.batch.rows, ...conflicting.batch.rows], count: 2, hashes: [...next.batch.hashes, ...conflicting.batch.hashes] };
        await assert.rejects(a.append(batch, [signCheckpoint(KEY, 'dup', 3, next.last.hash, T0)]));
        assert.deepEqual(await a.head('dup'), first.last);
        assert.deepEqual(await a.range('dup', 0, 100), first.stored);
        assert.deepEqual(await a.checkpoints('dup'), [cp2]);
      });

      it('a repeated checkpoint fails the whole append, events included', async () => {
        const a = store().audit;
        const head = await a.head('dup');
        const next = chain('dup', head, [plain(3), plain(4)]);
        const [existing] = await a.checkpoints('dup');
        await assert.rejects(a.append(next.batch, [existing!]));
        assert.deepEqual(await a.head('dup'), head);
        // The store is still usable after the failures.
        await a.append(next.batch, []);
        assert.deepEqual(await a.head('dup'), next.last);
      });
    });
  });
}

describe('PostgreSQL store: bigint columns', () => {
  it('returns them as numbers through its own pool, leaving pg\'s global type parsers alone', async () => {
    const db = await createTestDatabase('gh_store');
    try {
      const store = await PostgresStore.open(`postgres://postgres@${PG_HOST}:${PG_PORT}/${db.name}`);
      try {
        await store.audit.saveSinkCursor('s', 'n', 2 ** 40);
        assert.deepEqual(await store.audit.sinkCursor('s'), new Map([['n', 2 ** 40]]));
      } finally {
        await store.close();
      }
      // Any other pg user in the process still gets int8 as a string (pg's default).
      assert.equal((await direct<{ n: unknown }>(db.name, 'SELECT 5::bigint AS n')).rows[0]!.n, '5');
    } finally {
      await db.drop();
    }
  });
});

describe('PostgreSQL store: unavailable', () => {
  const PASSWORD = 'hunter2%2Fsecret';
  const DECODED = 'hunter2/secret';

  function assertOpenError(err: unknown): true {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    assert.match(err.message, /^state\.postgres_url: cannot open the state store /);
    assert.ok(!err.message.includes(PASSWORD) && !err.message.includes(DECODED), `no password in: ${err.message}`);
    assert.equal(err.cause, undefined);
    return true;
  }

  it('rejects within its timeout when the server accepts the connection but never answers', async () => {
    const held: Socket[] = [];
    const server = createServer((s) => void held.push(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const t0 = Date.now();
      await assert.rejects(PostgresStore.open(`postgres://gatehouse:${PASSWORD}@127.0.0.1:${port}/state`, { statementTimeoutMs: 1000 }), assertOpenError);
      const took = Date.now() - t0;
      // 1 s statement timeout + the 2 s client-side margin, with room for a loaded machine.
      assert.ok(took < 8000, `took ${took} ms`);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('rejects at once when the port is closed', async () => {
    const port = await freePort();
    const t0 = Date.now();
    await assert.rejects(PostgresStore.open(`postgres://gatehouse:${PASSWORD}@127.0.0.1:${port}/state`, { statementTimeoutMs: 1000 }), assertOpenError);
    assert.ok(Date.now() - t0 < 8000);
  });

  it('rejects when the server refuses the database, without the password (given in the URL or as a parameter)', async () => {
    await assert.rejects(PostgresStore.open(`postgres://postgres:${PASSWORD}@${PG_HOST}:${PG_PORT}/gh_no_such_database`), (err: unknown) => {
      assertOpenError(err);
      assert.match((err as Error).message, /gh_no_such_database/);
      return true;
    });
    await assert.rejects(PostgresStore.open(`postgres://postgres@${PG_HOST}:${PG_PORT}/gh_no_such_database?password=${PASSWORD}`), assertOpenError);
  });
});
