/**
 * The audit API on the HTTP listener: read the trail without database or file access.
 *
 *   GET /api/audit/events?identity=&on_behalf_of=&connection=&environment=&kind=&table=
 *       &decision=&type=&session=&node=&since=&until=&limit=&order=&format=
 *   GET /api/audit/checkpoints?node=
 *   GET /api/audit/export?node=      (the export file of `gatehouse audit export`, streamed)
 *
 * Authentication, per request:
 *   - `Authorization: Basic base64(user:password)`: a local user's password, checked against
 *     their SCRAM-SHA-256 verifier (PBKDF2, so a success is remembered for a minute under an
 *     HMAC of the pair); for a name that is not a local user, the password may be a Gatehouse
 *     token or a JWT, as on the PostgreSQL listener;
 *   - `Authorization: Bearer <token>`: a Gatehouse token (its name is looked up in the store) or
 *     a JWT (its `sub` claim is the user name; a JWT without `sub` needs Basic with the name).
 * The identity's groups must meet `api.auditor_groups` or `api.admin_groups`. Failed attempts
 * count against the user name and the client address like database logins.
 * Reads are not audited in this version.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import type { Logger } from 'pino';
import { EVENT_TYPES } from '../audit/event.js';
import { writeExport } from '../audit/export.js';
import type { CredentialAuthenticator } from '../identity/credentials.js';
import type { Identity } from '../identity/identity.js';
import { looksLikeJwt } from '../identity/jwt.js';
import type { LocalUsers } from '../identity/local-users.js';
import { AuthRateLimiter } from '../identity/rate-limit.js';
import { saslprep } from '../identity/saslprep.js';
import type { ScramVerifier } from '../identity/scram.js';
import type { AuditFilter, AuditStore, StoredEvent } from '../store/audit.js';
import { TOKEN_PREFIX } from '../store/tokens.js';

export interface AuditApiOptions {
  readonly store: AuditStore;
  readonly users: LocalUsers;
  /** Gatehouse tokens and JWTs; null when neither is configured. */
  readonly credentials: CredentialAuthenticator | null;
  /** Groups that may read the trail. */
  readonly auditorGroups: readonly string[];
  /** Groups that may use every API (including this one). */
  readonly adminGroups: readonly string[];
  readonly logger: Logger;
  /** Failed-authentication limiter; default 5 failures per user, 50 per address, per minute. */
  readonly limiter?: AuthRateLimiter;
  /** How long a verified Basic password is remembered (default 60 s; 0 = never). */
  readonly passwordCacheMs?: number;
  /** PEM public keys by key id, copied into the header of /api/audit/export (a convenience, not a trust anchor). */
  readonly publicKeys?: Readonly<Record<string, string>>;
}

/** Route prefix handled by the audit API. */
export const AUDIT_API_PREFIX = '/api/audit';
/** Default and largest `limit` of /api/audit/events. */
export const DEFAULT_EVENT_LIMIT = 1000;
export const MAX_EVENT_LIMIT = 10_000;

const REALM = 'Basic realm="gatehouse"';
const MAX_VALUE_LENGTH = 1024;
const CACHE_MAX_ENTRIES = 1000;
const pbkdf2Async = promisify(pbkdf2);

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

/** A request the API answers with an error status (stays inside this module). */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface CachedPassword {
  readonly verifier: ScramVerifier;
  readonly identity: Identity;
  readonly expires: number;
}

/** Build the request handler; it returns false for paths outside /api/audit. */
export function createAuditApi(opts: AuditApiOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { store, users, credentials, logger } = opts;
  const allowed = new Set([...opts.auditorGroups, ...opts.adminGroups]);
  const limiter = opts.limiter ?? new AuthRateLimiter({ maxFailures: 5, maxFailuresPerAddress: 50, windowMs: 60_000, lockoutMs: 60_000 });
  const cacheMs = opts.passwordCacheMs ?? 60_000;
  const cache = new Map<string, CachedPassword>();
  /** Keys the cache so that it never holds anything a password can be checked against offline quickly. */
  const cacheSecret = randomBytes(32);

  /** Check a password against a SCRAM verifier: StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")). */
  const passwordMatches = async (password: string, v: ScramVerifier): Promise<boolean> => {
    const salted = await pbkdf2Async(saslprep(password), v.salt, v.iterations, 32, 'sha256');
    const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
    return storedKey.length === v.storedKey.length && timingSafeEqual(storedKey, v.storedKey);
  };

  const localUser = async (name: string, password: string): Promise<Identity | null> => {
    const user = users.get(name);
    const key = createHmac('sha256', cacheSecret).update(name).update('\0').update(password).digest('base64');
    const hit = cache.get(key);
    if (hit !== undefined && user !== undefined && hit.verifier === user.verifier && hit.expires > Date.now()) return hit.identity;
    // Unknown names are checked against a decoy verifier, so timing does not reveal them.
    const ok = await passwordMatches(password, users.verifierFor(name));
    if (!ok || user === undefined) return null;
    if (cacheMs > 0) {
      if (cache.size >= CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value!);
      cache.set(key, { verifier: user.verifier, identity: user.identity, expires: Date.now() + cacheMs });
    }
    return user.identity;
  };

  /** The user name a bearer token speaks for, or undefined. */
  const bearerName = async (token: string): Promise<string | undefined> => {
    if (token.startsWith(TOKEN_PREFIX)) {
      const check = await credentials?.tokens?.verify(token);
      return check?.ok ? check.token.name : undefined;
    }
    if (looksLikeJwt(token)) {
      try {
        const sub = decodeJwt(token).sub;
        return typeof sub === 'string' && sub !== '' ? sub : undefined;
      } catch {
        return undefined;
      }
    }
    return undefined;
  };

  const viaCredentials = async (secret: string, name: string): Promise<Identity | null> => {
    if (credentials === null || !credentials.enabled) return null;
    try {
      return (await credentials.authenticate(secret, name)).identity;
    } catch {
      return null;
    }
  };

  const authenticate = async (req: IncomingMessage): Promise<Identity> => {
    const header = req.headers.authorization;
    if (header === undefined) throw new ApiError(401, 'authentication required (HTTP Basic, or a Bearer token)');
    const address = req.socket.remoteAddress ?? '';
    const sp = header.indexOf(' ');
    const scheme = sp < 0 ? header : header.slice(0, sp);
    const value = sp < 0 ? '' : header.slice(sp + 1).trim();
    let name: string | undefined;
    let limitKey = '';
    let identity: Identity | null = null;
    if (/^basic$/i.test(scheme)) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 1) throw new ApiError(401, 'malformed Basic credentials (expected base64 of "user:password")');
      name = limitKey = decoded.slice(0, colon);
      if (limiter.locked(limitKey, address)) throw new ApiError(429, 'too many failed authentication attempts; try again later');
      const secret = decoded.slice(colon + 1);
      // As on the PostgreSQL listener: local users by password, other names by token or JWT.
      identity = users.get(name) === undefined && credentials?.enabled ? await viaCredentials(secret, name) : await localUser(name, secret);
    } else if (/^bearer$/i.test(scheme)) {
      // A bearer token names nobody until it is verified: failures count against the address only.
      limitKey = `bearer@${address}`;
      if (limiter.locked(limitKey, address)) throw new ApiError(429, 'too many failed authentication attempts; try again later');
      name = await bearerName(value);
      if (name !== undefined) identity = await viaCredentials(value, name);
    } else {
      throw new ApiError(401, `unsupported authorization scheme "${scheme}" (use Basic or Bearer)`);
    }
    if (identity === null) {
      limiter.fail(limitKey, address);
      logger.info({ event: 'api_auth_failed', user: name, address }, 'audit API: authentication failed');
      throw new ApiError(401, 'authentication failed');
    }
    limiter.succeed(limitKey);
    return identity;
  };

  const send = (res: ServerResponse, status: number, contentType: string, body: string, extra: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const identity = await authenticate(req);
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
    handle(req, res, url).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) {
        return send(res, err.status, 'application/json', JSON.stringify({ error: err.message }), err.status === 401 ? { 'www-authenticate': REALM } : {});
      }
      logger.error({ event: 'api_error', err, path: url.pathname }, 'audit API request failed');
      send(res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
    });
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
