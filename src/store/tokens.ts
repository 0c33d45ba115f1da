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

/** The tokens columns a new token is inserted with, in the order of `newTokenRow().values`. */
export const TOKEN_INSERT_COLUMNS = 'id, secret_hash, kind, name, on_behalf_of, model, groups, connections, created_at, expires_at';

/** A new token: its id and secret (shown once) and its row values (only the secret's hash). */
export function newTokenRow(t: NewToken, now: number): { id: string; token: string; values: unknown[] } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const values = [id, hash(secret).toString('hex'), t.kind, t.name, t.onBehalfOf ?? null, t.model ?? null, JSON.stringify(t.groups ?? []), t.connections ? JSON.stringify(t.connections) : null, now, now + t.ttlMs];
  return { id, token: `${TOKEN_PREFIX}${id}_${secret}`, values };
}

/** The id and secret of a presented token, or null when it is not a Gatehouse token. */
export function splitToken(token: string): { id: string; secret: string } | null {
  const m = /^ghtk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/** Check a presented secret against its row (constant time, even for an unknown id), then revocation and expiry. */
export function checkTokenRow(row: TokenRow | undefined, secret: string, now: number): { ok: false; reason: string } | { ok: true; row: TokenRow } {
  const presented = hash(secret);
  // Compare against a dummy hash when the id is unknown, so timing does not tell ids apart.
  const stored = row ? Buffer.from(row.secret_hash, 'hex') : hash('');
  if (!timingSafeEqual(presented, stored) || !row) return { ok: false, reason: 'unknown token or wrong secret' };
  if (row.revoked_at !== null) return { ok: false, reason: `token ${row.id} was revoked` };
  if (row.expires_at <= now) return { ok: false, reason: `token ${row.id} expired` };
  return { ok: true, row };
}

export class SqliteTokenStore implements TokenStore {
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  async create(t: NewToken, now = Date.now()): Promise<{ record: TokenRecord; token: string }> {
    const { id, token, values } = newTokenRow(t, now);
    this.#db.prepare(`INSERT INTO tokens (${TOKEN_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...values);
    const row = this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as TokenRow;
    return { record: tokenRecord(row), token };
  }

  async list(): Promise<TokenRecord[]> {
    return (this.#db.prepare('SELECT * FROM tokens ORDER BY created_at').all() as TokenRow[]).map(tokenRecord);
  }

  async revoke(id: string, now = Date.now()): Promise<boolean> {
    return this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0 || this.#db.prepare('SELECT 1 FROM tokens WHERE id = ?').get(id) !== undefined;
  }

  async verify(token: string, now = Date.now()): Promise<TokenCheck> {
    const parts = splitToken(token);
    if (parts === null) return { ok: false, reason: 'not a Gatehouse token' };
    const checked = checkTokenRow(this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(parts.id) as TokenRow | undefined, parts.secret, now);
    if (!checked.ok) return checked;
    const row = checked.row;
    this.#db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now, row.id);
    return { ok: true, token: tokenRecord({ ...row, last_used_at: now }) };
  }
}
