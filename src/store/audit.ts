/**
 * The audit part of the state store: one interface, implemented by the embedded SQLite store and
 * by the PostgreSQL store. Events are append-only: the only deletion is `deleteThrough`, used by
 * the retention job (which records itself as an event).
 */
import type { Checkpoint } from '../audit/chain.js';
import { templatedBody, type BatchTemplates } from '../audit/compact.js';
import { COLUMN_COUNT, type EventColumns } from '../audit/event.js';

/** A stored event: its indexed columns, its canonical body and its chain hash (hex). */
export interface StoredEvent extends EventColumns {
  readonly body: string;
  readonly hash: string;
}

/** Column names in the order of the flat batch arrays (then body and hash). */
export const EVENT_COLUMNS = ['node', 'seq', 'ts', 'type', 'session', 'identity', 'on_behalf_of', 'connection', 'environment', 'kind', 'tables', 'decision'] as const;
if (EVENT_COLUMNS.length !== COLUMN_COUNT) throw new Error('EVENT_COLUMNS and COLUMN_COUNT disagree');

/**
 * A batch of events as the writer thread hands it to the store: `rows` holds, per event, the
 * COLUMN_COUNT column values followed by the body (so COLUMN_COUNT + 1 entries per event);
 * `hashes` the chain hash of each event. A text column's value may be a string or its UTF-8
 * bytes (a Buffer), stored as the same text.
 */
export interface EventBatch {
  readonly rows: readonly unknown[];
  readonly count: number;
  readonly hashes: readonly string[];
  /** The bodies' UTF-8 bytes, when the writer has them; they take the place of the rows' body slot. */
  readonly bodies?: readonly Buffer[];
  /**
   * Per event, the id of its column set, or -1: events with the same id (in one writer's
   * lifetime) have the same node and type..decision columns, so a store may write those values
   * once and refer to them (SQLite does); the rows hold them all the same.
   */
  readonly sets?: ArrayLike<number>;
  /**
   * Events stored against a template of the batch (src/audit/compact.ts, templatize): for those,
   * `bodies[i]` holds the duration's bytes only, and the store keeps the template, the event's
   * template key and its rows number beside it; readers rebuild the body (storedEvent).
   */
  readonly templated?: BatchTemplates;
}

/**
 * How both stores select events: the columns, then what a templated event's body is rebuilt
 * from (its template's pieces, joined in; null when the event has its whole body).
 */
export const SELECT_EVENT = `SELECT e.node, e.seq, e.ts, e.type, e.session, e.identity, e.on_behalf_of, e.connection, e.environment, e.kind, e.tables, e.decision, e.body, e.hash,
    e.tpl, e.tpl_rows, t.head AS tpl_head, t.middle AS tpl_middle, t.tail AS tpl_tail
  FROM audit_events e LEFT JOIN audit_templates t ON t.tpl_node = e.node AND t.tpl_first = e.tpl`;

/** A row of SELECT_EVENT (bigint columns may come as strings from PostgreSQL). */
export interface EventRow extends Omit<StoredEvent, 'seq' | 'ts'> {
  readonly seq: number | string;
  readonly ts: number | string;
  readonly tpl: number | string | null;
  readonly tpl_rows: number | string | null;
  readonly tpl_head: string | null;
  readonly tpl_middle: string | null;
  readonly tpl_tail: string | null;
}

/**
 * The stored event of a SELECT_EVENT row, its body rebuilt when it was stored against a
 * template. A template that is missing (deleted or never written) leaves an empty body, which
 * verify reports as a modified event at that seq.
 */
export function storedEvent(r: EventRow): StoredEvent {
  let body = r.body;
  if (r.tpl !== null) body = r.tpl_head === null || r.tpl_middle === null || r.tpl_tail === null || r.tpl_rows === null ? '' : templatedBody(r.tpl_head, r.body, r.tpl_middle, r.tpl_rows, r.seq, r.tpl_tail, r.ts);
  return {
    node: r.node,
    seq: Number(r.seq),
    ts: Number(r.ts),
    type: r.type,
    session: r.session,
    identity: r.identity,
    on_behalf_of: r.on_behalf_of,
    connection: r.connection,
    environment: r.environment,
    kind: r.kind,
    tables: r.tables,
    decision: r.decision,
    body,
    hash: r.hash,
  };
}

/** What `gatehouse audit search` and /api/audit filter on; all given fields must match. */
export interface AuditFilter {
  readonly identity?: string;
  readonly onBehalfOf?: string;
  readonly connection?: string;
  readonly environment?: string;
  readonly kind?: string;
  readonly table?: string;
  readonly decision?: string;
  readonly type?: string;
  readonly session?: string;
  readonly node?: string;
  /** Epoch milliseconds, inclusive. */
  readonly since?: number;
  /** Epoch milliseconds, exclusive. */
  readonly until?: number;
}

export interface AuditStore {
  /** The writer's last event, to continue its chain; null for a new writer. */
  head(node: string): Promise<{ seq: number; hash: string } | null>;
  /** Append events and checkpoints in one transaction. */
  append(batch: EventBatch, checkpoints: readonly Checkpoint[]): Promise<void>;
  /**
   * Append at a writer's head under an exclusive lock (for short-lived writers such as the CLI,
   * which may run concurrently): `make` gets the head and returns the batch to insert.
   */
  appendAtHead(node: string, make: (head: { seq: number; hash: string } | null) => { batch: EventBatch; checkpoints: readonly Checkpoint[] }): Promise<void>;
  /** Every writer that has events or checkpoints. */
  nodes(): Promise<string[]>;
  /** A writer's events with seq > afterSeq, in seq order. */
  range(node: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  /** A writer's checkpoints in seq order. */
  checkpoints(node: string): Promise<Checkpoint[]>;
  /** Events matching the filter, newest first ('desc') or oldest first ('asc'). */
  search(filter: AuditFilter, limit: number, order: 'asc' | 'desc'): Promise<StoredEvent[]>;
  /** Where a sink got to: node -> last delivered seq. */
  sinkCursor(sink: string): Promise<Map<string, number>>;
  saveSinkCursor(sink: string, node: string, seq: number): Promise<void>;
  /**
   * Retention only: delete a writer's events with seq <= `seq` and its checkpoints before `seq`
   * (the checkpoint at `seq` stays: it anchors the rest of the chain). Returns events deleted.
   */
  deleteThrough(node: string, seq: number): Promise<number>;
  close(): Promise<void>;
}

/** SQL text of a filter, for both stores; `p(i)` renders the i-th placeholder (from 1). */
export function filterSql(f: AuditFilter, p: (i: number) => string): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const add = (sql: (ph: string) => string, value: unknown): void => {
    params.push(value);
    clauses.push(sql(p(params.length)));
  };
  if (f.identity !== undefined) add((ph) => `identity = ${ph}`, f.identity);
  if (f.onBehalfOf !== undefined) add((ph) => `on_behalf_of = ${ph}`, f.onBehalfOf);
  if (f.connection !== undefined) add((ph) => `connection = ${ph}`, f.connection);
  if (f.environment !== undefined) add((ph) => `environment = ${ph}`, f.environment);
  if (f.kind !== undefined) add((ph) => `kind = ${ph}`, f.kind.toUpperCase());
  // LIKE with its wildcards escaped, so "order_items" matches only itself.
  if (f.table !== undefined) add((ph) => `tables LIKE ${ph} ESCAPE '\\'`, `%,${f.table.replace(/[%_\\]/g, (c) => `\\${c}`)},%`);
  if (f.decision !== undefined) add((ph) => `decision = ${ph}`, f.decision);
  if (f.type !== undefined) add((ph) => `type = ${ph}`, f.type);
  if (f.session !== undefined) add((ph) => `session = ${ph}`, f.session);
  if (f.node !== undefined) add((ph) => `node = ${ph}`, f.node);
  if (f.since !== undefined) add((ph) => `ts >= ${ph}`, f.since);
  if (f.until !== undefined) add((ph) => `ts < ${ph}`, f.until);
  return { where: clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`, params };
}
