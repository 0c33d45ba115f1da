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

/**
 * Replace the compact event at `rows[base]` by the full row (columns and canonical body), in
 * place. `nodeFragment` is `,"node":"<writer>"`.
 */
export function expandCompact(rows: unknown[], base: number, node: string, nodeFragment: string, fragments: ReadonlyMap<number, Fragment>): void {
  const tag = rows[base] as number;
  const seq = rows[base + 1] as number;
  const ts = rows[base + 2] as number;
  const f = fragments.get(rows[base + 3] as number) as SessionFragment | undefined;
  const d = fragments.get(rows[base + 4] as number) as DecisionFragment | undefined;
  const stmtRef = rows[base + 5];
  if (f === undefined || d === undefined) throw new Error(`audit event ${seq}: unknown fragment`);
  const statement = typeof stmtRef === 'number' ? (fragments.get(stmtRef) as StatementFragment | undefined)?.statement : (stmtRef as string);
  if (statement === undefined) throw new Error(`audit event ${seq}: unknown statement fragment`);
  let b: string;
  let type: string;
  if (tag === COMPACT_INTENT) {
    type = 'statement.intent';
    b = `${f.client}${f.connection}${d.decision}${f.identity}${nodeFragment},"seq":${seq}${f.session}${statement},"ts":${ts},"type":"statement.intent"}`;
  } else {
    type = 'statement';
    const duration = rows[base + 6] as number;
    const n = rows[base + 7] as number;
    const affects = rows[base + 8] === 1;
    const command = rows[base + 9] as string | null;
    const sqlstate = rows[base + 10] as string | null;
    const refusedBy = rows[base + 11] as string | null;
    const masked = rows[base + 12] as string | null;
    b = f.client;
    // Command tags are keywords and digits; escape only if one ever holds a quote or backslash.
    if (command) b += command.includes('"') || command.includes('\\') ? `,"command":${str(command)}` : `,"command":"${command}"`;
    b += `${f.connection}${d.decision},"duration_ms":${duration}${f.identity}`;
    if (masked !== null) b += `,"masked_columns":${masked}`;
    b += nodeFragment;
    if (refusedBy !== null) b += `,"refused_by":${str(refusedBy)}`;
    b += affects ? `,"rows_affected":${n}` : `,"rows":${n}`;
    b += `,"seq":${seq}${f.session}`;
    if (sqlstate !== null) b += `,"sqlstate":${str(sqlstate)}`;
    b += `${statement},"ts":${ts},"type":"statement"}`;
  }
  rows[base] = node;
  rows[base + 3] = type;
  rows[base + 4] = f.sessionId;
  rows[base + 5] = f.identityName;
  rows[base + 6] = f.onBehalfOf;
  rows[base + 7] = f.connectionName;
  rows[base + 8] = f.environment;
  rows[base + 9] = d.kind;
  rows[base + 10] = d.tables;
  rows[base + 11] = d.action;
  rows[base + COLUMN_COUNT] = b;
}
