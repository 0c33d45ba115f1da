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
  /** Epoch milliseconds. */
  readonly startedAt: number;
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

export type Decision =
  | { readonly action: 'allow'; readonly rules?: readonly string[] }
  | {
      readonly action: 'deny';
      /** The rule that refused it. */
      readonly ruleId: string;
      /** Human reason, shown to the client. */
      readonly message: string;
      /** SQLSTATE; 42501 (insufficient_privilege) unless a rule documents another. */
      readonly sqlstate?: string;
      readonly rules?: readonly string[];
    };

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
  /** Milliseconds, set at completion. */
  durationMs: number;
}

/** Column metadata of a result, from the engine's row description. */
export interface ResultColumn {
  readonly name: string;
  /** Source table identifier (PostgreSQL table OID; 0 when computed). */
  readonly tableId: number;
  /** Source column number within the table (0 when computed). */
  readonly columnId: number;
  readonly typeId: number;
  readonly binary: boolean;
}

/**
 * Rewrites the values of result rows. Values are raw column bytes in the column's wire format;
 * null is SQL NULL. Return the same array (possibly modified in place).
 */
export type RowTransform = (values: Array<Buffer | null>, columns: readonly ResultColumn[]) => Array<Buffer | null>;
