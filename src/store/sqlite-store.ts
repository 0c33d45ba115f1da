/**
 * The embedded state store: one SQLite file (WAL, full sync) under `state.dir`, shared by the
 * running proxy and the CLI. Migrations apply automatically, in order, once. Later issues add
 * audit and approvals here, and a PostgreSQL implementation of the same interfaces for several
 * nodes.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../errors.js';
import { SqliteTokenStore, type TokenStore } from './tokens.js';

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
];

/** Where the embedded store lives: <state.dir>/gatehouse.db. */
export function storePath(loaded: { readonly stateDir: string }): string {
  return join(loaded.stateDir, 'gatehouse.db');
}

export interface Store {
  readonly tokens: TokenStore;
  close(): void;
}

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly tokens: TokenStore;

  constructor(file: string) {
    try {
      mkdirSync(dirname(file), { recursive: true });
      this.#db = new Database(file);
    } catch (err) {
      throw new ConfigError(`state.dir: cannot open the state store "${file}": ${(err as Error).message}`);
    }
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
    this.tokens = new SqliteTokenStore(this.#db);
  }

  #migrate(): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    const done = new Set((this.#db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
    const apply = this.#db.transaction((version: number, sql: string) => {
      this.#db.exec(sql);
      this.#db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, Date.now());
    });
    MIGRATIONS.forEach((sql, i) => {
      if (!done.has(i + 1)) apply(i + 1, sql);
    });
  }

  close(): void {
    this.#db.close();
  }
}
