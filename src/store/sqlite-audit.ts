/**
 * The audit store in the embedded SQLite file. better-sqlite3 is synchronous: the proxy writes
 * events from its audit writer thread (src/audit/writer-thread.ts), never from the event loop
 * that relays statements; the CLI and the HTTP API read with short queries.
 */
import type Database from 'better-sqlite3';
import type { Checkpoint } from '../audit/chain.js';
import { COLUMN_COUNT } from '../audit/event.js';
import { filterSql, SELECT_EVENT, storedEvent, type AuditFilter, type AuditStore, type EventBatch, type EventRow, type StoredEvent } from './audit.js';

/** Events per INSERT statement (14 parameters each; SQLite allows 32,766 per statement). */
const ROWS_PER_INSERT = 64;

const EVENT_COLUMNS = 'node, seq, ts, type, session, identity, on_behalf_of, connection, environment, kind, tables, decision, body, hash';

/** The shared columns of a column set (EventBatch.sets), in row order: node, then type..decision. */
const SHARED = ['node', 'type', 'session', 'identity', 'on_behalf_of', 'connection', 'environment', 'kind', 'tables', 'decision'];

/** Column sets kept in the connection's temp table before it is emptied (they are re-added on use). */
const MAX_SETS = 10_000;

// Text columns may come as UTF-8 bytes (compact events' columns, EventBatch.bodies): CAST stores
// them as the same TEXT, and leaves strings and NULL as they are.
const TEXT = 'CAST(? AS TEXT)';

function insertSql(rows: number): string {
  const one = `(${TEXT}, ?, ?, ${Array(COLUMN_COUNT - 3).fill(TEXT).join(', ')}, ${TEXT}, ?)`;
  return `INSERT OR ROLLBACK INTO audit_events (${EVENT_COLUMNS}) VALUES ${Array(rows).fill(one).join(', ')}`;
}

/**
 * Rows that take their shared columns from the temp table: seq, ts, set id, body, hash, then
 * template key and rows number (null for an event with its whole body) each.
 */
function insertFromSetsSql(rows: number): string {
  return `INSERT OR ROLLBACK INTO audit_events (${EVENT_COLUMNS}, tpl, tpl_rows)
    SELECT c.node, v.column1, v.column2, ${SHARED.slice(1).map((c) => `c.${c}`).join(', ')}, CAST(v.column4 AS TEXT), v.column5, v.column6, v.column7
    FROM (VALUES ${Array(rows).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')}) AS v CROSS JOIN temp.gatehouse_audit_sets AS c ON c.id = v.column3`;
}

/** Values per row of insertFromSetsSql. */
const FROM_SETS_VALUES = 7;

interface Insert {
  readonly stmt: Database.Statement;
  readonly args: unknown[];
}

export class SqliteAuditStore implements AuditStore {
  readonly #db: Database.Database;
  readonly #insertCheckpoint: Database.Statement;
  readonly #appendTx: Database.Transaction<(batch: EventBatch, checkpoints: readonly Checkpoint[]) => void>;
  /** Column set ids in the temp table (made on the first batch that has sets). */
  readonly #sets = new Set<number>();
  #insertSet: Database.Statement | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#insertCheckpoint = db.prepare('INSERT INTO audit_checkpoints (node, seq, hash, ts, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)');
    const insertCheckpoint = this.#insertCheckpoint;
    // Several rows per INSERT: one statement step per ROWS_PER_INSERT events instead of one
    // each (bench/audit.ts). Statements for the sizes a batch ends with are made once, lazily.
    const plain = new Map<number, Insert>();
    const fromSets = new Map<number, Insert>();
    const insertFor = (k: number, withSets: boolean): Insert => {
      const cache = withSets ? fromSets : plain;
      let e = cache.get(k);
      if (e === undefined) cache.set(k, (e = { stmt: db.prepare(withSets ? insertFromSetsSql(k) : insertSql(k)), args: new Array((withSets ? FROM_SETS_VALUES : COLUMN_COUNT + 2) * k) }));
      return e;
    };
    const insertTemplate = db.prepare(`INSERT INTO audit_templates (tpl_node, tpl_first, tpl_last, head, middle, tail) VALUES (${TEXT}, ?, ?, ${TEXT}, ${TEXT}, ${TEXT})`);
    this.#appendTx = db.transaction((batch: EventBatch, checkpoints: readonly Checkpoint[]) => {
      const { rows, hashes, bodies, sets, templated } = batch;
      if (sets !== undefined) this.#prepareSets(batch);
      if (templated !== undefined) for (const t of templated.list) insertTemplate.run(templated.node, t.first, t.last, t.head, t.middle, t.tail);
      // A row's slots: COLUMN_COUNT columns, then the body (as text, or its bytes in `bodies`).
      const slots = COLUMN_COUNT + 1;
      for (let i = 0; i < batch.count; ) {
        // A run of rows that all have a column set, or all have none.
        const withSets = sets !== undefined && sets[i]! >= 0;
        let k = 1;
        while (k < ROWS_PER_INSERT && i + k < batch.count && (sets !== undefined && sets[i + k]! >= 0) === withSets) k++;
        const { stmt, args } = insertFor(k, withSets);
        let a = 0;
        for (let j = i; j < i + k; j++) {
          const base = j * slots;
          if (withSets) {
            args[a++] = rows[base + 1];
            args[a++] = rows[base + 2];
            args[a++] = sets[j];
          } else {
            for (let c = 0; c < COLUMN_COUNT; c++) args[a++] = rows[base + c];
          }
          args[a++] = bodies !== undefined ? bodies[j] : rows[base + COLUMN_COUNT];
          args[a++] = hashes[j];
          if (withSets) {
            const tpl = templated === undefined ? -1 : templated.of[j]!;
            args[a++] = tpl < 0 ? null : tpl;
            args[a++] = tpl < 0 ? null : templated!.counts[j];
          }
        }
        // Spread: better-sqlite3 binds arguments directly but reads an array's elements one by one
        // through the V8 API (a fifth of the bind cost, measured with bench/audit.ts).
        const { changes } = stmt.run(...args);
        // A set missing from the temp table would drop its rows from the join: never silently.
        if (changes !== k) throw new Error(`audit store: ${changes} of ${k} events inserted (a column set is missing)`);
        i += k;
      }
      for (const c of checkpoints) insertCheckpoint.run(c.node, c.seq, c.hash, c.ts, c.key_id, c.signature);
    });
  }

  /** Put the batch's column sets the temp table lacks into it (inside the append's transaction). */
  #prepareSets(batch: EventBatch): void {
    if (this.#insertSet === undefined) {
      this.#db.exec(`CREATE TEMP TABLE IF NOT EXISTS gatehouse_audit_sets (id INTEGER PRIMARY KEY, ${SHARED.map((c) => `${c} TEXT`).join(', ')})`);
      this.#insertSet = this.#db.prepare(`INSERT OR REPLACE INTO temp.gatehouse_audit_sets (id, ${SHARED.join(', ')}) VALUES (?, ${SHARED.map(() => TEXT).join(', ')})`);
    }
    const known = this.#sets;
    if (known.size > MAX_SETS) {
      this.#db.exec('DELETE FROM temp.gatehouse_audit_sets');
      known.clear();
    }
    const { rows, sets } = batch;
    const slots = COLUMN_COUNT + 1;
    for (let i = 0; i < batch.count; i++) {
      const id = sets![i]!;
      if (id < 0 || known.has(id)) continue;
      const base = i * slots;
      this.#insertSet.run(id, rows[base], rows[base + 3], rows[base + 4], rows[base + 5], rows[base + 6], rows[base + 7], rows[base + 8], rows[base + 9], rows[base + 10], rows[base + 11]);
      known.add(id);
    }
  }

  async head(node: string): Promise<{ seq: number; hash: string } | null> {
    const row = this.#db.prepare('SELECT seq, hash FROM audit_events WHERE node = ? ORDER BY seq DESC LIMIT 1').get(node) as { seq: number; hash: string } | undefined;
    return row ?? null;
  }

  /** Synchronous append (the writer thread's path). */
  appendSync(batch: EventBatch, checkpoints: readonly Checkpoint[]): void {
    try {
      this.#appendTx.immediate(batch, checkpoints);
    } catch (err) {
      // Rolled back, the temp table's additions with it: add the sets again on the retry.
      this.#sets.clear();
      throw err;
    }
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
    return (this.#db.prepare(`${SELECT_EVENT} WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?`).all(node, afterSeq, limit) as EventRow[]).map(storedEvent);
  }

  async checkpoints(node: string): Promise<Checkpoint[]> {
    return this.#db.prepare('SELECT node, seq, hash, ts, key_id, signature FROM audit_checkpoints WHERE node = ? ORDER BY seq').all(node) as Checkpoint[];
  }

  async search(filter: AuditFilter, limit: number, order: 'asc' | 'desc'): Promise<StoredEvent[]> {
    const { where, params } = filterSql(filter, () => '?');
    const dir = order === 'asc' ? 'ASC' : 'DESC';
    return (this.#db.prepare(`${SELECT_EVENT} ${where} ORDER BY ts ${dir}, node ${dir}, seq ${dir} LIMIT ?`).all(...params, limit) as EventRow[]).map(storedEvent);
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
      // A template is used by events of one batch only, up to its last one.
      this.#db.prepare('DELETE FROM audit_templates WHERE tpl_node = ? AND tpl_last <= ?').run(node, seq);
      return n;
    });
    return tx.immediate();
  }

  async close(): Promise<void> {
    // The database handle belongs to the SqliteStore that made this.
  }
}
