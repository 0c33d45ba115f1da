/**
 * The shared state store: one PostgreSQL database (`state.postgres_url`) used by several
 * Gatehouse nodes at once. Same tables, columns and semantics as the embedded SQLite store
 * (sqlite-store.ts, tokens.ts, sqlite-audit.ts, sqlite-approvals.ts); the contract suites
 * (store-contract.test.ts, approvals-contract.test.ts) run against both. Every statement has a
 * server-side `statement_timeout` and every connection attempt a timeout, so an unavailable
 * store fails in bounded time instead of hanging (the audit writer then fails closed).
 */
import pg from 'pg';
import type { ApprovalQuery, ApprovalRequest, ApprovalStatus, ApprovalStore } from '../approvals/request.js';
import type { Checkpoint } from '../audit/chain.js';
import { COLUMN_COUNT } from '../audit/event.js';
import { ConfigError } from '../errors.js';
import { EVENT_COLUMNS, filterSql, SELECT_EVENT, storedEvent, type AuditFilter, type AuditStore, type EventBatch, type EventRow, type StoredEvent } from './audit.js';
import { APPROVAL_COLUMNS, applyChange, approvalValues, duplicateId, listLimit } from './sqlite-approvals.js';
import type { Store } from './sqlite-store.js';
import { checkTokenRow, newTokenRow, splitToken, TOKEN_INSERT_COLUMNS, tokenRecord, type NewToken, type TokenCheck, type TokenRecord, type TokenRow, type TokenStore } from './tokens.js';

/**
 * Schema migrations, applied in order; never edit one that has shipped. Version n here is
 * version n of MIGRATIONS in sqlite-store.ts (1: tokens, 2: audit tables, 3: approvals, 4: audit
 * templates): both lists must stay in step, with the same table and column names, so either
 * store can be swapped for the other.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tokens (
     id text PRIMARY KEY,
     secret_hash text NOT NULL,
     kind text NOT NULL,
     name text NOT NULL,
     on_behalf_of text,
     model text,
     groups text NOT NULL,
     connections text,
     created_at bigint NOT NULL,
     expires_at bigint NOT NULL,
     revoked_at bigint,
     last_used_at bigint
   )`,
  `CREATE TABLE audit_events (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     node text NOT NULL,
     seq bigint NOT NULL,
     ts bigint NOT NULL,
     type text NOT NULL,
     session text,
     identity text,
     on_behalf_of text,
     connection text,
     environment text,
     kind text,
     tables text,
     decision text,
     body text NOT NULL,
     hash text NOT NULL,
     UNIQUE (node, seq)
   );
   CREATE INDEX audit_events_ts ON audit_events (ts);
   CREATE TABLE audit_checkpoints (
     node text NOT NULL,
     seq bigint NOT NULL,
     hash text NOT NULL,
     ts bigint NOT NULL,
     key_id text NOT NULL,
     signature text NOT NULL,
     PRIMARY KEY (node, seq)
   );
   CREATE TABLE audit_sink_cursors (
     sink text NOT NULL,
     node text NOT NULL,
     seq bigint NOT NULL,
     PRIMARY KEY (sink, node)
   )`,
  `CREATE TABLE approvals (
     id text PRIMARY KEY,
     status text NOT NULL,
     statement_key text NOT NULL,
     created_at bigint NOT NULL,
     expires_at bigint NOT NULL,
     body text NOT NULL
   );
   CREATE INDEX approvals_status_expires ON approvals (status, expires_at);
   CREATE INDEX approvals_key_created ON approvals (statement_key, created_at);
   CREATE INDEX approvals_created ON approvals (created_at)`,
  `ALTER TABLE audit_events ADD COLUMN tpl bigint;
   ALTER TABLE audit_events ADD COLUMN tpl_rows bigint;
   CREATE TABLE audit_templates (
     tpl_node text NOT NULL,
     tpl_first bigint NOT NULL,
     tpl_last bigint NOT NULL,
     head text NOT NULL,
     middle text NOT NULL,
     tail text NOT NULL,
     PRIMARY KEY (tpl_node, tpl_first)
   )`,
];

/** Default for `statementTimeoutMs` when the caller gives none (the CLI, the HTTP API). */
const DEFAULT_TIMEOUT_MS = 5000;
/** pg's own default pool size. */
const DEFAULT_POOL_SIZE = 10;
/**
 * The client-side query timeout is this much longer than `statement_timeout`: the server's
 * timeout normally fires first (with a proper error); this one only catches a lost network.
 */
const QUERY_TIMEOUT_MARGIN_MS = 2000;

/**
 * Advisory lock keys (two int4 form): a class id for Gatehouse's locks, then the object. The
 * class id keeps them apart from advisory locks other applications take in the same database.
 */
const LOCK_CLASS = "hashtext('gatehouse')";
const MIGRATION_LOCK = `SELECT pg_advisory_xact_lock(${LOCK_CLASS}, 0)`;
const HEAD_LOCK = `SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext($1))`;

/**
 * int8 (OID 20) as a JS number, on this pool only (the global pg types stay untouched). Every
 * bigint column here holds epoch milliseconds or a sequence number, far below 2^53.
 */
const parseInt8 = (v: string): number => Number(v);
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) => (oid === pg.types.builtins.INT8 && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)),
};

/** Options of `PostgresStore.open`. */
export interface PostgresStoreOptions {
  /** Bounds every statement (`statement_timeout`, lock waits included) and every connection attempt. */
  readonly statementTimeoutMs?: number;
  /** Most connections this process opens to the store. */
  readonly poolSize?: number;
}

/** The PostgreSQL state store: tokens, audit and approvals in one shared database. */
export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  #closed = false;
  readonly tokens: TokenStore;
  readonly audit: AuditStore;
  readonly approvals: ApprovalStore;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.tokens = new PostgresTokenStore(pool);
    this.audit = new PostgresAuditStore(pool);
    this.approvals = new PostgresApprovalStore(pool);
  }

  /**
   * Connect and apply pending migrations. Any failure (unreachable, refused, timeout, bad URL)
   * is a ConfigError naming `state.postgres_url`, without the URL's password.
   */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const timeout = positiveInt(opts.statementTimeoutMs, DEFAULT_TIMEOUT_MS);
    let pool: pg.Pool;
    try {
      pool = new pg.Pool({
        connectionString: url,
        max: positiveInt(opts.poolSize, DEFAULT_POOL_SIZE),
        statement_timeout: timeout,
        query_timeout: timeout + QUERY_TIMEOUT_MARGIN_MS,
        connectionTimeoutMillis: timeout,
        keepAlive: true,
        application_name: 'gatehouse',
        types: TYPES,
      });
    } catch (err) {
      throw openError(url, err);
    }
    // An idle connection that breaks (server restart, network) is emitted here; without a
    // listener it would crash the process. The pool drops it and the next query reconnects.
    pool.on('error', () => {});
    try {
      await transaction(pool, migrate);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw openError(url, err);
    }
    return new PostgresStore(pool);
  }

  /** Close every connection; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

function positiveInt(v: number | undefined, fallback: number): number {
  return v !== undefined && Number.isFinite(v) && v >= 1 ? Math.floor(v) : fallback;
}

/** Apply pending migrations; runs in a transaction holding the migration lock. */
async function migrate(c: pg.PoolClient): Promise<void> {
  // Under one advisory lock, so several nodes starting together apply each migration once: the
  // others wait here, then see the versions recorded.
  await c.query(MIGRATION_LOCK);
  // Checked first rather than CREATE TABLE IF NOT EXISTS, which needs CREATE on the schema even
  // when the table exists: a role with only table privileges can open a migrated database.
  const exists = (await c.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t")).rows[0]!.t !== null;
  if (!exists) await c.query('CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)');
  const done = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
  for (let i = 0; i < MIGRATIONS.length; i++) {
    if (done.has(i + 1)) continue;
    await c.query(MIGRATIONS[i]!);
    await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [i + 1, Date.now()]);
  }
}

/**
 * The open error. The driver's error is not kept as `cause`: some (a URL TypeError's `input`)
 * carry the whole URL, password included, and would leak it into logs.
 */
function openError(url: string, err: unknown): ConfigError {
  const { where, secrets } = describeUrl(url);
  let reason = reasonOf(err);
  for (const s of secrets) reason = reason.split(s).join('***');
  return new ConfigError(`state.postgres_url: cannot open the state store at ${where}: ${reason}`);
}

/** A driver error as text; a refused connection to a name with several addresses is an AggregateError with an empty message. */
function reasonOf(err: unknown): string {
  if (err instanceof AggregateError && err.message === '') return [...new Set(err.errors.map(reasonOf))].join('; ');
  if (!(err instanceof Error)) return String(err);
  return err.message || ((err as NodeJS.ErrnoException).code ?? err.name);
}

/** The URL without its password, and the password's spellings to scrub from messages. */
function describeUrl(url: string): { where: string; secrets: string[] } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { where: '(an unparsable URL)', secrets: [] };
  }
  const secrets: string[] = [];
  // pg also takes the password as a query parameter (?password=...).
  for (const raw of [u.password, u.searchParams.get('password') ?? '']) {
    if (raw === '') continue;
    secrets.push(raw);
    try {
      secrets.push(decodeURIComponent(raw));
    } catch {
      // Not valid percent-encoding: the raw spelling is the only one.
    }
  }
  const user = u.username === '' ? '' : `${u.username}@`;
  return { where: `"${u.protocol}//${user}${u.host}${u.pathname}"`, secrets: secrets.filter((s) => s !== '') };
}

/**
 * Run `fn` in a transaction on one pooled connection. A connection whose ROLLBACK fails is
 * broken (or still busy after a client-side timeout), so it is dropped instead of reused.
 */
async function transaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    client.release();
    return out;
  } catch (err) {
    const broken = await client.query('ROLLBACK').then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    client.release(broken);
    throw err;
  }
}

/** Tokens in the shared database; same semantics as SqliteTokenStore. */
export class PostgresTokenStore implements TokenStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async create(t: NewToken, now = Date.now()): Promise<{ record: TokenRecord; token: string }> {
    const { token, values } = newTokenRow(t, now);
    const { rows } = await this.#pool.query<TokenRow>(`INSERT INTO tokens (${TOKEN_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`, values);
    return { record: tokenRecord(rows[0]!), token };
  }

  async list(): Promise<TokenRecord[]> {
    // id breaks ties so the order is stable when several tokens share a millisecond.
    return (await this.#pool.query<TokenRow>('SELECT * FROM tokens ORDER BY created_at, id')).rows.map(tokenRecord);
  }

  async revoke(id: string, now = Date.now()): Promise<boolean> {
    // One round trip: the EXISTS sees the row as it was before the UPDATE, which is all it asks.
    const { rows } = await this.#pool.query<{ found: boolean }>(
      `WITH u AS (UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM tokens WHERE id = $2) AS found`,
      [now, id],
    );
    return rows[0]!.found;
  }

  async verify(token: string, now = Date.now()): Promise<TokenCheck> {
    const parts = splitToken(token);
    if (parts === null) return { ok: false, reason: 'not a Gatehouse token' };
    const checked = checkTokenRow((await this.#pool.query<TokenRow>('SELECT * FROM tokens WHERE id = $1', [parts.id])).rows[0], parts.secret, now);
    if (!checked.ok) return checked;
    const row = checked.row;
    await this.#pool.query('UPDATE tokens SET last_used_at = $1 WHERE id = $2', [now, row.id]);
    return { ok: true, token: tokenRecord({ ...row, last_used_at: now }) };
  }
}

const SELECT_HEAD = 'SELECT seq, hash FROM audit_events WHERE node = $1 ORDER BY seq DESC LIMIT 1';

/** Columns of one event, in the order the append statement's parameters take them. */
const WIDTH = COLUMN_COUNT + 1;
const BIGINT_COLUMNS: ReadonlySet<string> = new Set(['seq', 'ts']);
/** The columns, body, hash, then template key and rows number (null for a whole body). */
const EVENT_PARAM_TYPES = [...EVENT_COLUMNS.map((c) => (BIGINT_COLUMNS.has(c) ? 'bigint' : 'text')), 'text', 'text', 'bigint', 'bigint'];
const TEMPLATE_PARAM_TYPES = ['text', 'bigint', 'bigint', 'text', 'text', 'text'];
const CHECKPOINT_PARAM_TYPES = ['text', 'bigint', 'text', 'bigint', 'text', 'text'];
const unnest = (types: readonly string[], from: number): string => `unnest(${types.map((t, i) => `$${from + i}::${t}[]`).join(', ')})`;

/**
 * A whole batch in one statement (one round trip, one transaction even outside BEGIN): one
 * parameter per column, each an array over the batch, expanded by unnest. The checkpoints go in
 * through a data-modifying CTE, which PostgreSQL runs to completion whether or not it is read.
 */
const APPEND_SQL = `WITH events AS (
    INSERT INTO audit_events (${EVENT_COLUMNS.join(', ')}, body, hash, tpl, tpl_rows)
    SELECT * FROM ${unnest(EVENT_PARAM_TYPES, 1)}
  ), templates AS (
    INSERT INTO audit_templates (tpl_node, tpl_first, tpl_last, head, middle, tail)
    SELECT * FROM ${unnest(TEMPLATE_PARAM_TYPES, EVENT_PARAM_TYPES.length + 1)}
  )
  INSERT INTO audit_checkpoints (node, seq, hash, ts, key_id, signature)
  SELECT * FROM ${unnest(CHECKPOINT_PARAM_TYPES, EVENT_PARAM_TYPES.length + TEMPLATE_PARAM_TYPES.length + 1)}`;

/** Parameters of APPEND_SQL: the flat batch turned into one array per column. */
function appendParams(batch: EventBatch, checkpoints: readonly Checkpoint[]): unknown[][] {
  const { rows, hashes, bodies, count, templated } = batch;
  const cols: unknown[][] = [];
  for (let c = 0; c < EVENT_PARAM_TYPES.length; c++) cols.push(new Array<unknown>(count));
  const bodyCol = cols[WIDTH - 1]!;
  const hashCol = cols[WIDTH]!;
  const tplCol = cols[WIDTH + 1]!;
  const tplRowsCol = cols[WIDTH + 2]!;
  for (let i = 0; i < count; i++) {
    const base = i * WIDTH;
    // Text columns may come as UTF-8 bytes from the writer thread (src/audit/compact.ts).
    for (let c = 0; c < WIDTH; c++) {
      const v = rows[base + c];
      cols[c]![i] = Buffer.isBuffer(v) ? v.toString('utf8') : v;
    }
    if (bodies !== undefined) bodyCol[i] = bodies[i]!.toString('utf8');
    hashCol[i] = hashes[i];
    const tpl = templated === undefined ? -1 : templated.of[i]!;
    tplCol[i] = tpl < 0 ? null : tpl;
    tplRowsCol[i] = tpl < 0 ? null : templated!.counts[i];
  }
  const list = templated?.list ?? [];
  const tp: unknown[][] = [list.map(() => templated!.node), list.map((t) => t.first), list.map((t) => t.last), list.map((t) => t.head.toString('utf8')), list.map((t) => t.middle.toString('utf8')), list.map((t) => t.tail.toString('utf8'))];
  const n = checkpoints.length;
  const cp: unknown[][] = [new Array<unknown>(n), new Array<unknown>(n), new Array<unknown>(n), new Array<unknown>(n), new Array<unknown>(n), new Array<unknown>(n)];
  for (let i = 0; i < n; i++) {
    const k = checkpoints[i]!;
    cp[0]![i] = k.node;
    cp[1]![i] = k.seq;
    cp[2]![i] = k.hash;
    cp[3]![i] = k.ts;
    cp[4]![i] = k.key_id;
    cp[5]![i] = k.signature;
  }
  return [...cols, ...tp, ...cp];
}

/** The append statement, prepared once per connection (pg caches named statements). */
const appendQuery = (batch: EventBatch, checkpoints: readonly Checkpoint[]): pg.QueryConfig<unknown[]> => ({ name: 'gatehouse_audit_append', text: APPEND_SQL, values: appendParams(batch, checkpoints) });

/** The audit trail in the shared database; same semantics as SqliteAuditStore. */
export class PostgresAuditStore implements AuditStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async head(node: string): Promise<{ seq: number; hash: string } | null> {
    return (await this.#pool.query<{ seq: number; hash: string }>(SELECT_HEAD, [node])).rows[0] ?? null;
  }

  async append(batch: EventBatch, checkpoints: readonly Checkpoint[]): Promise<void> {
    if (batch.count === 0 && checkpoints.length === 0) return;
    await this.#pool.query(appendQuery(batch, checkpoints));
  }

  async appendAtHead(node: string, make: (head: { seq: number; hash: string } | null) => { batch: EventBatch; checkpoints: readonly Checkpoint[] }): Promise<void> {
    await transaction(this.#pool, async (c) => {
      // Held until COMMIT, so concurrent writers on this node (other CLI runs, other nodes) queue
      // here and each reads the head the previous one committed (READ COMMITTED: a fresh
      // snapshot per statement).
      await c.query(HEAD_LOCK, [node]);
      const head = (await c.query<{ seq: number; hash: string }>(SELECT_HEAD, [node])).rows[0] ?? null;
      const { batch, checkpoints } = make(head);
      if (batch.count === 0 && checkpoints.length === 0) return;
      await c.query(appendQuery(batch, checkpoints));
    });
  }

  async nodes(): Promise<string[]> {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's collation.
    const { rows } = await this.#pool.query<{ node: string }>('SELECT node FROM (SELECT node FROM audit_events UNION SELECT node FROM audit_checkpoints) n ORDER BY node COLLATE "C"');
    return rows.map((r) => r.node);
  }

  async range(node: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return (await this.#pool.query<EventRow>(`${SELECT_EVENT} WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [node, afterSeq, limit])).rows.map(storedEvent);
  }

  async checkpoints(node: string): Promise<Checkpoint[]> {
    return (await this.#pool.query<Checkpoint>('SELECT node, seq, hash, ts, key_id, signature FROM audit_checkpoints WHERE node = $1 ORDER BY seq', [node])).rows;
  }

  async search(filter: AuditFilter, limit: number, order: 'asc' | 'desc'): Promise<StoredEvent[]> {
    const { where, params } = filterSql(filter, (i) => `$${i}`);
    const dir = order === 'asc' ? 'ASC' : 'DESC';
    const sql = `${SELECT_EVENT} ${where} ORDER BY ts ${dir}, node COLLATE "C" ${dir}, seq ${dir} LIMIT $${params.length + 1}`;
    return (await this.#pool.query<EventRow>(sql, [...params, limit])).rows.map(storedEvent);
  }

  async sinkCursor(sink: string): Promise<Map<string, number>> {
    const { rows } = await this.#pool.query<{ node: string; seq: number }>('SELECT node, seq FROM audit_sink_cursors WHERE sink = $1', [sink]);
    return new Map(rows.map((r) => [r.node, r.seq]));
  }

  async saveSinkCursor(sink: string, node: string, seq: number): Promise<void> {
    await this.#pool.query('INSERT INTO audit_sink_cursors (sink, node, seq) VALUES ($1, $2, $3) ON CONFLICT (sink, node) DO UPDATE SET seq = excluded.seq', [sink, node, seq]);
  }

  async deleteThrough(node: string, seq: number): Promise<number> {
    return transaction(this.#pool, async (c) => {
      const n = (await c.query('DELETE FROM audit_events WHERE node = $1 AND seq <= $2', [node, seq])).rowCount ?? 0;
      // A template is used by events of one batch only, up to its last one.
      await c.query('DELETE FROM audit_templates WHERE tpl_node = $1 AND tpl_last <= $2', [node, seq]);
      await c.query('DELETE FROM audit_checkpoints WHERE node = $1 AND seq < $2', [node, seq]);
      return n;
    });
  }

  async close(): Promise<void> {
    // The pool belongs to the PostgresStore that made this.
  }
}

const SELECT_BODY = 'SELECT body FROM approvals';
/** COLLATE "C" on the tie-break: byte order, as SQLite sorts, whatever the database's collation. */
const NEWEST_FIRST = 'ORDER BY created_at DESC, id COLLATE "C" DESC';

/** Approval requests in the shared database; same semantics as SqliteApprovalStore. */
/** NOTIFY channel of approval updates (payload: the request id). */
const APPROVALS_CHANNEL = 'gatehouse_approvals';

export class PostgresApprovalStore implements ApprovalStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async create(r: ApprovalRequest): Promise<void> {
    const { rowCount } = await this.#pool.query(`INSERT INTO approvals (${APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`, approvalValues(r));
    if (rowCount === 0) throw duplicateId(r.id);
  }

  async get(id: string): Promise<ApprovalRequest | null> {
    const row = (await this.#pool.query<{ body: string }>(`${SELECT_BODY} WHERE id = $1`, [id])).rows[0];
    return row === undefined ? null : (JSON.parse(row.body) as ApprovalRequest);
  }

  async list(q: ApprovalQuery): Promise<ApprovalRequest[]> {
    const limit = listLimit(q);
    const { rows } =
      q.status === undefined
        ? await this.#pool.query<{ body: string }>(`${SELECT_BODY} ${NEWEST_FIRST} LIMIT $1`, [limit])
        : await this.#pool.query<{ body: string }>(`${SELECT_BODY} WHERE status = $1 ${NEWEST_FIRST} LIMIT $2`, [q.status, limit]);
    return rows.map((r) => JSON.parse(r.body) as ApprovalRequest);
  }

  async update(id: string, change: (r: ApprovalRequest) => ApprovalRequest): Promise<ApprovalRequest | null> {
    return transaction(this.#pool, async (c) => {
      // FOR UPDATE holds the row until COMMIT: an update of the same request on any node waits
      // here and then reads what this one wrote. If `change` throws, transaction() rolls back
      // and rethrows the same error.
      const row = (await c.query<{ body: string }>(`${SELECT_BODY} WHERE id = $1 FOR UPDATE`, [id])).rows[0];
      if (row === undefined) return null;
      const { values, request } = applyChange(id, row.body, change);
      await c.query('UPDATE approvals SET status = $2, statement_key = $3, created_at = $4, expires_at = $5, body = $6 WHERE id = $1', values);
      // Delivered at COMMIT to every node listening (watch), so a statement held elsewhere wakes now.
      await c.query('SELECT pg_notify($1, $2)', [APPROVALS_CHANNEL, id]);
      return request;
    });
  }

  /**
   * Wake-ups from every node: `onChange(id)` after any node updated a request. One LISTEN
   * connection of its own, reconnected with backoff when it breaks; best effort (holders still
   * poll). Returns a function that stops it.
   */
  watch(onChange: (id: string) => void): () => void {
    const options = this.#pool.options;
    let stopped = false;
    let client: pg.Client | null = null;
    let retry: NodeJS.Timeout | undefined;
    let backoff = 1000;
    const connect = (): void => {
      if (stopped) return;
      const c = new pg.Client({ connectionString: options.connectionString, connectionTimeoutMillis: options.connectionTimeoutMillis, keepAlive: true, application_name: 'gatehouse-approvals' });
      client = c;
      const again = (): void => {
        if (stopped || client !== c) return;
        client = null;
        c.end().catch(() => undefined);
        retry = setTimeout(connect, backoff);
        retry.unref();
        backoff = Math.min(backoff * 2, 30_000);
      };
      c.on('error', again);
      c.on('end', again);
      c.on('notification', (n) => {
        if (n.channel === APPROVALS_CHANNEL && n.payload) onChange(n.payload);
      });
      c.connect()
        .then(() => c.query(`LISTEN ${APPROVALS_CHANNEL}`))
        .then(() => {
          backoff = 1000;
        })
        .catch(again);
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(retry);
      const c = client;
      client = null;
      void c?.end().catch(() => undefined);
    };
  }

  async findByKey(key: string, statuses: readonly ApprovalStatus[]): Promise<ApprovalRequest | null> {
    if (statuses.length === 0) return null;
    const row = (await this.#pool.query<{ body: string }>(`${SELECT_BODY} WHERE statement_key = $1 AND status = ANY($2::text[]) ${NEWEST_FIRST} LIMIT 1`, [key, statuses])).rows[0];
    return row === undefined ? null : (JSON.parse(row.body) as ApprovalRequest);
  }

  async expiredPending(now: number): Promise<string[]> {
    const { rows } = await this.#pool.query<{ id: string }>(`SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at, id COLLATE "C"`, [now]);
    return rows.map((r) => r.id);
  }
}
