/**
 * The audit event: its catalogue, its fields, and its canonical encoding.
 *
 * An event is a JSON object. Its canonical form (what is hashed, stored and exported) has keys
 * sorted by UTF-16 code units at every level, no whitespace, no undefined members, and JSON's own
 * string and number encoding; for the values events hold (strings, integers, finite decimals,
 * booleans, arrays, objects) this is RFC 8785 (JCS). The chain hashes these exact bytes, so any
 * change to a stored event is detectable. docs/audit.md lists every type and field.
 */

/** Every event type Gatehouse records. */
export const EVENT_TYPES = [
  'session.start',
  'session.end',
  'session.fail',
  'auth.success',
  'auth.failure',
  'statement',
  'statement.intent',
  'breaker.trip',
  'approval.request',
  'approval.approve',
  'approval.deny',
  'approval.expire',
  'approval.cancel',
  'approval.execute',
  'policy.reload',
  'policy.reload_failed',
  'token.issue',
  'token.revoke',
  'node.start',
  'node.stop',
  'audit.retention',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Who, as recorded on an event. */
export interface AuditIdentity {
  readonly kind: string;
  readonly name: string;
  readonly groups: readonly string[];
  readonly auth_method?: string;
  readonly credential_id?: string;
  readonly on_behalf_of?: string;
  readonly model?: string;
}

/** A matching rule, as recorded on a statement's decision. */
export interface AuditRuleMatch {
  readonly id: string;
  readonly action: string;
  readonly mode: string;
  /** Compliance controls the rule names (e.g. "SOC2:CC6.1"), when it names any. */
  readonly controls?: readonly string[];
}

/** One audit event (fields absent when they do not apply). */
export interface AuditEvent {
  /** Per-writer sequence number, from 1, without gaps. */
  readonly seq: number;
  /** UTC epoch milliseconds. */
  readonly ts: number;
  /** The writer: node id (and worker index when a node runs several workers). */
  readonly node: string;
  readonly type: EventType;
  readonly session?: string;
  readonly identity?: AuditIdentity;
  readonly connection?: { readonly name: string; readonly environment: string };
  readonly client?: { readonly address: string; readonly application_name?: string; readonly tls?: boolean };
  readonly statement?: {
    /** Normalized text: literals replaced by `?` (or the full text when configured). */
    readonly text: string;
    readonly fingerprint: string;
    readonly kind: string;
    readonly tables: readonly string[];
    readonly protocol: string;
  };
  readonly decision?: { readonly action: string; readonly rule?: string; readonly matches: readonly AuditRuleMatch[] };
  readonly refused_by?: string;
  readonly rows?: number;
  readonly rows_affected?: number;
  readonly duration_ms?: number;
  readonly command?: string;
  readonly sqlstate?: string;
  readonly masked_columns?: readonly string[];
  /** Type-specific details (reason, files, token id, deleted range, ...). */
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** An event before the writer numbered it. */
export type EventInput = Omit<AuditEvent, 'seq' | 'ts' | 'node'> & { readonly ts?: number };

/**
 * Canonical JSON (sorted keys, no whitespace, undefined members omitted). Throws on values JSON
 * cannot represent faithfully (non-finite numbers, bigint, functions).
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot encode a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

/** The indexed columns of an event, as stored beside its canonical body (and checked by verify). */
export interface EventColumns {
  readonly node: string;
  readonly seq: number;
  readonly ts: number;
  readonly type: string;
  readonly session: string | null;
  readonly identity: string | null;
  readonly on_behalf_of: string | null;
  readonly connection: string | null;
  readonly environment: string | null;
  readonly kind: string | null;
  /** Tables as ",a,b," so a table is found with LIKE '%,name,%'. */
  readonly tables: string | null;
  readonly decision: string | null;
}

export function eventColumns(e: AuditEvent): EventColumns {
  return {
    node: e.node,
    seq: e.seq,
    ts: e.ts,
    type: e.type,
    session: e.session ?? null,
    identity: e.identity?.name ?? null,
    on_behalf_of: e.identity?.on_behalf_of ?? null,
    connection: e.connection?.name ?? null,
    environment: e.connection?.environment ?? null,
    kind: e.statement?.kind ?? null,
    tables: e.statement && e.statement.tables.length > 0 ? `,${e.statement.tables.join(',')},` : null,
    decision: e.decision?.action ?? null,
  };
}

/** Column order of `EventColumns` in the flat arrays handed to the writer thread. */
export const COLUMN_COUNT = 12;
