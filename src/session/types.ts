/**
 * Engine-neutral contracts between the engines and the statement pipeline. An engine turns wire
 * messages into these values; the pipeline's stages (policy, masking, audit, logging, metrics)
 * see only these, never bytes or sockets.
 */
import type { ResolvedConnection } from '../config/load.js';
import type { Identity } from '../identity/identity.js';

export type TxState = 'idle' | 'transaction' | 'failed';

export interface ClientInfo {
  /** Remote address of the client socket. */
  readonly address: string;
  readonly port: number;
  /** Whether the client connection is TLS. */
  readonly tls: boolean;
}

/** Where a result column comes from. */
export interface ColumnSource {
  readonly schema: string;
  readonly table: string;
  readonly column: string;
}

/**
 * The database's catalog as the pipeline needs it: which table column a result column is, and
 * which columns a table has. Engines implement it (PostgreSQL: table OIDs resolved through
 * pg_catalog and cached; MySQL: the column metadata names them directly).
 */
export interface Catalog {
  /** The column behind (tableId, columnId); undefined until its table is loaded, null if it is not a table column. */
  column(tableId: number, columnId: number): ColumnSource | null | undefined;
  /** The defining query of a view (loaded with `column`); null for a table. */
  viewDefinition(tableId: number): string | null | undefined;
  /** The columns of a table by name as written in SQL (schema-qualified or not); undefined until loaded, null if unknown. */
  tableColumns(name: string): readonly ColumnSource[] | null | undefined;
  /**
   * Whether a call of a function by this unqualified name runs a built-in (pg_catalog) function
   * that no function of another schema shares the name of; undefined until loaded.
   */
  builtinFunction(name: string): boolean | undefined;
  /** Load what `column` and `tableColumns` need for these tables (ids and names), and with `functions` what `builtinFunction` needs. */
  load(tableIds: readonly number[], names: readonly string[], functions?: boolean): Promise<void>;
  /** Forget everything (after DDL). */
  invalidate(): void;
}

/** One client session, from authentication to close. */
export interface SessionInfo {
  /** Unique per node: "<node>-<counter>". */
  readonly id: string;
  readonly identity: Identity;
  readonly connection: ResolvedConnection;
  readonly client: ClientInfo;
  /** application_name from the startup packet (updated by ParameterStatus). */
  applicationName: string;
  /** Transaction state as last reported by the database. */
  txState: TxState;
  /** The upstream role assumed for this identity (connections[].roles), if any. */
  readonly upstreamRole?: string;
  /** Run-time parameters the database reported (ParameterStatus), e.g. client_encoding. */
  readonly serverParams: Map<string, string>;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  /** The connection's catalog, for result-column origins (masking). */
  readonly catalog?: Catalog;
  /** Send the client an asynchronous notice (between protocol messages); set by the engine. */
  notice?: (n: { readonly message: string; readonly detail?: string; readonly hint?: string }) => void;
}

/** A statement as submitted by the client, before it reaches the database. */
export interface Statement {
  /** The SQL text as sent (a simple query may hold several statements). */
  readonly text: string;
  /**
   * simple: Query message; extended: Parse message (decided once, executed many times);
   * fastpath: a FunctionCall message (the text names the function's oid).
   */
  readonly protocol: 'simple' | 'extended' | 'fastpath';
  /** Prepared statement name for the extended protocol ("" = unnamed). */
  readonly name: string;
  /** The decision made for it, set by the pipeline. */
  decision: Decision;
}

/** What a policy can decide; `mask` and `allow` let the statement run. */
export const POLICY_ACTIONS = ['allow', 'deny', 'require_approval', 'mask'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** A rule that matched a statement, as recorded with the decision. */
export interface RuleMatch {
  readonly id: string;
  /** allow, deny, require_approval, mask, limit_rows or audit. */
  readonly action: string;
  readonly mode: 'enforce' | 'dry-run';
  readonly controls: readonly string[];
  readonly message: string;
}

/** What the analysis found, as recorded by audit (the same for every statement of one shape). */
export interface StatementSummary {
  /** Normalized text: the statement with every literal replaced by `?`. */
  readonly normalized: string;
  /** Hex digest of the shape: equal for statements differing only in literals. */
  readonly fingerprint: string;
  /** The principal kind (the first statement that is not transaction control). */
  readonly kind: string;
  /** Every table referenced. */
  readonly tables: readonly string[];
  /** Whether it may change data, schema or grants (anything but reads, transaction control, SET and SHOW). */
  readonly mutates: boolean;
  /** A COPY ... TO (rows leave as COPY data, not as result rows). */
  readonly copyTo: boolean;
}

/** How one sensitivity class is masked (a masking function and its options). */
export interface MaskFunctionSpec {
  /** redact, partial, email, hash, null, default, or scrub (detector matches inside free text). */
  readonly fn: string;
  readonly keepFirst?: number;
  readonly keepLast?: number;
  readonly maskChar?: string;
}

/** What the matching `mask` rules ask for: a function per sensitivity class. */
export interface MaskPlan {
  /** The mask rules that matched, in policy order. */
  readonly rules: readonly string[];
  /** Class -> function; the first matching rule that names a class decides it. */
  readonly byClass: ReadonlyMap<string, MaskFunctionSpec>;
  /** Refuse statements that filter, join, group or sort on a masked column (inference by filtering). */
  readonly refusePredicates: boolean;
}

/** What a require_approval decision asks for (defaults from `approvals.*` fill what a rule leaves out). */
export interface ApprovalPlan {
  readonly mode: 'wait' | 'retry';
  /** Approver groups; undefined = approvals.groups. */
  readonly groups: readonly string[] | undefined;
  /** Distinct approvers needed. */
  readonly quorum: number;
  readonly expiresMs: number | undefined;
  readonly runWindowMs: number | undefined;
  /** An enforcing auto_approve rule matched: approved by policy, with this rule id. */
  readonly autoApprovedBy?: string;
}

export interface Decision {
  readonly action: PolicyAction;
  /** The rule that decided (empty when the default action applied). */
  readonly ruleId?: string;
  /** Human reason, shown to the client when refused. */
  readonly message?: string;
  /** SQLSTATE of a refusal; 42501 (insufficient_privilege) unless documented otherwise. */
  readonly sqlstate?: string;
  /** What the client can do about a refusal (the HINT of the error). */
  readonly hint?: string;
  /** Every rule that matched, enforce and dry-run alike. */
  readonly matches?: readonly RuleMatch[];
  /** Affected-rows circuit breaker: UPDATE/DELETE/MERGE changing more rows are rolled back. */
  readonly rowCap?: { readonly limit: number; readonly ruleId: string; readonly message: string };
  /** The statement as analyzed (set by the policy stage). */
  readonly statement?: StatementSummary;
  /** Masking to apply to the results (action `mask`; kept on require_approval for after the approval). */
  readonly masks?: MaskPlan;
  /** action require_approval: the approval asked for. */
  readonly approval?: ApprovalPlan;
  /** The approval request this statement runs under (set once it is approved). */
  readonly approvedBy?: { readonly request: string; readonly by: readonly string[] };
}

/** Whether the statement may reach the database. */
export function permits(d: Decision): boolean {
  return d.action === 'allow' || d.action === 'mask';
}

export const ALLOW: Decision = Object.freeze({ action: 'allow' as const });

/** One execution of a statement (every Query, every Execute) and its outcome. */
export interface Execution {
  readonly statement: Statement;
  /** performance.now() when forwarded. */
  readonly startedAt: number;
  /** Rows returned (DataRow) or affected (command tag), whichever the command reports. */
  rows: number;
  /** Command tag of the last completed command, e.g. "SELECT 1". */
  command: string;
  /** SQLSTATE when the database (or Gatehouse) refused it. */
  sqlstate: string | undefined;
  /** Set when Gatehouse itself refused it: the rule (a deny, or the row cap that tripped). */
  refusedBy: string | undefined;
  /** Milliseconds, set at completion. */
  durationMs: number;
  /** Result columns a masking stage rewrote, as "table.column" or the output name. */
  masked?: readonly string[];
}

/** Something that happened to a connection outside a session's statements (for audit). */
export interface ConnectionEvent {
  readonly type: 'auth.success' | 'auth.failure' | 'session.fail';
  readonly client: ClientInfo;
  /** The identity, once authenticated. */
  readonly identity?: Identity;
  /** The user name the client presented (auth failures). */
  readonly user?: string;
  readonly connection?: { readonly name: string; readonly environment: string };
  readonly applicationName?: string;
  readonly reason?: string;
  readonly sqlstate?: string;
}

/** Column metadata of a result, from the engine's row description. */
export interface ResultColumn {
  readonly name: string;
  /** Type modifier (-1 = none; varchar(n) = n + 4). */
  readonly typmod: number;
  /** Source table identifier (PostgreSQL table OID; 0 when computed). */
  readonly tableId: number;
  /** Source column number within the table (0 when computed). */
  readonly columnId: number;
  readonly typeId: number;
  readonly binary: boolean;
}

/**
 * Rewrites the values of result rows. Values are raw column bytes in the column's wire format;
 * null is SQL NULL. Return the same array, with the values replaced (or written over in place,
 * keeping their length). A transform may say which columns it reads and replaces (`touches`):
 * the engine then reads only those (the others stay as they are and may be left unset).
 */
export type RowTransform = ((values: Array<Buffer | null>, columns: readonly ResultColumn[]) => Array<Buffer | null>) & {
  readonly touches?: readonly number[];
  /**
   * Mask the touched values straight from the wire frame, with no Buffer per value (needs
   * `touches`, in ascending order). `plan` computes the output length of each touched value into
   * `lengths` (indexed like `touches`; -1 = NULL), where `offsets` holds each value's start and
   * length (-1 = NULL) in `frame`; false when some value cannot be done this way (the transform
   * function is then called instead). `writers[k]` writes touched value k's planned output at
   * dst[pos..]; dst may be the frame itself, at the value's own position, when the length is
   * unchanged.
   */
  readonly ranged?: {
    plan(frame: Buffer, offsets: Int32Array, count: number, lengths: Int32Array): boolean;
    readonly writers: ReadonlyArray<(frame: Buffer, dst: Buffer, pos: number) => void>;
  };
};
