/**
 * Engine-neutral facts about one SQL statement: what policy conditions see as `statement`.
 * Produced by a dialect's analyzer; never depends on literal values (so facts can be cached by
 * statement shape), except where `cacheable` is false.
 */

export type Category = 'read' | 'write' | 'ddl' | 'dcl' | 'tcl' | 'admin' | 'unknown';

export interface WriteOperation {
  /** INSERT, UPDATE, DELETE or MERGE. */
  readonly kind: string;
  readonly table: string;
  /** For UPDATE/DELETE/MERGE: the rows are bounded by a condition on columns. */
  readonly bounded: boolean;
  /** Nested rather than top level: inside a WITH clause or a COPY (query); its rows are not in a DML command tag. */
  readonly inCte: boolean;
  /** INSERT ... ON CONFLICT DO UPDATE: may change existing rows like an UPDATE. */
  readonly upsert?: boolean;
}

export interface StatementFacts {
  /** SELECT, INSERT, UPDATE, DELETE, MERGE, TRUNCATE, DROP, ALTER TABLE, CREATE TABLE, GRANT, SET, COPY, DO, ... or "unknown". */
  kind: string;
  category: Category;
  /** For DROP/CREATE/ALTER/GRANT/COMMENT: TABLE, INDEX, VIEW, SCHEMA, DATABASE, FUNCTION, ROLE, ... */
  objectType: string;
  /** ALTER TABLE subcommands: ADD COLUMN, DROP COLUMN, ALTER COLUMN TYPE, RENAME, RENAME COLUMN, ... */
  subcommands: string[];
  /** Every table referenced (schema-qualified as written), CTE names excluded. */
  tables: string[];
  tablesRead: string[];
  tablesWritten: string[];
  /** Column references, as written ("email", "c.email"); "*" for a star. */
  columns: string[];
  /** Data-modifying operations anywhere in the statement (top level and inside CTEs). */
  writes: WriteOperation[];
  /** The top-level statement has a WHERE (for UPDATE/DELETE: one that references a column). */
  hasWhere: boolean;
  /** Some UPDATE/DELETE/MERGE (top level or in a CTE) is not bounded by a condition on columns. */
  unboundedWrite: boolean;
  hasLimit: boolean;
  /** Functions called (bare names, lower case). */
  functions: string[];
  /** COPY: "from" or "to" ("" otherwise); PROGRAM and server-side file. */
  copyDirection: '' | 'from' | 'to';
  copyProgram: boolean;
  copyFile: boolean;
  /** SET/RESET: the setting (role, session_authorization, search_path, ...; "all" for RESET ALL). */
  setting: string;
  /** EXPLAIN wrapper (the kind is then the explained statement's when ANALYZE executes it). */
  explain: boolean;
  analyze: boolean;
  /** PREPARE name AS ...: the kind is the prepared statement's; this is its name. */
  preparedName: string;
  /** EXECUTE name: the prepared statement executed. */
  executeName: string;
  /** Not analyzable: DO blocks, functions/procedures/triggers created, CALL, unresolved EXECUTE. */
  dynamic: boolean;
  /** Part of a string holding several statements. */
  multiStatement: boolean;
  /** False when the parser rejected the text (kind "unknown"). */
  parsed: boolean;
  /** The parser's message when `parsed` is false. */
  parseError: string;
  /** The statement's own text. */
  text: string;
  /** False when facts depend on literal values (then they are not reused for other texts). */
  cacheable: boolean;
}

export function emptyFacts(text: string): StatementFacts {
  return {
    kind: 'unknown',
    category: 'unknown',
    objectType: '',
    subcommands: [],
    tables: [],
    tablesRead: [],
    tablesWritten: [],
    columns: [],
    writes: [],
    hasWhere: false,
    unboundedWrite: false,
    hasLimit: false,
    functions: [],
    copyDirection: '',
    copyProgram: false,
    copyFile: false,
    setting: '',
    explain: false,
    analyze: false,
    preparedName: '',
    executeName: '',
    dynamic: false,
    multiStatement: false,
    parsed: false,
    parseError: '',
    text,
    cacheable: true,
  };
}
