/**
 * The embedded state store: one SQLite file (WAL, full sync) under `state.dir`, shared by the
 * running proxy and the CLI: tokens, the audit trail and approval requests. Migrations apply
 * automatically, in order, once. postgres-store.ts implements the same interfaces on a shared
 * PostgreSQL database, for several nodes.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../errors.js';
import { SqliteTokenStore, type TokenStore } from './tokens.js';
import type { AuditStore } from './audit.js';
import { SqliteAuditStore } from './sqlite-audit.js';
import type { ApprovalStore } from '../approvals/request.js';
import { SqliteApprovalStore } from './sqlite-approvals.js';

/** Schema migrations, applied in order; never edit one that has shipped. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     secret_hash TEXT NOT NULL,
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     on_behalf_of TEXT,
     model TEXT,
     groups TEXT NOT NULL,
     connections TEXT,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     revoked_at INTEGER,
     last_used_at INTEGER
   )`,
  `CREATE TABLE audit_events (
     id INTEGER PRIMARY KEY,
     node TEXT NOT NULL,
     seq INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     type TEXT NOT NULL,
     session TEXT,
     identity TEXT,
     on_behalf_of TEXT,
     connection TEXT,
     environment TEXT,
     kind TEXT,
     tables TEXT,
     decision TEXT,
     body TEXT NOT NULL,
     hash TEXT NOT NULL,
     UNIQUE (node, seq)
   );
   CREATE INDEX audit_events_ts ON audit_events (ts);
   CREATE TABLE audit_checkpoints (
     node TEXT NOT NULL,
     seq INTEGER NOT NULL,
     hash TEXT NOT NULL,
     ts INTEGER NOT NULL,
     key_id TEXT NOT NULL,
     signature TEXT NOT NULL,
     PRIMARY KEY (node, seq)
   );
   CREATE TABLE audit_sink_cursors (
     sink TEXT NOT NULL,
     node TEXT NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (sink, node)
   )`,
  // The request is the JSON body; the other columns are copies of its fields for the queries
  // (expiry sweep, the retry lookup by statement key, newest-first listing).
  `CREATE TABLE approvals (
     id TEXT PRIMARY KEY,
     status TEXT NOT NULL,
     statement_key TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     body TEXT NOT NULL
   );
   CREATE INDEX approvals_status_expires ON approvals (status, expires_at);
   CREATE INDEX approvals_key_created ON approvals (statement_key, created_at);
   CREATE INDEX approvals_created ON approvals (created_at)`,
  // Repeated statement events stored against a template of their batch (src/audit/compact.ts):
  // the event keeps its own values (body: the duration; tpl_rows) and its template's key.
  `ALTER TABLE audit_events ADD COLUMN tpl INTEGER;
   ALTER TABLE audit_events ADD COLUMN tpl_rows INTEGER;
   CREATE TABLE audit_templates (
     tpl_node TEXT NOT NULL,
     tpl_first INTEGER NOT NULL,
     tpl_last INTEGER NOT NULL,
     head TEXT NOT NULL,
     middle TEXT NOT NULL,
     tail TEXT NOT NULL,
     PRIMARY KEY (tpl_node, tpl_first)
   )`,
];

/** Where the embedded store lives: <state.dir>/gatehouse.db. */
export function storePath(loaded: { readonly stateDir: string }): string {
  return join(loaded.stateDir, 'gatehouse.db');
}

export interface Store {
  readonly tokens: TokenStore;
  readonly audit: AuditStore;
  /** Approval requests. */
  readonly approvals: ApprovalStore;
  close(): Promise<void>;
}

/**
 * Open the SQLite file (WAL, full sync) and apply pending migrations. `busyTimeoutMs` bounds how
 * long a write waits for another process's lock before failing (SQLITE_BUSY).
 */
export function openSqlite(file: string, busyTimeoutMs = 5000): Database.Database {
  let db: Database.Database;
  try {
    mkdirSync(dirname(file), { recursive: true });
    db = new Database(file);
  } catch (err) {
    throw new ConfigError(`state.dir: cannot open the state store "${file}": ${(err as Error).message}`);
  }
  // 16 KiB pages for a new file (ignored for an existing one): audit rows are ~600 bytes, and
  // larger pages cut the insert cost by about a fifth (measured with bench/audit.ts).
  db.pragma('page_size = 16384');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  migrate(db);
  return db;
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const apply = db.transaction(() => {
    // Inside the write transaction, so two processes starting together apply each migration once.
    const done = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
    MIGRATIONS.forEach((sql, i) => {
      if (done.has(i + 1)) return;
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, Date.now());
    });
  });
  apply.immediate();
}

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly tokens: TokenStore;
  readonly audit: AuditStore;
  readonly approvals: ApprovalStore;

  constructor(file: string) {
    this.#db = openSqlite(file);
    this.tokens = new SqliteTokenStore(this.#db);
    this.audit = new SqliteAuditStore(this.#db);
    this.approvals = new SqliteApprovalStore(this.#db);
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
