/**
 * Tokens Gatehouse issues to agents and services. A token is `ghtk_<id>_<secret>`: only
 * SHA-256(secret) is stored (the secret has 256 bits of entropy, so no salt or stretching is
 * needed), compared in constant time; the token itself is shown once, at creation.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { IdentityKind } from '../identity/identity.js';

export const TOKEN_PREFIX = 'ghtk_';

export interface TokenRecord {
  readonly id: string;
  readonly kind: IdentityKind;
  readonly name: string;
  readonly onBehalfOf: string | null;
  readonly model: string | null;
  readonly groups: readonly string[];
  /** Connections the token may use; null = any. */
  readonly connections: readonly string[] | null;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
  readonly lastUsedAt: number | null;
}

export interface NewToken {
  kind: IdentityKind;
  name: string;
  onBehalfOf?: string;
  model?: string;
  groups?: readonly string[];
  connections?: readonly string[];
  ttlMs: number;
}

export type TokenCheck = { readonly ok: true; readonly token: TokenRecord } | { readonly ok: false; readonly reason: string };

export interface TokenStore {
  /** Create a token; returns the record and the token text (shown once). */
  create(t: NewToken, now?: number): Promise<{ record: TokenRecord; token: string }>;
  list(): Promise<TokenRecord[]>;
  /** Revoke by id; false if there is no such token. */
  revoke(id: string, now?: number): Promise<boolean>;
  /** Check a presented token; records the use when valid. */
  verify(token: string, now?: number): Promise<TokenCheck>;
}

export const hash = (secret: string): Buffer => createHash('sha256').update(secret).digest();

/** A tokens table row, as both stores return it. */
export interface TokenRow {
  id: string;
  secret_hash: string;
  kind: IdentityKind;
  name: string;
  on_behalf_of: string | null;
  model: string | null;
  groups: string;
  connections: string | null;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export function tokenRecord(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    onBehalfOf: r.on_behalf_of,
    model: r.model,
    groups: JSON.parse(r.groups) as string[],
    connections: r.connections === null ? null : (JSON.parse(r.connections) as string[]),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

export class SqliteTokenStore implements TokenStore {
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  async create(t: NewToken, now = Date.now()): Promise<{ record: TokenRecord; token: string }> {
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    this.#db
      .prepare(
        `INSERT INTO tokens (id, secret_hash, kind, name, on_behalf_of, model, groups, connections, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, hash(secret).toString('hex'), t.kind, t.name, t.onBehalfOf ?? null, t.model ?? null, JSON.stringify(t.groups ?? []), t.connections ? JSON.stringify(t.connections) : null, now, now + t.ttlMs);
    const row = this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as TokenRow;
    return { record: tokenRecord(row), token: `${TOKEN_PREFIX}${id}_${secret}` };
  }

  async list(): Promise<TokenRecord[]> {
    return (this.#db.prepare('SELECT * FROM tokens ORDER BY created_at').all() as TokenRow[]).map(tokenRecord);
  }

  async revoke(id: string, now = Date.now()): Promise<boolean> {
    return this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0 || this.#db.prepare('SELECT 1 FROM tokens WHERE id = ?').get(id) !== undefined;
  }

  async verify(token: string, now = Date.now()): Promise<TokenCheck> {
    const m = /^ghtk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return { ok: false, reason: 'not a Gatehouse token' };
    const row = this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(m[1]) as TokenRow | undefined;
    const presented = hash(m[2]!);
    // Compare against a dummy hash when the id is unknown, so timing does not tell ids apart.
    const stored = row ? Buffer.from(row.secret_hash, 'hex') : hash('');
    if (!timingSafeEqual(presented, stored) || !row) return { ok: false, reason: 'unknown token or wrong secret' };
    if (row.revoked_at !== null) return { ok: false, reason: `token ${row.id} was revoked` };
    if (row.expires_at <= now) return { ok: false, reason: `token ${row.id} expired` };
    this.#db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now, row.id);
    return { ok: true, token: tokenRecord({ ...row, last_used_at: now }) };
  }
}
