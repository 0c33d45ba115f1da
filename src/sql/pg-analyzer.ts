/**
 * PostgreSQL statement analysis with the real PostgreSQL parser (libpg-query, WebAssembly; sync
 * after `loadPostgresParser()`): each statement of a multi-statement string becomes
 * StatementFacts. Anything the parser rejects is kind "unknown" (fail closed).
 */
import { loadModule, parseSync } from 'libpg-query';
import { emptyFacts, type Category, type StatementFacts, type WriteOperation } from './facts.js';
import { statementKey } from './statement-key.js';

type Node = Record<string, unknown>;

let loaded: Promise<void> | undefined;
/** Load the parser's WebAssembly module once; analysis is synchronous afterwards. */
export function loadPostgresParser(): Promise<void> {
  return (loaded ??= loadModule());
}

/** Functions whose result depends on literal arguments in ways policy may care about. */
const LITERAL_SENSITIVE = new Set(['set_config']);

const OBJECT_TYPES: Record<string, string> = {
  OBJECT_TABLE: 'TABLE', OBJECT_INDEX: 'INDEX', OBJECT_VIEW: 'VIEW', OBJECT_MATVIEW: 'MATERIALIZED VIEW', OBJECT_SEQUENCE: 'SEQUENCE',
  OBJECT_SCHEMA: 'SCHEMA', OBJECT_DATABASE: 'DATABASE', OBJECT_FUNCTION: 'FUNCTION', OBJECT_PROCEDURE: 'PROCEDURE', OBJECT_ROUTINE: 'ROUTINE',
  OBJECT_TRIGGER: 'TRIGGER', OBJECT_TYPE: 'TYPE', OBJECT_DOMAIN: 'DOMAIN', OBJECT_EXTENSION: 'EXTENSION', OBJECT_ROLE: 'ROLE',
  OBJECT_COLUMN: 'COLUMN', OBJECT_FOREIGN_TABLE: 'FOREIGN TABLE', OBJECT_TABCONSTRAINT: 'CONSTRAINT', OBJECT_POLICY: 'POLICY',
  OBJECT_RULE: 'RULE', OBJECT_TABLESPACE: 'TABLESPACE', OBJECT_PUBLICATION: 'PUBLICATION', OBJECT_SUBSCRIPTION: 'SUBSCRIPTION',
  OBJECT_EVENT_TRIGGER: 'EVENT TRIGGER', OBJECT_COLLATION: 'COLLATION', OBJECT_AGGREGATE: 'AGGREGATE', OBJECT_OPERATOR: 'OPERATOR',
  OBJECT_LARGEOBJECT: 'LARGE OBJECT', OBJECT_FDW: 'FOREIGN DATA WRAPPER', OBJECT_FOREIGN_SERVER: 'SERVER', OBJECT_USER_MAPPING: 'USER MAPPING',
};

const ALTER_SUBCOMMANDS: Record<string, string> = {
  AT_AddColumn: 'ADD COLUMN', AT_DropColumn: 'DROP COLUMN', AT_AlterColumnType: 'ALTER COLUMN TYPE', AT_ColumnDefault: 'ALTER COLUMN DEFAULT',
  AT_SetNotNull: 'SET NOT NULL', AT_DropNotNull: 'DROP NOT NULL', AT_AddConstraint: 'ADD CONSTRAINT', AT_DropConstraint: 'DROP CONSTRAINT',
  AT_ChangeOwner: 'OWNER TO', AT_EnableRowSecurity: 'ENABLE ROW LEVEL SECURITY', AT_DisableRowSecurity: 'DISABLE ROW LEVEL SECURITY',
  AT_DisableTrig: 'DISABLE TRIGGER', AT_DisableTrigAll: 'DISABLE TRIGGER', AT_DisableTrigUser: 'DISABLE TRIGGER', AT_EnableTrig: 'ENABLE TRIGGER',
  AT_SetTableSpace: 'SET TABLESPACE', AT_AddIndex: 'ADD INDEX', AT_SetLogged: 'SET LOGGED', AT_SetUnLogged: 'SET UNLOGGED',
  AT_AttachPartition: 'ATTACH PARTITION', AT_DetachPartition: 'DETACH PARTITION', AT_ForceRowSecurity: 'FORCE ROW LEVEL SECURITY',
  AT_NoForceRowSecurity: 'NO FORCE ROW LEVEL SECURITY', AT_ReplicaIdentity: 'REPLICA IDENTITY',
};

const TRANSACTION_KINDS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN', TRANS_STMT_START: 'BEGIN', TRANS_STMT_COMMIT: 'COMMIT', TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT', TRANS_STMT_RELEASE: 'RELEASE SAVEPOINT', TRANS_STMT_ROLLBACK_TO: 'ROLLBACK TO SAVEPOINT',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION', TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED', TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
};

/** Kind and category of the top-level node types that need no special handling. */
const SIMPLE_KINDS: Record<string, [string, Category]> = {
  TruncateStmt: ['TRUNCATE', 'write'],
  CreateStmt: ['CREATE TABLE', 'ddl'],
  IndexStmt: ['CREATE INDEX', 'ddl'],
  ViewStmt: ['CREATE VIEW', 'ddl'],
  CreateSchemaStmt: ['CREATE SCHEMA', 'ddl'],
  CreateSeqStmt: ['CREATE SEQUENCE', 'ddl'],
  AlterSeqStmt: ['ALTER SEQUENCE', 'ddl'],
  CreateExtensionStmt: ['CREATE EXTENSION', 'ddl'],
  CreatedbStmt: ['CREATE DATABASE', 'ddl'],
  DropdbStmt: ['DROP', 'ddl'],
  CompositeTypeStmt: ['CREATE TYPE', 'ddl'],
  CreateEnumStmt: ['CREATE TYPE', 'ddl'],
  CommentStmt: ['COMMENT', 'ddl'],
  CreatePolicyStmt: ['CREATE POLICY', 'ddl'],
  AlterPolicyStmt: ['ALTER POLICY', 'ddl'],
  RefreshMatViewStmt: ['REFRESH MATERIALIZED VIEW', 'write'],
  GrantRoleStmt: ['GRANT', 'dcl'],
  CreateRoleStmt: ['CREATE ROLE', 'dcl'],
  AlterRoleStmt: ['ALTER ROLE', 'dcl'],
  AlterRoleSetStmt: ['ALTER ROLE', 'dcl'],
  DropRoleStmt: ['DROP', 'dcl'],
  DropOwnedStmt: ['DROP OWNED', 'dcl'],
  ReassignOwnedStmt: ['REASSIGN OWNED', 'dcl'],
  AlterOwnerStmt: ['ALTER OWNER', 'dcl'],
  AlterDefaultPrivilegesStmt: ['ALTER DEFAULT PRIVILEGES', 'dcl'],
  CreateUserMappingStmt: ['CREATE USER MAPPING', 'dcl'],
  AlterSystemStmt: ['ALTER SYSTEM', 'admin'],
  LockStmt: ['LOCK', 'admin'],
  ClusterStmt: ['CLUSTER', 'admin'],
  ReindexStmt: ['REINDEX', 'admin'],
  CheckPointStmt: ['CHECKPOINT', 'admin'],
  LoadStmt: ['LOAD', 'admin'],
  DiscardStmt: ['DISCARD', 'admin'],
  ListenStmt: ['LISTEN', 'admin'],
  UnlistenStmt: ['UNLISTEN', 'admin'],
  NotifyStmt: ['NOTIFY', 'admin'],
  DeallocateStmt: ['DEALLOCATE', 'admin'],
  VariableShowStmt: ['SHOW', 'read'],
  FetchStmt: ['FETCH', 'read'],
  ClosePortalStmt: ['CLOSE', 'read'],
  ConstraintsSetStmt: ['SET CONSTRAINTS', 'tcl'],
  CreateTrigStmt: ['CREATE TRIGGER', 'ddl'],
  CreateEventTrigStmt: ['CREATE EVENT TRIGGER', 'ddl'],
  RuleStmt: ['CREATE RULE', 'ddl'],
  AlterDatabaseStmt: ['ALTER DATABASE', 'ddl'],
  AlterDatabaseSetStmt: ['ALTER DATABASE', 'ddl'],
  CreateTableSpaceStmt: ['CREATE TABLESPACE', 'ddl'],
  DropTableSpaceStmt: ['DROP', 'ddl'],
  CreatePublicationStmt: ['CREATE PUBLICATION', 'ddl'],
  CreateSubscriptionStmt: ['CREATE SUBSCRIPTION', 'ddl'],
  DropSubscriptionStmt: ['DROP', 'ddl'],
};

const DYNAMIC_NODES = new Set(['DoStmt', 'CreateFunctionStmt', 'CallStmt', 'CreateTrigStmt', 'CreateEventTrigStmt', 'RuleStmt']);

/** "CreateForeignServerStmt" -> "CREATE FOREIGN SERVER". */
function kindFromNodeName(name: string): string {
  return name
    .replace(/Stmt$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toUpperCase();
}

function categoryFromKind(kind: string): Category {
  if (/^(CREATE|ALTER|DROP|COMMENT|RENAME|IMPORT|SECURITY)/.test(kind)) return 'ddl';
  return 'unknown';
}

function rangeVarName(rv: Node): string {
  const rel = String(rv.relname ?? '');
  return rv.schemaname ? `${String(rv.schemaname)}.${rel}` : rel;
}

function names(list: unknown): string {
  if (!Array.isArray(list)) return '';
  return list.map((n) => String(((n as Node).String as Node | undefined)?.sval ?? '')).join('.');
}

interface Collector {
  tables: Set<string>;
  read: Set<string>;
  written: Set<string>;
  columns: Set<string>;
  functions: Set<string>;
  writes: WriteOperation[];
  cacheable: boolean;
}

/** Does an expression reference a column outside of sub-selects (i.e. bound rows by data)? */
function referencesColumn(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(referencesColumn);
  if (node === null || typeof node !== 'object') return false;
  const n = node as Node;
  if ('ColumnRef' in n || 'CurrentOfExpr' in n) return true;
  for (const [k, v] of Object.entries(n)) {
    if (k === 'subselect') continue; // EXISTS (SELECT ...) says nothing about the target's rows
    if (referencesColumn(v)) return true;
  }
  return false;
}

/**
 * Does a WHERE/ON condition bound the rows? It must reference a column, and an OR bounds only if
 * every branch does (`id = 1 OR true` does not). Tautologies on columns (`id = id`) are left to
 * the row-cap breaker.
 */
function bounds(node: unknown): boolean {
  if (node === null || node === undefined) return false;
  const b = (node as Node).BoolExpr as Node | undefined;
  if (b !== undefined) {
    const args = (b.args as unknown[] | undefined) ?? [];
    if (b.boolop === 'OR_EXPR') return args.length > 0 && args.every(bounds);
    if (b.boolop === 'AND_EXPR') return args.some(bounds);
  }
  return referencesColumn(node);
}

/**
 * Walk any subtree collecting tables (split read/written), columns, functions and write
 * operations. `ctes` holds the CTE names visible here.
 */
function walk(node: unknown, c: Collector, ctes: ReadonlySet<string>, inCte: boolean): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, c, ctes, inCte);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const n = node as Node;
  for (const [type, value] of Object.entries(n)) {
    if (value === null || typeof value !== 'object') continue;
    const v = value as Node;
    switch (type) {
      case 'RangeVar': {
        const name = rangeVarName(v);
        if (!v.schemaname && ctes.has(name)) break;
        touch(c, name, false);
        break;
      }
      case 'ColumnRef': {
        const fields = (v.fields as Node[] | undefined) ?? [];
        c.columns.add(fields.map((f) => ('A_Star' in f ? '*' : String((f.String as Node | undefined)?.sval ?? ''))).join('.'));
        break;
      }
      case 'FuncCall': {
        const fn = names(v.funcname);
        const bare = fn.slice(fn.lastIndexOf('.') + 1).toLowerCase();
        c.functions.add(bare);
        if (LITERAL_SENSITIVE.has(bare)) c.cacheable = false;
        walk(v.args, c, ctes, inCte);
        walk(v.agg_filter, c, ctes, inCte);
        walk(v.over, c, ctes, inCte);
        walk(v.agg_order, c, ctes, inCte);
        break;
      }
      case 'WithClause':
        break; // handled by the statement that owns it
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        walkStatement(type, v, c, ctes, inCte);
        break;
      default:
        walk(v, c, ctes, inCte);
    }
  }
}

/** A DML/SELECT statement node (top level, subquery or CTE body). */
function walkStatement(type: string, v: Node, c: Collector, outer: ReadonlySet<string>, inCte: boolean): void {
  let ctes = outer;
  const withClause = v.withClause as Node | undefined;
  if (withClause) {
    const scope = new Set(outer);
    const list = (withClause.ctes as Node[] | undefined) ?? [];
    for (const item of list) scope.add(String((item.CommonTableExpr as Node).ctename));
    ctes = scope;
    for (const item of list) walk((item.CommonTableExpr as Node).ctequery, c, ctes, true);
  }
  if (type === 'SelectStmt') {
    for (const [k, val] of Object.entries(v)) if (k !== 'withClause') walk(val, c, ctes, inCte);
    return;
  }
  const target = rangeVarName(v.relation as Node);
  touch(c, target, true);
  const kind = type === 'InsertStmt' ? 'INSERT' : type === 'UpdateStmt' ? 'UPDATE' : type === 'DeleteStmt' ? 'DELETE' : 'MERGE';
  const bounded = kind === 'INSERT' ? true : kind === 'MERGE' ? bounds(v.joinCondition) : bounds(v.whereClause);
  const conflict = (v.onConflictClause as Node | undefined)?.action;
  c.writes.push({ kind, table: target, bounded, inCte, upsert: conflict === 'ONCONFLICT_UPDATE' });
  for (const [k, val] of Object.entries(v)) if (k !== 'withClause' && k !== 'relation') walk(val, c, ctes, inCte);
}

/** Record a table the statement names, as read or as written. */
function touch(c: Collector, name: string, written: boolean): void {
  c.tables.add(name);
  (written ? c.written : c.read).add(name);
}

function collector(): Collector {
  return { tables: new Set(), read: new Set(), written: new Set(), columns: new Set(), functions: new Set(), writes: [], cacheable: true };
}

function finish(f: StatementFacts, c: Collector): void {
  f.tables = [...c.tables];
  f.tablesWritten = [...c.written];
  f.tablesRead = [...c.read];
  f.columns = [...c.columns];
  f.functions = [...c.functions];
  f.writes = c.writes;
  f.unboundedWrite = c.writes.some((w) => !w.bounded);
  if (!c.cacheable) f.cacheable = false;
}

/** Facts of one parsed statement node. */
function analyzeNode(stmt: Node, text: string): StatementFacts {
  const f = emptyFacts(text);
  f.parsed = true;
  const [type, raw] = Object.entries(stmt)[0] ?? ['', {}];
  const v = raw as Node;
  const c = collector();
  f.kind = kindFromNodeName(type);
  f.category = categoryFromKind(f.kind);
  f.dynamic = DYNAMIC_NODES.has(type);

  switch (type) {
    case 'SelectStmt': {
      const into = v.intoClause as Node | undefined;
      f.kind = into ? 'CREATE TABLE AS' : 'SELECT';
      f.category = into ? 'ddl' : 'read';
      f.hasWhere = v.whereClause !== undefined;
      f.hasLimit = v.limitCount !== undefined;
      walkStatement(type, v, c, new Set(), false);
      if (c.writes.length > 0) f.category = 'write';
      break;
    }
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt': {
      f.kind = type === 'InsertStmt' ? 'INSERT' : type === 'UpdateStmt' ? 'UPDATE' : type === 'DeleteStmt' ? 'DELETE' : 'MERGE';
      f.category = 'write';
      f.hasWhere = type === 'MergeStmt' ? bounds(v.joinCondition) : bounds(v.whereClause);
      walkStatement(type, v, c, new Set(), false);
      break;
    }
    case 'DropStmt':
      f.kind = 'DROP';
      f.category = 'ddl';
      f.objectType = OBJECT_TYPES[String(v.removeType)] ?? String(v.removeType).replace('OBJECT_', '');
      if (['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'INDEX', 'FOREIGN TABLE'].includes(f.objectType)) {
        for (const o of (v.objects as Node[] | undefined) ?? []) {
          const name = names((o.List as Node | undefined)?.items);
          if (name) touch(c, name, true);
        }
      }
      break;
    case 'DropdbStmt':
    case 'DropRoleStmt':
    case 'DropTableSpaceStmt':
    case 'DropSubscriptionStmt':
      f.kind = 'DROP';
      f.objectType = type === 'DropdbStmt' ? 'DATABASE' : type === 'DropRoleStmt' ? 'ROLE' : type === 'DropTableSpaceStmt' ? 'TABLESPACE' : 'SUBSCRIPTION';
      f.category = type === 'DropRoleStmt' ? 'dcl' : 'ddl';
      break;
    case 'AlterTableStmt': {
      f.objectType = OBJECT_TYPES[String(v.objtype)] ?? 'TABLE';
      f.kind = `ALTER ${f.objectType}`;
      f.category = 'ddl';
      f.subcommands = ((v.cmds as Node[] | undefined) ?? []).map((cmd) => {
        const sub = String((cmd.AlterTableCmd as Node).subtype);
        return ALTER_SUBCOMMANDS[sub] ?? sub.replace(/^AT_/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
      });
      touch(c, rangeVarName(v.relation as Node), true);
      walk(v.cmds, c, new Set(), false);
      break;
    }
    case 'RenameStmt': {
      const renameType = String(v.renameType);
      const objectType = renameType === 'OBJECT_COLUMN' || renameType === 'OBJECT_TABCONSTRAINT' ? OBJECT_TYPES[String(v.relationType)] ?? 'TABLE' : OBJECT_TYPES[renameType] ?? renameType.replace('OBJECT_', '');
      f.objectType = objectType;
      f.kind = `ALTER ${objectType}`;
      f.category = objectType === 'ROLE' ? 'dcl' : 'ddl';
      f.subcommands = [renameType === 'OBJECT_COLUMN' ? 'RENAME COLUMN' : renameType === 'OBJECT_TABCONSTRAINT' ? 'RENAME CONSTRAINT' : 'RENAME'];
      if (v.relation) {
        touch(c, rangeVarName(v.relation as Node), true);
      }
      break;
    }
    case 'GrantStmt':
      f.kind = v.is_grant ? 'GRANT' : 'REVOKE';
      f.category = 'dcl';
      f.objectType = OBJECT_TYPES[String(v.objtype)] ?? '';
      walk(v.objects, c, new Set(), false);
      break;
    case 'GrantRoleStmt':
      f.kind = v.is_grant ? 'GRANT' : 'REVOKE';
      f.category = 'dcl';
      f.objectType = 'ROLE';
      break;
    case 'DefineStmt':
      // CREATE AGGREGATE / OPERATOR / COLLATION / TEXT SEARCH ... / TYPE (base)
      f.objectType = OBJECT_TYPES[String(v.kind)] ?? String(v.kind).replace('OBJECT_', '').replace(/_/g, ' ');
      f.kind = `CREATE ${f.objectType}`;
      f.category = 'ddl';
      break;
    case 'SecLabelStmt':
      f.kind = 'SECURITY LABEL';
      f.category = 'ddl';
      break;
    case 'CopyStmt': {
      f.kind = 'COPY';
      const from = v.is_from === true;
      f.copyDirection = from ? 'from' : 'to';
      f.copyProgram = v.is_program === true;
      f.copyFile = v.filename !== undefined && !f.copyProgram;
      f.category = from ? 'write' : 'read';
      if (v.relation) touch(c, rangeVarName(v.relation as Node), from);
      if (v.query) walk(v.query, c, new Set(), true); // COPY (DELETE ... RETURNING) TO: rows hidden in "COPY n"
      break;
    }
    case 'VariableSetStmt': {
      const kind = String(v.kind);
      f.kind = kind === 'VAR_SET_VALUE' || kind === 'VAR_SET_CURRENT' || kind === 'VAR_SET_DEFAULT' || kind === 'VAR_SET_MULTI' ? 'SET' : 'RESET';
      f.setting = kind === 'VAR_RESET_ALL' ? 'all' : String(v.name ?? '').toLowerCase();
      f.category = 'admin';
      break;
    }
    case 'TransactionStmt':
      f.kind = TRANSACTION_KINDS[String(v.kind)] ?? 'TRANSACTION';
      f.category = 'tcl';
      break;
    case 'VacuumStmt':
      f.kind = v.is_vacuumcmd ? 'VACUUM' : 'ANALYZE';
      f.category = 'admin';
      walk(v.rels, c, new Set(), false);
      break;
    case 'ExplainStmt': {
      const analyze = ((v.options as Node[] | undefined) ?? []).some((o) => {
        const d = o.DefElem as Node;
        if (d.defname !== 'analyze') return false;
        const arg = d.arg as Node | undefined;
        if (!arg) return true;
        const b = (arg.Boolean as Node | undefined) ?? ((arg.A_Const as Node | undefined)?.boolval as Node | undefined);
        if (b) return b.boolval === true;
        const s = String(((arg.String as Node | undefined)?.sval ?? (((arg.A_Const as Node | undefined)?.sval as Node | undefined)?.sval)) ?? 'true').toLowerCase();
        return s !== 'false' && s !== 'off' && s !== '0';
      });
      const inner = analyzeNode(v.query as Node, text);
      inner.explain = true;
      inner.analyze = analyze;
      // EXPLAIN (ANALYZE 'off') vs (ANALYZE 'on'): option values are literals, so the shape key
      // cannot tell them apart.
      if (((v.options as Node[] | undefined) ?? []).some((o) => (o.DefElem as Node).arg !== undefined)) inner.cacheable = false;
      if (!analyze) {
        // Plain EXPLAIN plans without executing: a read of the same tables.
        inner.kind = 'EXPLAIN';
        inner.category = 'read';
        inner.tablesRead = [...new Set([...inner.tablesRead, ...inner.tablesWritten])];
        inner.tablesWritten = [];
        inner.writes = [];
        inner.unboundedWrite = false;
      }
      return inner;
    }
    case 'PrepareStmt': {
      const inner = analyzeNode(v.query as Node, text);
      inner.preparedName = String(v.name ?? '');
      return inner;
    }
    case 'ExecuteStmt':
      f.kind = 'EXECUTE';
      f.category = 'unknown';
      f.executeName = String(v.name ?? '');
      f.dynamic = true; // resolved per session by the policy stage when the name is known
      break;
    case 'DeclareCursorStmt': {
      const inner = analyzeNode(v.query as Node, text);
      inner.kind = 'DECLARE CURSOR';
      return inner;
    }
    case 'CreateTableAsStmt': {
      f.kind = String(v.objtype) === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS';
      f.category = 'ddl';
      walk(v.query, c, new Set(), false);
      const into = (v.into as Node | undefined)?.rel as Node | undefined;
      if (into) {
        touch(c, rangeVarName(into), true);
      }
      break;
    }
    case 'CreateFunctionStmt':
      f.kind = v.is_procedure ? 'CREATE PROCEDURE' : 'CREATE FUNCTION';
      f.category = 'ddl';
      f.objectType = v.is_procedure ? 'PROCEDURE' : 'FUNCTION';
      break;
    case 'DoStmt':
      f.kind = 'DO';
      f.category = 'admin';
      break;
    case 'CallStmt':
      f.kind = 'CALL';
      f.category = 'write';
      walk({ FuncCall: v.funccall }, c, new Set(), false); // an unwrapped FuncCall: the procedure and its arguments
      break;
    default: {
      const simple = SIMPLE_KINDS[type];
      if (simple) {
        f.kind = simple[0];
        f.category = simple[1];
      }
      if (type === 'CreateStmt' || type === 'IndexStmt' || type === 'ViewStmt' || type === 'TruncateStmt' || type === 'LockStmt' || type === 'RefreshMatViewStmt' || type === 'ClusterStmt' || type === 'ReindexStmt') {
        const rels: Node[] = [];
        if (v.relation) rels.push({ RangeVar: v.relation });
        if (v.view) rels.push({ RangeVar: v.view });
        if (Array.isArray(v.relations)) rels.push(...(v.relations as Node[]));
        for (const r of rels) touch(c, rangeVarName(r.RangeVar as Node), !(type === 'LockStmt' || type === 'ClusterStmt' || type === 'ReindexStmt'));
        if (type === 'ViewStmt') walk(v.query, c, new Set(), false);
      }
      if (type === 'TruncateStmt') f.objectType = 'TABLE';
      if (type === 'CreateRoleStmt' || type === 'AlterRoleStmt' || type === 'AlterRoleSetStmt') f.objectType = 'ROLE';
    }
  }
  finish(f, c);
  return f;
}

/** Byte offsets (libpg-query) to string slices. */
function sliceStatement(text: string, bytes: Buffer | null, location: number, length: number | undefined): string {
  if (bytes === null) return (length === undefined ? text.slice(location) : text.slice(location, location + length)).trim();
  return (length === undefined ? bytes.subarray(location) : bytes.subarray(location, location + length)).toString('utf8').trim();
}

/** Analyze a SQL string (possibly several statements). Parse failure yields one "unknown" statement. */
export function analyzePostgres(text: string): StatementFacts[] {
  if (statementKey(text).replace(/[;\s]/g, '') === '') {
    // Empty, blank or comment-only: PostgreSQL answers EmptyQueryResponse.
    const f = emptyFacts(text);
    f.kind = 'EMPTY';
    f.category = 'read';
    f.parsed = true;
    return [f];
  }
  let tree: { stmts?: Array<{ stmt?: Node; stmt_location?: number; stmt_len?: number }> };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (err) {
    const f = emptyFacts(text);
    f.parseError = (err as Error).message;
    return [f];
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length === 0) {
    const f = emptyFacts(text);
    f.kind = 'EMPTY';
    f.category = 'read';
    f.parsed = true;
    return [f];
  }
  // eslint-disable-next-line no-control-regex
  const bytes = /^[\x00-\x7f]*$/.test(text) ? null : Buffer.from(text);
  const multi = stmts.length > 1;
  return stmts.map((s) => {
    const piece = sliceStatement(text, bytes, s.stmt_location ?? 0, s.stmt_len);
    const f = s.stmt ? analyzeNode(s.stmt, piece) : emptyFacts(piece);
    f.multiStatement = multi;
    return f;
  });
}
