/**
 * The audit store in the embedded SQLite file. better-sqlite3 is synchronous: the proxy writes
 * events from its audit writer thread (src/audit/writer-thread.ts), never from the event loop
 * that relays statements; the CLI and the HTTP API read with short queries.
 */
import type Database from 'better-sqlite3';
import type { Checkpoint } from '../audit/chain.js';
import { COLUMN_COUNT } from '../audit/event.js';
import { filterSql, type AuditFilter, type AuditStore, type EventBatch, type StoredEvent } from './audit.js';

const SELECT_EVENT = 'SELECT node, seq, ts, type, session, identity, on_behalf_of, connection, environment, kind, tables, decision, body, hash FROM audit_events';

/** Events per INSERT statement (14 parameters each; SQLite allows 32,766 per statement). */
const ROWS_PER_INSERT = 64;

function insertSql(rows: number): string {
  // Text columns may come as UTF-8 bytes (compact events' columns, EventBatch.bodies): CAST
  // stores them as the same TEXT, and leaves strings and NULL as they are.
  const text = 'CAST(? AS TEXT)';
  const one = `(${text}, ?, ?, ${Array(COLUMN_COUNT - 3).fill(text).join(', ')}, ${text}, ?)`;
  return `INSERT OR ROLLBACK INTO audit_events (node, seq, ts, type, session, identity, on_behalf_of, connection, environment, kind, tables, decision, body, hash) VALUES ${Array(rows).fill(one).join(', ')}`;
}

export class SqliteAuditStore implements AuditStore {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #insertCheckpoint: Database.Statement;
  readonly #appendTx: Database.Transaction<(batch: EventBatch, checkpoints: readonly Checkpoint[]) => void>;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#insert = db.prepare(insertSql(1));
    this.#insertCheckpoint = db.prepare('INSERT INTO audit_checkpoints (node, seq, hash, ts, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)');
    const insertCheckpoint = this.#insertCheckpoint;
    const width = COLUMN_COUNT + 2;
    // Several rows per INSERT: one statement step per ROWS_PER_INSERT events instead of one
    // each (bench/audit.ts). Statements for the sizes a batch ends with are made once, lazily.
    const bySize = new Map<number, { stmt: Database.Statement; args: unknown[] }>([[1, { stmt: this.#insert, args: new Array(width) }]]);
    const insertFor = (k: number): { stmt: Database.Statement; args: unknown[] } => {
      let e = bySize.get(k);
      if (e === undefined) bySize.set(k, (e = { stmt: db.prepare(insertSql(k)), args: new Array(width * k) }));
      return e;
    };
    this.#appendTx = db.transaction((batch: EventBatch, checkpoints: readonly Checkpoint[]) => {
      const { rows, hashes, bodies } = batch;
      // A row's slots: COLUMN_COUNT columns, then the body (as text, or its bytes in `bodies`).
      const slots = COLUMN_COUNT + 1;
      for (let i = 0; i < batch.count; ) {
        const k = Math.min(ROWS_PER_INSERT, batch.count - i);
        const { stmt, args } = insertFor(k);
        let a = 0;
        for (let j = i; j < i + k; j++) {
          const base = j * slots;
          for (let c = 0; c < COLUMN_COUNT; c++) args[a++] = rows[base + c];
          args[a++] = bodies !== undefined ? bodies[j] : rows[base + COLUMN_COUNT];
          args[a++] = hashes[j];
        }
        // Spread: better-sqlite3 binds arguments directly but reads an array's elements one by one
        // through the V8 API (a fifth of the bind cost, measured with bench/audit.ts).
        stmt.run(...args);
        i += k;
      }
      for (const c of checkpoints) insertCheckpoint.run(c.node, c.seq, c.hash, c.ts, c.key_id, c.signature);
    });
  }

  async head(node: string): Promise<{ seq: number; hash: string } | null> {
    const row = this.#db.prepare('SELECT seq, hash FROM audit_events WHERE node = ? ORDER BY seq DESC LIMIT 1').get(node) as { seq: number; hash: string } | undefined;
    return row ?? null;
  }

  /** Synchronous append (the writer thread's path). */
  appendSync(batch: EventBatch, checkpoints: readonly Checkpoint[]): void {
    this.#appendTx.immediate(batch, checkpoints);
  }

  async append(batch: EventBatch, checkpoints: readonly Checkpoint[]): Promise<void> {
    this.appendSync(batch, checkpoints);
  }

  async appendAtHead(node: string, make: (head: { seq: number; hash: string } | null) => { batch: EventBatch; checkpoints: readonly Checkpoint[] }): Promise<void> {
    const tx = this.#db.transaction(() => {
      const head = this.#db.prepare('SELECT seq, hash FROM audit_events WHERE node = ? ORDER BY seq DESC LIMIT 1').get(node) as { seq: number; hash: string } | undefined;
      const { batch, checkpoints } = make(head ?? null);
      this.#appendTx(batch, checkpoints);
    });
    tx.immediate();
  }

  async nodes(): Promise<string[]> {
    const rows = this.#db.prepare('SELECT DISTINCT node FROM audit_events UNION SELECT DISTINCT node FROM audit_checkpoints ORDER BY 1').all() as Array<{ node: string }>;
    return rows.map((r) => r.node);
  }

  async range(node: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.#db.prepare(`${SELECT_EVENT} WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?`).all(node, afterSeq, limit) as StoredEvent[];
  }

  async checkpoints(node: string): Promise<Checkpoint[]> {
    return this.#db.prepare('SELECT node, seq, hash, ts, key_id, signature FROM audit_checkpoints WHERE node = ? ORDER BY seq').all(node) as Checkpoint[];
  }

  async search(filter: AuditFilter, limit: number, order: 'asc' | 'desc'): Promise<StoredEvent[]> {
    const { where, params } = filterSql(filter, () => '?');
    const dir = order === 'asc' ? 'ASC' : 'DESC';
    return this.#db.prepare(`${SELECT_EVENT} ${where} ORDER BY ts ${dir}, node ${dir}, seq ${dir} LIMIT ?`).all(...params, limit) as StoredEvent[];
  }

  async sinkCursor(sink: string): Promise<Map<string, number>> {
    const rows = this.#db.prepare('SELECT node, seq FROM audit_sink_cursors WHERE sink = ?').all(sink) as Array<{ node: string; seq: number }>;
    return new Map(rows.map((r) => [r.node, r.seq]));
  }

  async saveSinkCursor(sink: string, node: string, seq: number): Promise<void> {
    this.#db.prepare('INSERT INTO audit_sink_cursors (sink, node, seq) VALUES (?, ?, ?) ON CONFLICT (sink, node) DO UPDATE SET seq = excluded.seq').run(sink, node, seq);
  }

  async deleteThrough(node: string, seq: number): Promise<number> {
    const tx = this.#db.transaction(() => {
      const n = this.#db.prepare('DELETE FROM audit_events WHERE node = ? AND seq <= ?').run(node, seq).changes;
      this.#db.prepare('DELETE FROM audit_checkpoints WHERE node = ? AND seq < ?').run(node, seq);
      return n;
    });
    return tx.immediate();
  }

  async close(): Promise<void> {
    // The database handle belongs to the SqliteStore that made this.
  }
}
