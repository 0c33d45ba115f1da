/**
 * Approval requests in the embedded SQLite file. The whole request is one JSON body; the columns
 * beside it (status, statement key, creation and expiry) are copies for the queries, written from
 * the same object as the body so they always agree with it. Also the row helpers the PostgreSQL
 * store (postgres-store.ts) shares, so both write the same rows.
 */
import type Database from 'better-sqlite3';
import { ApprovalError, type ApprovalQuery, type ApprovalRequest, type ApprovalStatus, type ApprovalStore } from '../approvals/request.js';

/** The approvals columns, in the order of `approvalValues()`. */
export const APPROVAL_COLUMNS = 'id, status, statement_key, created_at, expires_at, body';

/** `list` returns this many requests when the query names no limit, and never more than the cap. */
const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

/** The row of a request, in the order of APPROVAL_COLUMNS. */
export function approvalValues(r: ApprovalRequest): [string, ApprovalStatus, string, number, number, string] {
  return [r.id, r.status, r.statementKey, r.createdAt, r.expiresAt, JSON.stringify(r)];
}

/** The row limit of a list query: the default when none (or NaN) is given, else 0..cap. */
export function listLimit(q: ApprovalQuery): number {
  const n = q.limit;
  if (n === undefined || Number.isNaN(n)) return DEFAULT_LIST_LIMIT;
  // Clamped below at 0: a negative LIMIT means "no limit" to SQLite.
  return Math.min(MAX_LIST_LIMIT, Math.max(0, Math.floor(n)));
}

/** The error for an id that is already taken. */
export const duplicateId = (id: string): ApprovalError => new ApprovalError(409, `approval request ${id} already exists`);

/**
 * Apply `change` to the stored body of request `id`: the new row values and the request as it
 * will read back (JSON round trip, so it deep-equals a later `get`). Whatever `change` throws
 * propagates unchanged. A change may not move the request to another id: that is a bug in the
 * caller (a TypeError, not an ApprovalError that would be shown to a client as its fault).
 */
export function applyChange(id: string, body: string, change: (r: ApprovalRequest) => ApprovalRequest): { values: ReturnType<typeof approvalValues>; request: ApprovalRequest } {
  const next = change(JSON.parse(body) as ApprovalRequest);
  if (next.id !== id) throw new TypeError(`an update of approval request ${id} changed its id to ${String(next.id)}`);
  const values = approvalValues(next);
  return { values, request: JSON.parse(values[5]) as ApprovalRequest };
}

const SELECT_BODY = 'SELECT body FROM approvals';
const NEWEST_FIRST = 'ORDER BY created_at DESC, id DESC';

export class SqliteApprovalStore implements ApprovalStore {
  readonly #insert: Database.Statement;
  readonly #get: Database.Statement;
  readonly #list: Database.Statement;
  readonly #listByStatus: Database.Statement;
  readonly #findByKey: Database.Statement;
  readonly #expiredPending: Database.Statement;
  readonly #updateTx: Database.Transaction<(id: string, change: (r: ApprovalRequest) => ApprovalRequest) => ApprovalRequest | null>;

  /** `db` must have the approvals migration applied (openSqlite does that). */
  constructor(db: Database.Database) {
    this.#insert = db.prepare(`INSERT INTO approvals (${APPROVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`);
    this.#get = db.prepare(`${SELECT_BODY} WHERE id = ?`).pluck();
    this.#list = db.prepare(`${SELECT_BODY} ${NEWEST_FIRST} LIMIT ?`).pluck();
    this.#listByStatus = db.prepare(`${SELECT_BODY} WHERE status = ? ${NEWEST_FIRST} LIMIT ?`).pluck();
    // The statuses come as one JSON array parameter, so one prepared statement serves any list.
    this.#findByKey = db.prepare(`${SELECT_BODY} WHERE statement_key = ? AND status IN (SELECT value FROM json_each(?)) ${NEWEST_FIRST} LIMIT 1`).pluck();
    this.#expiredPending = db.prepare("SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at, id").pluck();
    const write = db.prepare('UPDATE approvals SET status = ?, statement_key = ?, created_at = ?, expires_at = ?, body = ? WHERE id = ?');
    const get = this.#get;
    // Run with .immediate(): the write lock is taken before the read, so an update by another
    // process (which waits up to busy_timeout) cannot slip in between the read and the write.
    // If `change` throws, better-sqlite3 rolls back and rethrows the same error.
    this.#updateTx = db.transaction((id: string, change: (r: ApprovalRequest) => ApprovalRequest) => {
      const body = get.get(id) as string | undefined;
      if (body === undefined) return null;
      const { values, request } = applyChange(id, body, change);
      write.run(values[1], values[2], values[3], values[4], values[5], id);
      return request;
    });
  }

  async create(r: ApprovalRequest): Promise<void> {
    if (this.#insert.run(...approvalValues(r)).changes === 0) throw duplicateId(r.id);
  }

  async get(id: string): Promise<ApprovalRequest | null> {
    const body = this.#get.get(id) as string | undefined;
    return body === undefined ? null : (JSON.parse(body) as ApprovalRequest);
  }

  async list(q: ApprovalQuery): Promise<ApprovalRequest[]> {
    const limit = listLimit(q);
    const bodies = (q.status === undefined ? this.#list.all(limit) : this.#listByStatus.all(q.status, limit)) as string[];
    return bodies.map((b) => JSON.parse(b) as ApprovalRequest);
  }

  async update(id: string, change: (r: ApprovalRequest) => ApprovalRequest): Promise<ApprovalRequest | null> {
    return this.#updateTx.immediate(id, change);
  }

  async findByKey(key: string, statuses: readonly ApprovalStatus[]): Promise<ApprovalRequest | null> {
    if (statuses.length === 0) return null;
    const body = this.#findByKey.get(key, JSON.stringify(statuses)) as string | undefined;
    return body === undefined ? null : (JSON.parse(body) as ApprovalRequest);
  }

  async expiredPending(now: number): Promise<string[]> {
    return this.#expiredPending.all(now) as string[];
  }
}
