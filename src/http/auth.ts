/**
 * Authentication of HTTP API requests, shared by every API on the HTTP listener:
 *   - `Authorization: Basic base64(user:password)`: a local user's password, checked against
 *     their SCRAM-SHA-256 verifier (PBKDF2, so a success is remembered for a minute under an
 *     HMAC of the pair); for a name that is not a local user, the password may be a Gatehouse
 *     token or a JWT, as on the PostgreSQL listener;
 *   - `Authorization: Bearer <token>`: a Gatehouse token (its name is looked up in the store) or
 *     a JWT (its `sub` claim is the user name; a JWT without `sub` needs Basic with the name).
 * Failed attempts count against the user name and the client address like database logins.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import type { Logger } from 'pino';
import type { CredentialAuthenticator } from '../identity/credentials.js';
import type { Identity } from '../identity/identity.js';
import { looksLikeJwt } from '../identity/jwt.js';
import type { LocalUsers } from '../identity/local-users.js';
import { AuthRateLimiter } from '../identity/rate-limit.js';
import { saslprep } from '../identity/saslprep.js';
import type { ScramVerifier } from '../identity/scram.js';
import { TOKEN_PREFIX } from '../store/tokens.js';

export const REALM = 'Basic realm="gatehouse"';
const CACHE_MAX_ENTRIES = 1000;
const pbkdf2Async = promisify(pbkdf2);

/** A request an API answers with an error status and a JSON `{"error": message}`. */
export class ApiError extends Error {
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

export interface ApiAuthOptions {
  readonly users: LocalUsers;
  /** Gatehouse tokens and JWTs; null when neither is configured. */
  readonly credentials: CredentialAuthenticator | null;
  readonly logger: Logger;
  /** Failed-authentication limiter; default 5 failures per user, 50 per address, per minute. */
  readonly limiter?: AuthRateLimiter;
  /** How long a verified Basic password is remembered (default 60 s; 0 = never). */
  readonly passwordCacheMs?: number;
}

/** The identity behind a request, or an ApiError (401, or 429 when locked out). */
export type ApiAuthenticator = (req: IncomingMessage) => Promise<Identity>;

export function createApiAuthenticator(opts: ApiAuthOptions): ApiAuthenticator {
  const { users, credentials, logger } = opts;
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
      logger.info({ event: 'api_auth_failed', user: name, address, path: req.url?.split('?')[0] }, 'API: authentication failed');
      throw new ApiError(401, 'authentication failed');
    }
    limiter.succeed(limitKey);
    return identity;
  };

  return authenticate;
}

/** Send a complete response with the API's headers. */
export function send(res: ServerResponse, status: number, contentType: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
  res.end(body);
}

/** Answer a failed request: an ApiError with its status, anything else as 500 (logged). */
export function sendError(res: ServerResponse, err: unknown, logger: Logger, path: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof ApiError) {
    send(res, err.status, 'application/json', JSON.stringify({ error: err.message }), err.status === 401 ? { 'www-authenticate': REALM } : {});
    return;
  }
  logger.error({ event: 'api_error', err, path }, 'API request failed');
  send(res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
}
