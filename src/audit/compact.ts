/**
 * Compact statement events: what the proxy's event loop hands the writer thread for the events it
 * records tens of thousands of times a second. Instead of a canonical body it sends numbers, short
 * strings and the ids of fragments it registered once (per session, per decision, per statement
 * shape); the writer thread assembles the canonical JSON, with its keys already in canonical
 * order. So the event loop builds no large string per statement and clones little: measured under
 * pgbench, building and cloning bodies there cost ~10% of its time, most of it garbage collection.
 *
 * A compact event occupies the same 13 slots of a batch as a full one (COLUMN_COUNT + 1), its
 * first slot a number tag instead of the writer's name:
 *   [tag, seq, ts, sessionFragment, decisionFragment, statementFragment | statement JSON,
 *    duration_ms, rows, affects, command, sqlstate, refused_by, masked_columns JSON]
 */
import type { ChainEncoder } from './chain.js';
import { COLUMN_COUNT } from './event.js';

export const COMPACT_STATEMENT = 1;
export const COMPACT_INTENT = 2;

/** Fragments of one session (re-registered when its application_name changes). */
export interface SessionFragment {
  readonly t: 's';
  /** `{"client":{...}` */
  readonly client: string;
  /** `,"connection":{...}` */
  readonly connection: string;
  /** `,"identity":{...}` */
  readonly identity: string;
  /** `,"session":"..."` */
  readonly session: string;
  readonly sessionId: string;
  readonly identityName: string;
  readonly onBehalfOf: string | null;
  readonly connectionName: string;
  readonly environment: string;
}

/** Fragments of one decision. */
export interface DecisionFragment {
  readonly t: 'd';
  /** `,"decision":{...}` */
  readonly decision: string;
  readonly kind: string;
  /** Tables as the indexed column holds them (",a,b,"), or null. */
  readonly tables: string | null;
  readonly action: string;
}

/** A statement's `,"statement":{...}` fragment (normalized text: one per decision and protocol). */
export interface StatementFragment {
  readonly t: 'x';
  readonly statement: string;
}

export type Fragment = SessionFragment | DecisionFragment | StatementFragment;

const str = JSON.stringify;
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
const utf8OrNull = (s: string | null): Buffer | null => (s === null ? null : utf8(s));

/**
 * A fragment as the writer thread keeps it: the body pieces and the indexed columns' values as
 * UTF-8 bytes, encoded once. Column values go to the store as bytes too (SQLite binds a buffer
 * without converting a string, and stores it as the same TEXT; bench/audit.ts).
 */
export type EncodedFragment =
  | EncodedSession
  | { readonly t: 'd'; readonly decision: Buffer; readonly kind: Buffer; readonly tables: Buffer | null; readonly action: Buffer }
  | { readonly t: 'x'; readonly statement: Buffer };

export interface EncodedSession {
  readonly t: 's';
  readonly client: Buffer;
  readonly connection: Buffer;
  readonly identity: Buffer;
  readonly session: Buffer;
  readonly sessionId: Buffer;
  readonly identityName: Buffer;
  readonly onBehalfOf: Buffer | null;
  readonly connectionName: Buffer;
  readonly environment: Buffer;
  /** The session's last plain statement event, as pieces joined once (see writeCompact). */
  last: Template | undefined;
  /** Column set ids (EventBatch.sets) of this session's statement and intent events, by decision. */
  readonly sets: Map<EncodedFragment, number>;
  readonly intentSets: Map<EncodedFragment, number>;
}

/**
 * What a session's statement events share while it repeats a statement with the same outcome
 * (decision, statement fragment, command tag, rows or rows_affected; no masked columns, refusal
 * or SQLSTATE), as three runs of bytes between the numbers that change.
 */
interface Template {
  readonly decision: EncodedFragment;
  readonly statement: Buffer;
  readonly command: string | null;
  readonly affects: boolean;
  /** client, command, connection, decision, then the duration_ms key. */
  readonly head: Buffer;
  /** identity, node, then the rows or rows_affected key. */
  readonly middle: Buffer;
  /** session, statement, then the ts key. */
  readonly tail: Buffer;
}

export function encodeFragment(f: Fragment): EncodedFragment {
  switch (f.t) {
    case 's':
      return { t: 's', client: utf8(f.client), connection: utf8(f.connection), identity: utf8(f.identity), session: utf8(f.session), sessionId: utf8(f.sessionId), identityName: utf8(f.identityName), onBehalfOf: utf8OrNull(f.onBehalfOf), connectionName: utf8(f.connectionName), environment: utf8(f.environment), last: undefined, sets: new Map(), intentSets: new Map() };
    case 'd':
      return { t: 'd', decision: utf8(f.decision), kind: utf8(f.kind), tables: utf8OrNull(f.tables), action: utf8(f.action) };
    case 'x':
      return { t: 'x', statement: utf8(f.statement) };
  }
}

/** The writer's constants for compact events. */
export interface CompactWriter {
  /** The writer's name, as the node column holds it. */
  readonly node: Buffer;
  /** `,"node":"<writer>"` */
  readonly nodeFragment: Buffer;
  /** Last column set id given out. */
  lastSet: number;
}

export function compactWriter(node: string): CompactWriter {
  return { node: utf8(node), nodeFragment: utf8(`,"node":${str(node)}`), lastSet: -1 };
}

const STATEMENT = utf8('statement');
const INTENT = utf8('statement.intent');

const DURATION = utf8(',"duration_ms":');
const ROWS = utf8(',"rows":');
const ROWS_AFFECTED = utf8(',"rows_affected":');
const TS = utf8(',"ts":');
const NO_BYTES = Buffer.alloc(0);

/** `,"command":"..."` (nothing for no or an empty command tag). */
function commandBytes(command: string | null): Buffer {
  return command ? utf8(`,"command":${str(command)}`) : NO_BYTES;
}

/**
 * Write the canonical body of the compact event at `rows[base]` into `enc` (its keys in canonical
 * order) and replace the event's slots by the full row's columns, in place. Returns the event's
 * chain hash; `bodies[i]` receives the body's bytes and `sets[i]` its column set id.
 */
export function writeCompact(enc: ChainEncoder, w: CompactWriter, rows: unknown[], base: number, fragments: ReadonlyMap<number, EncodedFragment>, bodies: Buffer[], sets: number[], i: number): string {
  const tag = rows[base] as number;
  const seq = rows[base + 1] as number;
  const ts = rows[base + 2] as number;
  const f = fragments.get(rows[base + 3] as number);
  const d = fragments.get(rows[base + 4] as number);
  if (f?.t !== 's' || d?.t !== 'd') throw new Error(`audit event ${seq}: unknown fragment`);
  const stmtRef = rows[base + 5];
  let statement: Buffer | string;
  if (typeof stmtRef === 'number') {
    const x = fragments.get(stmtRef);
    if (x?.t !== 'x') throw new Error(`audit event ${seq}: unknown statement fragment`);
    statement = x.statement;
  } else {
    statement = stmtRef as string;
  }
  const fixed = f.client.length + f.connection.length + f.identity.length + f.session.length + d.decision.length + w.nodeFragment.length + 256;
  if (tag === COMPACT_INTENT) {
    enc.begin(fixed + (typeof statement === 'string' ? statement.length * 3 : statement.length));
    enc.bytes(f.client);
    enc.bytes(f.connection);
    enc.bytes(d.decision);
    enc.bytes(f.identity);
    enc.bytes(w.nodeFragment);
    enc.ascii(',"seq":');
    enc.int(seq);
    enc.bytes(f.session);
    if (typeof statement === 'string') enc.utf8(statement);
    else enc.bytes(statement);
    enc.ascii(',"ts":');
    enc.int(ts);
    enc.ascii(',"type":"statement.intent"}');
    rows[base + 3] = INTENT;
  } else {
    const duration = rows[base + 6] as number;
    const n = rows[base + 7] as number;
    const affects = rows[base + 8] === 1;
    const command = rows[base + 9] as string | null;
    const sqlstate = rows[base + 10] as string | null;
    const refusedBy = rows[base + 11] as string | null;
    const masked = rows[base + 12] as string | null;
    const plain = masked === null && refusedBy === null && sqlstate === null && typeof statement !== 'string';
    let t = f.last;
    if (plain && (t === undefined || t.decision !== d || t.statement !== statement || t.command !== command || t.affects !== affects)) {
      // A new repeat candidate: join its pieces once.
      t = f.last = {
        decision: d,
        statement: statement as Buffer,
        command,
        affects,
        head: Buffer.concat([f.client, commandBytes(command), f.connection, d.decision, DURATION]),
        middle: Buffer.concat([f.identity, w.nodeFragment, affects ? ROWS_AFFECTED : ROWS]),
        tail: Buffer.concat([f.session, statement as Buffer, TS]),
      };
    }
    if (plain) {
      const tt = t!;
      enc.begin(tt.head.length + tt.middle.length + tt.tail.length + 128);
      enc.bytes(tt.head);
      enc.decimal(duration);
      enc.bytes(tt.middle);
      enc.int(n);
      enc.ascii(',"seq":');
      enc.int(seq);
      enc.bytes(tt.tail);
      enc.int(ts);
      enc.ascii(',"type":"statement"}');
    } else {
      // Strings other than fragments are JSON-escaped, so at most 6 bytes per UTF-16 unit.
      const strings = (command?.length ?? 0) + (sqlstate?.length ?? 0) + (refusedBy?.length ?? 0) + (masked?.length ?? 0) + (typeof statement === 'string' ? statement.length : 0);
      enc.begin(fixed + strings * 6 + (typeof statement === 'string' ? 0 : statement.length));
      enc.bytes(f.client);
      if (command) {
        enc.ascii(',"command":');
        enc.utf8(str(command));
      }
      enc.bytes(f.connection);
      enc.bytes(d.decision);
      enc.bytes(DURATION);
      enc.decimal(duration);
      enc.bytes(f.identity);
      if (masked !== null) {
        enc.ascii(',"masked_columns":');
        enc.utf8(masked);
      }
      enc.bytes(w.nodeFragment);
      if (refusedBy !== null) {
        enc.ascii(',"refused_by":');
        enc.utf8(str(refusedBy));
      }
      enc.bytes(affects ? ROWS_AFFECTED : ROWS);
      enc.int(n);
      enc.ascii(',"seq":');
      enc.int(seq);
      enc.bytes(f.session);
      if (sqlstate !== null) {
        enc.ascii(',"sqlstate":');
        enc.utf8(str(sqlstate));
      }
      if (typeof statement === 'string') enc.utf8(statement);
      else enc.bytes(statement);
      enc.bytes(TS);
      enc.int(ts);
      enc.ascii(',"type":"statement"}');
    }
    rows[base + 3] = STATEMENT;
  }
  // Same session fragment, decision and type: same columns.
  const byDecision = tag === COMPACT_INTENT ? f.intentSets : f.sets;
  let set = byDecision.get(d);
  if (set === undefined) byDecision.set(d, (set = ++w.lastSet));
  sets[i] = set;
  rows[base] = w.node;
  rows[base + 4] = f.sessionId;
  rows[base + 5] = f.identityName;
  rows[base + 6] = f.onBehalfOf;
  rows[base + 7] = f.connectionName;
  rows[base + 8] = f.environment;
  rows[base + 9] = d.kind;
  rows[base + 10] = d.tables;
  rows[base + 11] = d.action;
  rows[base + COLUMN_COUNT] = null;
  return enc.end(bodies, i);
}
