/**
 * Approval requests: the record, its states and the pure rules that move it from one state to the
 * next. Stores persist requests; the stage (stage.ts) creates and waits on them; the API and the
 * CLI decide them. Nothing here knows about sockets or storage.
 *
 *   pending --approve (quorum reached)--> approved --run--> executed
 *      |  \--deny--> denied
 *      |---expiry---> expired            approved --retry window over--> (stays approved, unusable)
 *      \---client cancels / goes away--> cancelled
 */
import { createHash, randomBytes } from 'node:crypto';

export const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'expired', 'executed', 'cancelled'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** wait: the statement is held until decided; retry: refused now, runs once when sent again after approval. */
export type ApprovalMode = 'wait' | 'retry';

/** Someone who approved or denied. */
export interface ApprovalVote {
  readonly name: string;
  readonly verdict: 'approve' | 'deny';
  readonly at: number;
  readonly reason?: string;
  /** Set when a policy rule approved automatically: its id (name is then "policy"). */
  readonly rule?: string;
}

/** Who asked (the identity of the session that sent the statement). */
export interface Requester {
  readonly name: string;
  readonly kind: string;
  readonly groups: readonly string[];
  /** The person an agent or workload acted for. */
  readonly onBehalfOf?: string;
}

/** One approval request, as stored (JSON-serializable). */
export interface ApprovalRequest {
  /** "apr_" + 20 base32 characters. */
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly mode: ApprovalMode;
  readonly requester: Requester;
  readonly connection: string;
  readonly environment: string;
  /** The statement as sent (full text). */
  readonly statement: string;
  /** Digest of (connection, requester name, statement text): what a retry must match. */
  readonly statementKey: string;
  /** Facts of the statement, for the approver. */
  readonly facts: { readonly kind: string; readonly tables: readonly string[]; readonly fingerprint: string };
  /** The rule that required approval, and its message. */
  readonly rule: string;
  readonly message: string;
  /** Approvers: members of any of these groups; `quorum` distinct people. */
  readonly groups: readonly string[];
  readonly quorum: number;
  readonly votes: readonly ApprovalVote[];
  readonly createdAt: number;
  /** A pending request expires then. */
  readonly expiresAt: number;
  /** When it became approved, denied, expired or cancelled. */
  readonly decidedAt?: number;
  /** How long an approved request may be run by sending the statement again. */
  readonly runWindowMs: number;
  /** An approved request may run until then (retry mode, or a wait-mode request whose client left). */
  readonly runUntil?: number;
  readonly executedAt?: number;
  /** Why it was denied, cancelled or expired (free text). */
  readonly reason?: string;
  /** The session that asked, and the node it was on. */
  readonly session: string;
  readonly node: string;
}

/** A refused transition, with the HTTP status it maps to. */
export class ApprovalError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** A new request id: "apr_" + 100 random bits in lower-case base32. */
export function newApprovalId(): string {
  const bytes = randomBytes(20);
  let id = 'apr_';
  for (let i = 0; i < 20; i++) id += BASE32[bytes[i]! & 31];
  return id;
}

/** What a re-sent statement must match to spend an approval: same connection, same person, same text. */
export function statementKey(connection: string, requester: string, text: string): string {
  // Length-prefixed, so no choice of names and text can collide with another.
  const h = createHash('sha256');
  for (const part of [connection, requester, text]) h.update(`${Buffer.byteLength(part)}:`).update(part);
  return h.digest('hex');
}

/** The status a request has at `now` (a pending request past its expiry is expired). */
export function effectiveStatus(r: ApprovalRequest, now: number): ApprovalStatus {
  return r.status === 'pending' && now >= r.expiresAt ? 'expired' : r.status;
}

/** Whether a request is over (no transition leaves these). */
export function isFinal(s: ApprovalStatus): boolean {
  return s === 'denied' || s === 'expired' || s === 'executed' || s === 'cancelled';
}

/** The identity deciding a request, as the rules need it. */
export interface Decider {
  readonly name: string;
  readonly kind: string;
  readonly groups: readonly string[];
}

/** Why `who` may not decide `r`, or null when they may. Separation of duties lives here. */
export function cannotDecide(r: ApprovalRequest, who: Decider): string | null {
  if (who.name === r.requester.name) return `${who.name} asked for this request and cannot decide it (separation of duties)`;
  if (r.requester.onBehalfOf !== undefined && who.name === r.requester.onBehalfOf) {
    return `${r.requester.name} acted on behalf of ${who.name}, so ${who.name} cannot decide this request (separation of duties)`;
  }
  if (who.kind !== 'human') return `only people may decide approval requests (${who.name} is a${who.kind === 'agent' ? 'n' : ''} ${who.kind})`;
  if (!who.groups.some((g) => r.groups.includes(g))) return `${who.name} is not in an approver group of this request (${r.groups.join(', ')})`;
  return null;
}

/**
 * Apply an approval or a denial by `who` at `now`. Throws ApprovalError when it is not allowed:
 * the request is over, the person may not decide it, or has already approved it.
 */
export function vote(r: ApprovalRequest, who: Decider, verdict: 'approve' | 'deny', now: number, reason?: string): ApprovalRequest {
  const status = effectiveStatus(r, now);
  if (status !== 'pending') throw new ApprovalError(409, `request ${r.id} is ${status}, not pending`);
  const why = cannotDecide(r, who);
  if (why !== null) throw new ApprovalError(403, why);
  if (r.votes.some((v) => v.name === who.name)) throw new ApprovalError(409, `${who.name} has already approved request ${r.id}`);
  const v: ApprovalVote = reason === undefined ? { name: who.name, verdict, at: now } : { name: who.name, verdict, at: now, reason };
  const votes = [...r.votes, v];
  if (verdict === 'deny') return { ...r, votes, status: 'denied', decidedAt: now, reason: reason ?? `denied by ${who.name}` };
  const approvals = votes.filter((x) => x.verdict === 'approve').length;
  if (approvals < r.quorum) return { ...r, votes };
  return { ...r, votes, status: 'approved', decidedAt: now, runUntil: now + r.runWindowMs };
}

/** Approved by a policy rule, at creation. */
export function autoApprove(r: ApprovalRequest, rule: string, now: number): ApprovalRequest {
  return { ...r, votes: [{ name: 'policy', verdict: 'approve', at: now, rule }], status: 'approved', decidedAt: now, runUntil: now + r.runWindowMs };
}

/** A pending request ends without a decision: expired, or cancelled (by the client, or at shutdown). */
export function close(r: ApprovalRequest, status: 'expired' | 'cancelled', now: number, reason: string): ApprovalRequest {
  if (r.status !== 'pending') throw new ApprovalError(409, `request ${r.id} is ${r.status}, not pending`);
  return { ...r, status, decidedAt: now, reason };
}

/** Spend an approved request: the statement runs now. */
export function execute(r: ApprovalRequest, now: number): ApprovalRequest {
  if (r.status !== 'approved') throw new ApprovalError(409, `request ${r.id} is ${r.status}, not approved`);
  if (r.runUntil !== undefined && now > r.runUntil) throw new ApprovalError(409, `the approval of request ${r.id} was usable until ${new Date(r.runUntil).toISOString()}`);
  return { ...r, status: 'executed', executedAt: now };
}

/** Filter for listing requests. */
export interface ApprovalQuery {
  readonly status?: ApprovalStatus;
  readonly limit?: number;
}

/**
 * Where requests live: the embedded SQLite store or the shared PostgreSQL store, so a request made
 * on one node can be decided through any other.
 */
export interface ApprovalStore {
  /** Insert a new request (its id is fresh). */
  create(r: ApprovalRequest): Promise<void>;
  get(id: string): Promise<ApprovalRequest | null>;
  /** Newest first; `status` filters on the stored status (a stale pending row is still "pending"). */
  list(q: ApprovalQuery): Promise<ApprovalRequest[]>;
  /**
   * Read, change and write one request atomically (no other update of it in between, on any
   * node): `change` returns the new request, or throws (ApprovalError) to leave it as it was.
   * Returns the new request, or null when there is no such id.
   */
  update(id: string, change: (r: ApprovalRequest) => ApprovalRequest): Promise<ApprovalRequest | null>;
  /** The newest request with this statement key in one of these statuses, or null. */
  findByKey(key: string, statuses: readonly ApprovalStatus[]): Promise<ApprovalRequest | null>;
  /** Ids of pending requests whose expiry is at or before `now`. */
  expiredPending(now: number): Promise<string[]>;
  /**
   * Where the store can tell: `onChange(id)` whenever any node updated a request (PostgreSQL
   * LISTEN/NOTIFY). Best effort; returns a function that stops watching.
   */
  watch?(onChange: (id: string) => void): () => void;
}
