/**
 * The demo database end to end over TCP with node-postgres: first start seeds the exact row
 * counts, several connections share the single PGlite backend (an idle one never blocks, a
 * transaction holds the others until COMMIT, statement names do not collide, a client leaving
 * mid-transaction is rolled back), COPY FROM STDIN is refused without killing the backend, and
 * the data survives a stop/start while `reset` reseeds. The seed generator is checked for
 * determinism and field formats.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { messages } from '../protocol/postgres/index.js';
import { startDemoDatabase, type DemoDatabase } from './database.js';
import { luhnValid, ORDER_STATUS_COUNTS, SEED_ROW_COUNTS, seedSql, type DemoTable } from './seed.js';

const TABLES = Object.keys(SEED_ROW_COUNTS) as DemoTable[];

function client(db: DemoDatabase, database = db.database): pg.Client {
  return new pg.Client({ host: db.host, port: db.port, user: db.user, database, password: '' });
}

async function count(c: pg.Client, sql: string, values: unknown[] = []): Promise<number> {
  const res = await c.query<{ n: string }>(sql, values);
  return Number(res.rows[0]!.n);
}

/** Resolves to 'pending' if `p` has not settled within `ms`. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<'settled' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([p.then(() => 'settled' as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A bare protocol client: sends frames, waits for a backend message of a given tag. */
class RawClient {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #wake: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#wake?.();
    });
  }

  static async open(db: DemoDatabase): Promise<RawClient> {
    const socket = connect({ host: db.host, port: db.port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new RawClient(socket);
    socket.write(messages.startupMessage({ user: db.user, database: db.database }));
    await c.until(0x5a); // 'Z' ReadyForQuery
    return c;
  }

  /** Consume backend messages up to and including one with `tag`; returns the tags seen. */
  async until(tag: number): Promise<string> {
    let seen = '';
    for (;;) {
      while (this.#buf.length >= 5 && this.#buf.length >= 1 + this.#buf.readInt32BE(1)) {
        const t = this.#buf[0]!;
        this.#buf = this.#buf.subarray(1 + this.#buf.readInt32BE(1));
        seen += String.fromCharCode(t);
        if (t === tag) return seen;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}

const FLUSH = Buffer.from([0x48, 0, 0, 0, 4]); // 'H' Flush

describe('seedSql', () => {
  it('is deterministic', () => {
    assert.deepEqual(seedSql(), seedSql());
  });

  it('Luhn check', () => {
    assert.equal(luhnValid('4111111111111111'), true);
    assert.equal(luhnValid('4111111111111112'), false);
  });
});

describe('demo database', () => {
  let dir: string;
  let dataDir: string;
  let db: DemoDatabase | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-demo-'));
    dataDir = join(dir, 'pgdata');
  });

  after(async () => {
    await db?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts, seeds and serves the exact row counts', async (t) => {
    const t0 = performance.now();
    db = await startDemoDatabase({ dataDir, port: 0 });
    t.diagnostic(`first start (create + seed) ready in ${Math.round(performance.now() - t0)} ms`);
    assert.equal(db.seeded, true);
    assert.equal(db.host, '127.0.0.1');
    assert.ok(db.port > 0);

    const c = client(db);
    await c.connect();
    try {
      for (const table of TABLES) {
        assert.equal(await count(c, `SELECT count(*) AS n FROM ${table}`), SEED_ROW_COUNTS[table], table);
      }
      for (const [status, n] of Object.entries(ORDER_STATUS_COUNTS)) {
        assert.equal(await count(c, 'SELECT count(*) AS n FROM orders WHERE status = $1', [status]), n, status);
      }
      // The bulk-DELETE predicates documented in seed.ts.
      assert.equal(await count(c, "SELECT count(*) AS n FROM orders WHERE created_at < '2024-01-01'"), 5000);
      assert.equal(await count(c, 'SELECT count(*) AS n FROM orders WHERE id <= 5000'), 5000);
      const del = await c.query('BEGIN; DELETE FROM orders WHERE status = $$delivered$$; ROLLBACK');
      assert.equal((del as unknown as pg.QueryResult[])[1]!.rowCount, 5000);

      const customers = await c.query<{ email: string; phone: string; ssn: string; card_number: string }>(
        'SELECT email, phone, ssn, card_number FROM customers',
      );
      for (const r of customers.rows) {
        assert.match(r.email, /^[a-z]+\.[a-z]+\d+@example\.com$/);
        assert.match(r.phone, /^\+1-\d{3}-555-01\d{2}$/);
        assert.match(r.ssn, /^(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$/);
        assert.ok(luhnValid(r.card_number) && r.card_number.length === 16, r.card_number);
      }
      assert.equal(await count(c, `SELECT count(*) AS n FROM api_keys WHERE key ~ '^sk_live_[A-Za-z0-9]{32}$'`), 50);
      assert.equal(await count(c, `SELECT count(*) AS n FROM support_tickets WHERE notes ~ '@' AND notes ~ '555-01'`), 500);
      // Row estimates are right from the start (the seed ends with ANALYZE).
      const plan = await c.query<{ 'QUERY PLAN': string }>("EXPLAIN DELETE FROM orders WHERE status = 'delivered'");
      assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /rows=5000\b/);
    } finally {
      await c.end();
    }
  });

  it('serves several connections at once; a transaction holds the others until COMMIT', async () => {
    assert.ok(db);
    const idle = client(db);
    const a = client(db);
    const b = client(db);
    await Promise.all([idle.connect(), a.connect(), b.connect()]);
    try {
      // Interleaved work on two connections while the third stays idle and open.
      const lookups = async (c: pg.Client, from: number): Promise<void> => {
        for (let id = from; id < from + 10; id++) {
          const r = await c.query<{ id: number; email: string }>('SELECT id, email FROM customers WHERE id = $1', [id]);
          assert.equal(r.rows[0]!.id, id);
        }
      };
      await Promise.all([lookups(a, 1), lookups(b, 101)]);

      // Extended protocol with a parameter.
      const five = await a.query<{ id: number; full_name: string }>('SELECT id, full_name FROM customers WHERE id = $1', [5]);
      assert.equal(five.rows.length, 1);
      assert.equal(five.rows[0]!.id, 5);

      // Named statements of the same name on two connections do not collide.
      const [sa, sb] = await Promise.all([
        a.query<{ v: number }>({ name: 's1', text: 'SELECT $1::int + 1 AS v', values: [1] }),
        b.query<{ v: string }>({ name: 's1', text: "SELECT $1::text || '!' AS v", values: ['x'] }),
      ]);
      assert.equal(sa.rows[0]!.v, 2);
      assert.equal(sb.rows[0]!.v, 'x!');
      assert.equal((await a.query<{ v: number }>({ name: 's1', text: 'SELECT $1::int + 1 AS v', values: [41] })).rows[0]!.v, 42);

      // A transaction on `a`: `b` waits for the turn and then sees the committed value.
      const before = (await b.query<{ total_cents: number }>('SELECT total_cents FROM orders WHERE id = 1')).rows[0]!.total_cents;
      await a.query('BEGIN');
      await a.query('UPDATE orders SET total_cents = total_cents + 1 WHERE id = 1');
      const read = b.query<{ total_cents: number }>('SELECT total_cents FROM orders WHERE id = $1', [1]);
      assert.equal(await settledWithin(read, 300), 'pending', 'b runs only after a commits');
      // `a` keeps working inside its transaction while `b` waits.
      assert.equal((await a.query<{ total_cents: number }>('SELECT total_cents FROM orders WHERE id = 1')).rows[0]!.total_cents, before + 1);
      await a.query('COMMIT');
      assert.equal((await read).rows[0]!.total_cents, before + 1);

      // An error inside an extended batch, then a failed transaction: both recover.
      await assert.rejects(a.query('SELECT nope FROM customers WHERE id = $1', [1]), { code: '42703' });
      await a.query('BEGIN');
      await assert.rejects(a.query('SELECT 1/0'), { code: '22012' });
      await a.query('ROLLBACK');
      assert.equal(await count(b, 'SELECT count(*) AS n FROM customers'), 1000);

      // A client that leaves inside a transaction is rolled back, and does not block the rest.
      const leaver = client(db);
      await leaver.connect();
      await leaver.query('BEGIN');
      await leaver.query('UPDATE orders SET total_cents = 0 WHERE id = 1');
      await leaver.end();
      assert.equal((await b.query<{ total_cents: number }>('SELECT total_cents FROM orders WHERE id = 1')).rows[0]!.total_cents, before + 1);
      await b.query('UPDATE orders SET total_cents = $1 WHERE id = 1', [before]);

      // COPY FROM STDIN is refused, and the backend survives it; COPY TO works.
      await assert.rejects(b.query('COPY orders FROM STDIN'), { code: '0A000' });
      // Named, so node-postgres uses Parse/Bind/Execute: the extended-protocol path.
      await assert.rejects(b.query({ name: 'copy_in', text: 'COPY orders (id) FROM STDIN WITH (FORMAT csv)' }), { code: '0A000' });
      assert.equal(await count(b, 'SELECT count(*) AS n FROM orders'), 6000);

      // The idle connection was never in the way, and still works.
      assert.equal(await count(idle, 'SELECT count(*) AS n FROM api_keys'), 50);
    } finally {
      await Promise.all([idle.end(), a.end(), b.end()]);
    }
  });

  it('holds the backend through an unfinished extended batch, and drops a waiter that leaves', async () => {
    assert.ok(db);
    const raw = await RawClient.open(db);
    const other = client(db);
    await other.connect();
    try {
      // Parse + Flush without Sync: the batch is open, so the backend stays with `raw`.
      raw.socket.write(Buffer.concat([messages.parse('', 'SELECT 1'), FLUSH]));
      assert.equal(await raw.until(0x31), '1'); // '1' ParseComplete
      const waiting = other.query('SELECT count(*) AS n FROM customers');
      assert.equal(await settledWithin(waiting, 300), 'pending');

      // A third connection queues behind it and leaves while waiting; that must not wedge the turn.
      const leaver = await RawClient.open(db);
      leaver.socket.write(messages.query('SELECT pg_sleep(0)'));
      await new Promise((r) => setTimeout(r, 50));
      leaver.socket.destroy();

      raw.socket.write(messages.SYNC);
      assert.equal(await raw.until(0x5a), 'Z');
      assert.equal((await waiting).rows.length, 1);
      // Terminate on an idle connection; the others carry on.
      raw.socket.end(messages.TERMINATE);
      assert.equal(await count(other, 'SELECT count(*) AS n FROM api_keys'), 50);
    } finally {
      raw.socket.destroy();
      await other.end();
    }
  });

  it('refuses an unknown database and answers SSLRequest with N', async () => {
    assert.ok(db);
    await assert.rejects(client(db, 'nosuchdb').connect(), { code: '3D000' });
    const tls = new pg.Client({ host: db.host, port: db.port, user: db.user, database: db.database, ssl: true });
    await assert.rejects(tls.connect(), /does not support SSL/);
    const prefer = new pg.Client({ host: db.host, port: db.port, user: 'anyone', database: db.database });
    await prefer.connect();
    assert.equal((await prefer.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u, 'postgres');
    await prefer.end();
  });

  it('refuses a data directory in use, and a reset of a directory that is not PostgreSQL', async () => {
    assert.ok(db);
    await assert.rejects(startDemoDatabase({ dataDir, port: 0 }), { code: 'GH_CONFIG', message: /in use by process/ });
    const other = join(dir, 'not-pgdata');
    await mkdir(other);
    await writeFile(join(other, 'keep.txt'), 'precious');
    await assert.rejects(startDemoDatabase({ dataDir: other, port: 0, reset: true }), { code: 'GH_CONFIG', message: /refusing to reset/ });
    assert.equal(await readFile(join(other, 'keep.txt'), 'utf8'), 'precious');
  });

  it('keeps the data across a restart, and reseeds on reset', async (t) => {
    assert.ok(db);
    const c1 = client(db);
    await c1.connect();
    await c1.query("UPDATE customers SET full_name = 'Restart Marker' WHERE id = 7");
    await c1.end();
    await db.stop();
    db = undefined;

    let t0 = performance.now();
    db = await startDemoDatabase({ dataDir, port: 0 });
    t.diagnostic(`second start (reuse data) ready in ${Math.round(performance.now() - t0)} ms`);
    assert.equal(db.seeded, false);
    const c2 = client(db);
    await c2.connect();
    assert.equal(await count(c2, 'SELECT count(*) AS n FROM orders'), 6000);
    assert.equal((await c2.query<{ n: string }>('SELECT full_name AS n FROM customers WHERE id = 7')).rows[0]!.n, 'Restart Marker');
    await c2.end();
    await db.stop();
    db = undefined;

    t0 = performance.now();
    db = await startDemoDatabase({ dataDir, port: 0, reset: true });
    t.diagnostic(`reset start (create + seed) ready in ${Math.round(performance.now() - t0)} ms`);
    assert.equal(db.seeded, true);
    const c3 = client(db);
    await c3.connect();
    assert.equal(await count(c3, "SELECT count(*) AS n FROM customers WHERE full_name = 'Restart Marker'"), 0);
    assert.equal(await count(c3, 'SELECT count(*) AS n FROM payments'), 4000);
    await c3.end();
  });
});
