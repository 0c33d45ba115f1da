/**
 * The audit API on the HTTP listener: read the trail without database or file access.
 *
 *   GET /api/audit/events?identity=&on_behalf_of=&connection=&environment=&kind=&table=
 *       &decision=&type=&session=&node=&since=&until=&limit=&order=&format=
 *   GET /api/audit/checkpoints?node=
 *   GET /api/audit/export?node=      (the export file of `gatehouse audit export`, streamed)
 *
 * Authentication: see auth.ts (HTTP Basic for local users, Bearer for tokens and JWTs).
 * The identity's groups must meet `api.auditor_groups` or `api.admin_groups`.
 * Reads are not audited in this version.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EVENT_TYPES } from '../audit/event.js';
import { writeExport } from '../audit/export.js';
import type { AuditFilter, AuditStore, StoredEvent } from '../store/audit.js';
import { ApiError, createApiAuthenticator, send, sendError, type ApiAuthenticator, type ApiAuthOptions } from './auth.js';

export interface AuditApiOptions extends ApiAuthOptions {
  readonly store: AuditStore;
  /** Groups that may read the trail. */
  readonly auditorGroups: readonly string[];
  /** Groups that may use every API (including this one). */
  readonly adminGroups: readonly string[];
  /** PEM public keys by key id, copied into the header of /api/audit/export (a convenience, not a trust anchor). */
  readonly publicKeys?: Readonly<Record<string, string>>;
  /** Shared with the other APIs of the listener (one rate limiter and password cache); built from the options if absent. */
  readonly authenticate?: ApiAuthenticator;
}

/** Route prefix handled by the audit API. */
export const AUDIT_API_PREFIX = '/api/audit';
/** Default and largest `limit` of /api/audit/events. */
export const DEFAULT_EVENT_LIMIT = 1000;
export const MAX_EVENT_LIMIT = 10_000;

const MAX_VALUE_LENGTH = 1024;

/** Query parameters of /api/audit/events that map to a store filter field. */
const FILTER_PARAMS = {
  identity: 'identity',
  on_behalf_of: 'onBehalfOf',
  connection: 'connection',
  environment: 'environment',
  kind: 'kind',
  table: 'table',
  decision: 'decision',
  type: 'type',
  session: 'session',
  node: 'node',
} as const satisfies Record<string, keyof AuditFilter>;
const EVENT_PARAMS = new Set<string>([...Object.keys(FILTER_PARAMS), 'since', 'until', 'limit', 'order', 'format']);
const NODE_PARAM = new Set(['node']);
const TYPES = new Set<string>(EVENT_TYPES);

/** Build the request handler; it returns false for paths outside /api/audit. */
export function createAuditApi(opts: AuditApiOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { store, logger } = opts;
  const allowed = new Set([...opts.auditorGroups, ...opts.adminGroups]);
  const authenticate = opts.authenticate ?? createApiAuthenticator(opts);


  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const identity = await authenticate(req);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, `${req.method ?? ''} is not allowed on ${url.pathname} (the audit API is read-only: use GET)`);
    if (!identity.groups.some((g) => allowed.has(g))) {
      throw new ApiError(403, `"${identity.name}" may not read the audit trail (not in api.auditor_groups or api.admin_groups)`);
    }
    switch (url.pathname) {
      case `${AUDIT_API_PREFIX}/events`: {
        const q = eventQuery(url.searchParams);
        const rows = await store.search(q.filter, q.limit, q.order);
        if (q.format === 'json') return send(res, 200, 'application/json', jsonArray(rows));
        return send(res, 200, 'application/x-ndjson', ndjson(rows));
      }
      case `${AUDIT_API_PREFIX}/checkpoints`: {
        const params = single(url.searchParams, NODE_PARAM);
        const node = params.get('node');
        const nodes = node !== undefined ? [text('node', node)] : await store.nodes();
        const out = [];
        for (const n of nodes) out.push(...(await store.checkpoints(n)));
        return send(res, 200, 'application/json', JSON.stringify(out));
      }
      case `${AUDIT_API_PREFIX}/export`: {
        const node = single(url.searchParams, NODE_PARAM).get('node');
        const nodes = node !== undefined ? [text('node', node)] : undefined;
        const name = `gatehouse-audit-${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}.jsonl`;
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'content-disposition': `attachment; filename="${name}"`, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
        if (req.method === 'HEAD') return void res.end();
        // Through a PassThrough: if the client goes away, pipeline fails it and the export stops.
        const out = new PassThrough({ highWaterMark: 1 << 20 });
        const sent = pipeline(out, res);
        try {
          await writeExport(store, out, { publicKeys: opts.publicKeys ?? {}, nodes });
          out.end();
        } catch (err) {
          out.destroy(err as Error);
        }
        await sent;
        return;
      }
      default:
        throw new ApiError(404, `not found: ${url.pathname} (see ${AUDIT_API_PREFIX}/events, /checkpoints and /export)`);
    }
  };

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://gatehouse');
    if (url.pathname !== AUDIT_API_PREFIX && !url.pathname.startsWith(`${AUDIT_API_PREFIX}/`)) return false;
    handle(req, res, url).catch((err: unknown) => sendError(res, err, logger, url.pathname));
    return true;
  };
}

interface EventQuery {
  readonly filter: AuditFilter;
  readonly limit: number;
  readonly order: 'asc' | 'desc';
  readonly format: 'ndjson' | 'json';
}

/** Parse and validate the parameters of /api/audit/events. */
function eventQuery(sp: URLSearchParams): EventQuery {
  const params = single(sp, EVENT_PARAMS);
  const filter: Record<string, string | number> = {};
  for (const [param, field] of Object.entries(FILTER_PARAMS)) {
    const v = params.get(param);
    if (v !== undefined) filter[field] = text(param, v);
  }
  if (filter.type !== undefined && !TYPES.has(filter.type as string)) throw new ApiError(400, `type: unknown event type "${filter.type}" (one of ${EVENT_TYPES.join(', ')})`);
  const since = params.get('since');
  const until = params.get('until');
  if (since !== undefined) filter.since = instant('since', since);
  if (until !== undefined) filter.until = instant('until', until);
  if (since !== undefined && until !== undefined && (filter.since as number) >= (filter.until as number)) throw new ApiError(400, 'until: must be later than since');
  const limitText = params.get('limit');
  let limit = DEFAULT_EVENT_LIMIT;
  if (limitText !== undefined) {
    limit = /^\d{1,9}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= MAX_EVENT_LIMIT)) throw new ApiError(400, `limit: expected an integer from 1 to ${MAX_EVENT_LIMIT}, got "${limitText}"`);
  }
  const order = params.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw new ApiError(400, `order: expected "asc" or "desc", got "${order}"`);
  const format = params.get('format') ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'json') throw new ApiError(400, `format: expected "ndjson" or "json", got "${format}"`);
  return { filter: filter as AuditFilter, limit, order, format };
}

/** The parameters as a map, refusing unknown and repeated ones. */
function single(sp: URLSearchParams, known: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of sp) {
    if (!known.has(k)) throw new ApiError(400, `${k}: unknown parameter (expected one of ${[...known].join(', ')})`);
    if (out.has(k)) throw new ApiError(400, `${k}: given more than once`);
    out.set(k, v);
  }
  return out;
}

function text(param: string, v: string): string {
  if (v === '') throw new ApiError(400, `${param}: must not be empty`);
  if (v.length > MAX_VALUE_LENGTH) throw new ApiError(400, `${param}: longer than ${MAX_VALUE_LENGTH} characters`);
  return v;
}

/** Epoch milliseconds, or an ISO 8601 date or date-time. */
function instant(param: string, v: string): number {
  const ms = /^\d{1,15}$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) throw new ApiError(400, `${param}: expected epoch milliseconds or an ISO 8601 time such as 2024-05-01T12:00:00Z, got "${v}"`);
  return ms;
}

/** Canonical bodies, one per line. */
function ndjson(rows: readonly StoredEvent[]): string {
  let out = '';
  for (const r of rows) out += `${r.body}\n`;
  return out;
}

/** The stored bodies are JSON already: joined, they are the array of events. */
function jsonArray(rows: readonly StoredEvent[]): string {
  return `[${rows.map((r) => r.body).join(',')}]`;
}
