/**
 * The approvals API on the HTTP listener, authenticated as the approver (see auth.ts):
 *
 *   GET  /api/approvals?status=pending&limit=100   requests the caller may see, newest first
 *   GET  /api/approvals/{id}
 *   POST /api/approvals/{id}/approve               body (optional): {"reason": "..."}
 *   POST /api/approvals/{id}/deny                  body (optional): {"reason": "..."}
 *
 * A caller sees the requests they made (or that were made on their behalf), those they may
 * decide (member of an approver group), and all of them with an admin or auditor group. Deciding
 * follows the separation-of-duties rules of request.ts; every decision is an audit event.
 * Statuses in answers are as of now (a pending request past its expiry reads as expired).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EventInput } from '../audit/event.js';
import { auditIdentity } from '../audit/stage.js';
import { approvalEvent } from '../approvals/stage.js';
import type { Notifier } from '../approvals/notify.js';
import { APPROVAL_STATUSES, ApprovalError, effectiveStatus, vote, type ApprovalRequest, type ApprovalStatus, type ApprovalStore } from '../approvals/request.js';
import type { Identity } from '../identity/identity.js';
import { ApiError, send, sendError, type ApiAuthenticator } from './auth.js';

export const APPROVALS_API_PREFIX = '/api/approvals';
const MAX_BODY = 16 * 1024;
const MAX_REASON = 2000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const ID = /^apr_[a-z2-7]{20}$/;

export interface ApprovalsApiOptions {
  readonly store: ApprovalStore;
  readonly authenticate: ApiAuthenticator;
  readonly logger: Logger;
  /** Groups that see every request. */
  readonly adminGroups: readonly string[];
  readonly auditorGroups: readonly string[];
  readonly record?: (e: EventInput) => void;
  /** Told of each decision (metrics). */
  readonly onStep?: (type: 'approval.approve' | 'approval.deny') => void;
  readonly notifier?: Notifier;
  /** Called after a decision, to wake a statement held in this process. */
  readonly onDecided?: (id: string) => void;
}

/** The request as the API shows it: its status as of now. */
function view(r: ApprovalRequest, now: number): ApprovalRequest {
  const status = effectiveStatus(r, now);
  return status === r.status ? r : { ...r, status };
}

export function createApprovalsApi(opts: ApprovalsApiOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { store, logger } = opts;
  const seesAll = new Set([...opts.adminGroups, ...opts.auditorGroups]);

  const visible = (r: ApprovalRequest, who: Identity): boolean =>
    who.groups.some((g) => seesAll.has(g) || r.groups.includes(g)) || r.requester.name === who.name || r.requester.onBehalfOf === who.name;

  const load = async (id: string, who: Identity): Promise<ApprovalRequest> => {
    if (!ID.test(id)) throw new ApiError(404, `no approval request "${id}"`);
    const r = await store.get(id);
    // Not visible reads as absent: ids do not leak what exists.
    if (r === null || !visible(r, who)) throw new ApiError(404, `no approval request "${id}"`);
    return r;
  };

  const decide = async (id: string, verdict: 'approve' | 'deny', who: Identity, req: IncomingMessage): Promise<ApprovalRequest> => {
    const reason = await readReason(req);
    await load(id, who);
    let r: ApprovalRequest | null;
    try {
      r = await store.update(id, (x) => vote(x, who, verdict, Date.now(), reason));
    } catch (err) {
      if (err instanceof ApprovalError) throw new ApiError(err.status, err.message);
      throw err;
    }
    if (r === null) throw new ApiError(404, `no approval request "${id}"`);
    logger.info({ event: `approval_${verdict}`, request: id, by: who.name, status: r.status }, `approval request ${verdict === 'approve' ? 'approved' : 'denied'} by ${who.name}`);
    const e = approvalEvent(verdict === 'approve' ? 'approval.approve' : 'approval.deny', r, undefined, { by: who.name, ...(reason !== undefined ? { reason } : {}) });
    opts.record?.({ ...e, identity: auditIdentity(who), session: undefined });
    opts.onStep?.(e.type as 'approval.approve' | 'approval.deny');
    if (r.status === 'approved') opts.notifier?.notify('approved', r);
    else if (r.status === 'denied') opts.notifier?.notify('denied', r);
    opts.onDecided?.(id);
    return r;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const who = await opts.authenticate(req);
    const rest = url.pathname.slice(APPROVALS_API_PREFIX.length).split('/').filter((p) => p !== '');
    const method = req.method ?? 'GET';
    const now = Date.now();
    if (rest.length === 0) {
      if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, `${method} is not allowed on ${APPROVALS_API_PREFIX} (use GET)`);
      const { status, limit } = listQuery(url.searchParams);
      // Expired requests may still be stored as pending: filter on the status as of now.
      const stored = status === 'expired' || status === 'pending' ? undefined : status;
      const rows = await store.list({ status: stored, limit: status === undefined || stored !== undefined ? limit : MAX_LIMIT });
      const out = rows.map((r) => view(r, now)).filter((r) => visible(r, who) && (status === undefined || r.status === status));
      return send(res, 200, 'application/json', JSON.stringify(out.slice(0, limit)));
    }
    const id = rest[0]!;
    if (rest.length === 1) {
      if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, `${method} is not allowed on ${APPROVALS_API_PREFIX}/{id} (use GET)`);
      return send(res, 200, 'application/json', JSON.stringify(view(await load(id, who), now)));
    }
    if (rest.length === 2 && (rest[1] === 'approve' || rest[1] === 'deny')) {
      if (method !== 'POST') throw new ApiError(405, `${method} is not allowed on ${APPROVALS_API_PREFIX}/{id}/${rest[1]} (use POST)`);
      return send(res, 200, 'application/json', JSON.stringify(view(await decide(id, rest[1], who, req), Date.now())));
    }
    throw new ApiError(404, `not found: ${url.pathname} (see ${APPROVALS_API_PREFIX}, ${APPROVALS_API_PREFIX}/{id}, .../approve and .../deny)`);
  };

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://gatehouse');
    if (url.pathname !== APPROVALS_API_PREFIX && !url.pathname.startsWith(`${APPROVALS_API_PREFIX}/`)) return false;
    handle(req, res, url).catch((err: unknown) => sendError(res, err, logger, url.pathname));
    return true;
  };
}

function listQuery(sp: URLSearchParams): { status: ApprovalStatus | undefined; limit: number } {
  let status: ApprovalStatus | undefined;
  let limit = DEFAULT_LIMIT;
  for (const [k, v] of sp) {
    if (k === 'status') {
      if (!(APPROVAL_STATUSES as readonly string[]).includes(v)) throw new ApiError(400, `status: expected one of ${APPROVAL_STATUSES.join(', ')}, got "${v}"`);
      status = v as ApprovalStatus;
    } else if (k === 'limit') {
      limit = /^\d{1,4}$/.test(v) ? Number(v) : NaN;
      if (!(limit >= 1 && limit <= MAX_LIMIT)) throw new ApiError(400, `limit: expected an integer from 1 to ${MAX_LIMIT}, got "${v}"`);
    } else throw new ApiError(400, `${k}: unknown parameter (expected status or limit)`);
  }
  return { status, limit };
}

/** The optional `{"reason": "..."}` body of approve and deny. */
async function readReason(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(400, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'body: expected JSON such as {"reason": "..."}');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'body: expected a JSON object such as {"reason": "..."}');
  const extra = Object.keys(body).filter((k) => k !== 'reason');
  if (extra.length > 0) throw new ApiError(400, `body: unknown key "${extra[0]}" (expected "reason")`);
  const reason = (body as { reason?: unknown }).reason;
  if (reason === undefined || reason === null) return undefined;
  if (typeof reason !== 'string') throw new ApiError(400, 'reason: expected a string');
  if (reason.length > MAX_REASON) throw new ApiError(400, `reason: longer than ${MAX_REASON} characters`);
  return reason === '' ? undefined : reason;
}
