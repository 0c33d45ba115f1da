/**
 * Output-column lineage for PostgreSQL statements: for each result column, the base-table
 * columns its value derives from, read from the real parse tree (libpg-query; call
 * `loadPostgresParser()` from pg-analyzer.ts once before using it).
 *
 * RowDescription carries a column's origin (table OID + attnum) only for plain column
 * references; a computed column (`upper(email)`, `row_to_json(c)`, a CTE output, ...) has table
 * OID 0, and this analysis is how the proxy still knows what to mask. Wherever the text alone
 * cannot decide, it adds candidates rather than drop them: a missed source leaks data, an extra
 * one only over-masks. See docs/masking.md (output-column lineage).
 */
import { parseSync } from 'libpg-query';

/** A source column an output column derives from. table: as written (schema-qualified if written), lower-case unless quoted; column: name, or '*' for a whole-row reference. */
export interface SourceColumn {
  /** Table as written in the statement (`customers`, `public.customers`, `Customers` when quoted). */
  readonly table: string;
  /** Column name, or '*' when the whole row (every column) of `table` flows into the output. */
  readonly column: string;
}

export interface OutputLineage {
  /** The output column's name as PostgreSQL will report it (alias, column name, function name, or "?column?"), best effort. */
  readonly name: string;
  /** True when the output column is a plain reference to a base-table column (RowDescription then carries its origin). */
  readonly direct: boolean;
  /** Every base-table column it derives from (through expressions, CTEs, subqueries, set operations); whole-row references give column '*'. */
  readonly sources: readonly SourceColumn[];
  /** A star (`*`, `t.*`) entry: expands to several output columns; `sources` lists the star's relations with column '*'. */
  readonly star: boolean;
  /**
   * Functions called on the way to the value (through expressions, CTEs, subqueries, FROM
   * functions), as written: lower case unless quoted, schema-qualified when written so. A
   * function's body is not in the text: what it reads is for the caller to judge (a catalog
   * knows which names are built-in).
   */
  readonly functions: readonly string[];
}

type Node = Record<string, unknown>;

/** A source as one string: table and column joined by NUL (no identifier can hold NUL). */
type Key = string;
const SEP = '\u0000';
const WHOLE = '*';
/**
 * The table part of a function call's key: a call flows through the analysis like a column, so
 * CTEs, subqueries and set operations carry it to the outputs. No table is named '' (PostgreSQL
 * refuses zero-length identifiers).
 */
const CALL = '';

function key(table: string, column: string): Key {
  return table + SEP + column;
}

/** A column looked up in one relation. */
interface Lookup {
  readonly keys: readonly Key[];
  /** The relation certainly has this column (a known output name), as opposed to "might have it" (a base table, whose columns we do not know). */
  readonly definite: boolean;
  /** A plain base-table column: exactly one key, RowDescription reports its origin. */
  readonly direct: boolean;
}

/** A relation in scope: a FROM item (table, CTE reference, derived table, function, join alias) or a DML target. */
interface Rel {
  /** Names that qualify its columns: the alias, or the table name (bare and as written). */
  readonly quals: readonly string[];
  /** Reachable only through its qualifier (a join alias, whose columns are those of the joined relations). */
  readonly hidden: boolean;
  /** The column by name; null when the relation certainly has no such column. */
  column(name: string): Lookup | null;
  /** Everything its whole row derives from. */
  whole(): readonly Key[];
}

/** One output column of a query (or the expansion of a star). */
interface Col {
  readonly name: string;
  readonly keys: readonly Key[];
  readonly direct: boolean;
  readonly star: boolean;
  /** For a star: the relations it expands, for name lookups through it; null when opaque (any name maps to `keys`). */
  readonly starRels: readonly Rel[] | null;
}

interface Scope {
  readonly rels: Rel[];
  readonly parent: Scope | null;
}

interface Cte {
  /** null while a recursive WITH is on its first pass and this CTE has not been analyzed yet. */
  readonly cols: readonly Col[] | null;
}

interface Env {
  readonly ctes: Map<string, Cte>;
  readonly parent: Env | null;
}

/** Where an expression or query is analyzed: the FROM scopes (innermost first) and the visible CTEs. */
interface Ctx {
  readonly scope: Scope | null;
  readonly env: Env | null;
}

/** A recursive WITH is iterated until its columns' sources stop growing; past this it is widened. */
const MAX_RECURSIVE_PASSES = 32;

// ---------------------------------------------------------------------------------------------
// Parse-tree helpers (the JSON of libpg-query: `{ NodeType: { field: ... } }`).

function obj(x: unknown): Node | undefined {
  return x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Node) : undefined;
}

function list(x: unknown): Node[] {
  return Array.isArray(x) ? (x as Node[]) : [];
}

/** The single `[type, body]` of a wrapped node. */
function entry(node: unknown): [string, Node] {
  const n = obj(node);
  if (n === undefined) return ['', {}];
  for (const k in n) return [k, obj(n[k]) ?? {}];
  return ['', {}];
}

function sval(node: unknown): string | undefined {
  const s = obj(obj(node)?.String)?.sval;
  return typeof s === 'string' ? s : undefined;
}

/** ColumnRef fields: names, with null for `*`. */
function refFields(ref: Node): Array<string | null> {
  return list(ref.fields).map((f) => ('A_Star' in f ? null : (sval(f) ?? '')));
}

function aliasName(alias: unknown): string | undefined {
  const a = obj(alias)?.aliasname;
  return typeof a === 'string' ? a : undefined;
}

function aliasColnames(alias: unknown): string[] | null {
  const cols = list(obj(alias)?.colnames).map((c) => sval(c) ?? '');
  return cols.length > 0 ? cols : null;
}

function addAll(acc: Set<Key>, keys: readonly Key[]): void {
  for (const k of keys) acc.add(k);
}

function unique(keys: readonly Key[]): Key[] {
  return [...new Set(keys)];
}

function allKeys(cols: readonly Col[]): Key[] {
  const acc = new Set<Key>();
  for (const c of cols) addAll(acc, c.keys);
  return [...acc];
}

// ---------------------------------------------------------------------------------------------
// Relations.

/** A base table (or view: not expanded), possibly with renamed columns, possibly a DML target. */
class TableRel implements Rel {
  readonly hidden = false;
  /** INSERT/UPDATE/MERGE target: column -> sources of the values the statement writes to it (RETURNING shows them). */
  readonly assigned = new Map<string, Key[]>();
  /** Values written to columns we cannot name (INSERT without a column list): they may be in any column. */
  readonly assignedAny: Key[] = [];

  constructor(
    readonly table: string,
    readonly quals: readonly string[],
    /** `FROM t AS x(a, b)`: the first columns renamed, in an order we do not know. */
    readonly colnames: readonly string[] | null,
  ) {}

  column(name: string): Lookup {
    // A renamed column is one of the table's first columns, which we cannot tell apart: whole row.
    const renamed = this.colnames !== null && this.colnames.includes(name);
    const own = key(this.table, renamed ? WHOLE : name);
    const extra = this.assigned.get(name);
    if (extra === undefined && this.assignedAny.length === 0) return { keys: [own], definite: renamed, direct: !renamed };
    return { keys: [own, ...(extra ?? []), ...this.assignedAny], definite: renamed, direct: false };
  }

  whole(): readonly Key[] {
    const out = [key(this.table, WHOLE), ...this.assignedAny];
    for (const keys of this.assigned.values()) out.push(...keys);
    return out;
  }
}

/** A relation whose output columns are known: a derived table, a CTE reference. */
class DerivedRel implements Rel {
  readonly hidden = false;
  constructor(
    readonly quals: readonly string[],
    readonly cols: readonly Col[],
  ) {}

  column(name: string): Lookup | null {
    const keys: Key[] = [];
    let found = false;
    let definite = false;
    for (const c of this.cols) {
      if (!c.star) {
        if (c.name === name) {
          keys.push(...c.keys);
          found = definite = true;
        }
      } else if (c.starRels === null) {
        keys.push(...c.keys);
        found = true;
      } else {
        // `SELECT * FROM customers` inside: the name resolves through the starred relations.
        const l = lookupIn(c.starRels, name);
        if (l !== null) {
          keys.push(...l.keys);
          found = true;
          if (l.definite) definite = true;
        }
      }
    }
    return found ? { keys, definite, direct: false } : null;
  }

  whole(): readonly Key[] {
    return allKeys(this.cols);
  }
}

/** A relation whose columns are not known by name (a function in FROM, XMLTABLE, JSON_TABLE): every column derives from everything it reads. */
class OpaqueRel implements Rel {
  readonly hidden = false;
  constructor(
    readonly quals: readonly string[],
    readonly keys: readonly Key[],
  ) {}

  column(): Lookup {
    return { keys: this.keys, definite: false, direct: false };
  }

  whole(): readonly Key[] {
    return this.keys;
  }
}

/** A name looked up in several relations: every one that has it contributes (conservative). */
function lookupIn(rels: readonly Rel[], name: string): Lookup | null {
  const keys: Key[] = [];
  let found = false;
  let definite = false;
  for (const r of rels) {
    const l = r.column(name);
    if (l === null) continue;
    keys.push(...l.keys);
    found = true;
    if (l.definite) definite = true;
  }
  return found ? { keys, definite, direct: false } : null;
}

/** `(a JOIN b ...) AS j` / `JOIN b USING (id) AS u`: a qualifier over the joined relations (which stay in scope themselves). */
class JoinRel implements Rel {
  readonly hidden = true;
  constructor(
    readonly quals: readonly string[],
    readonly rels: readonly Rel[],
    readonly colnames: readonly string[] | null,
  ) {}

  column(name: string): Lookup | null {
    if (this.colnames !== null && this.colnames.includes(name)) return { keys: this.whole(), definite: true, direct: false };
    return lookupIn(this.rels, name);
  }

  whole(): readonly Key[] {
    return this.rels.flatMap((r) => r.whole());
  }
}

/** Another name for a relation: `excluded` in ON CONFLICT DO UPDATE is the proposed row of the target. */
class AliasRel implements Rel {
  readonly hidden = false;
  constructor(
    readonly quals: readonly string[],
    readonly inner: Rel,
  ) {}

  column(name: string): Lookup | null {
    const l = this.inner.column(name);
    return l === null ? null : { keys: l.keys, definite: l.definite, direct: false };
  }

  whole(): readonly Key[] {
    return this.inner.whole();
  }
}

// ---------------------------------------------------------------------------------------------
// Name resolution.

/** Relations qualified by `qual`, from the innermost scope that has one. */
function findQual(qual: string, ctx: Ctx): Rel[] {
  for (let s = ctx.scope; s !== null; s = s.parent) {
    const hits = s.rels.filter((r) => r.quals.includes(qual));
    if (hits.length > 0) return hits;
  }
  return [];
}

interface Resolved {
  keys: Key[];
  direct: boolean;
}

/**
 * An unqualified name. Every relation that may have the column is a candidate (PostgreSQL would
 * reject a truly ambiguous name, but we cannot tell "ambiguous" from "only one table has it"
 * without the catalog). A scope level with a definite match (a known output name of a CTE or
 * subquery) hides the rest of that level and the outer levels, as in PostgreSQL; otherwise the
 * search continues outward, since the candidate base tables may lack the column and the name may
 * be an outer reference. With `row`, a relation named like the column adds its whole row
 * (`row_to_json(c)`), unless a definite column took precedence.
 */
function unqualified(name: string, ctx: Ctx, row: boolean): Resolved {
  const keys: Key[] = [];
  let hits = 0;
  let direct = false;
  let definite = false;
  for (let s = ctx.scope; s !== null && !definite; s = s.parent) {
    const sure: Lookup[] = [];
    const maybe: Lookup[] = [];
    for (const r of s.rels) {
      if (r.hidden) continue;
      const l = r.column(name);
      if (l !== null) (l.definite ? sure : maybe).push(l);
    }
    definite = sure.length > 0;
    for (const l of definite ? sure : maybe) {
      if (l.keys.length === 0) continue; // a VALUES or function column: nothing to trace, and no competitor for `direct`
      keys.push(...l.keys);
      hits++;
      direct = l.direct;
    }
  }
  if (row && !definite) {
    const rels = findQual(name, ctx);
    for (const r of rels) keys.push(...r.whole());
    if (rels.length > 0) hits += 2;
  }
  return { keys, direct: hits === 1 && direct && keys.length === 1 };
}

/**
 * A qualified name `a.b`, `s.t.c`, `(table).composite.field`, ...: every split into a qualifier
 * (a relation) and a column is tried. A relation without that column still yields its whole row
 * (PostgreSQL reads `c.f` as the function call `f(c)` then). Nothing matching falls back to the
 * names as unqualified columns.
 */
function qualified(names: readonly string[], ctx: Ctx): Resolved {
  const keys: Key[] = [];
  let hits = 0;
  let direct = false;
  let found = false;
  for (let k = names.length - 1; k >= 1; k--) {
    const rels = findQual(names.slice(0, k).join('.'), ctx);
    if (rels.length > 0) found = true;
    for (const r of rels) {
      const l = r.column(names[k]!);
      if (l === null) {
        keys.push(...r.whole());
        hits += 2;
      } else if (l.keys.length > 0) {
        keys.push(...l.keys);
        hits += k === names.length - 1 ? 1 : 2; // a field of a composite column: not a plain column
        direct = l.direct;
      }
    }
  }
  if (!found) {
    keys.push(...unqualified(names[names.length - 1]!, ctx, false).keys);
    keys.push(...unqualified(names[0]!, ctx, true).keys);
    return { keys, direct: false };
  }
  return { keys, direct: hits === 1 && direct && keys.length === 1 };
}

/** Every relation visible anywhere: the last resort for a qualifier we cannot find. */
function everything(ctx: Ctx): Rel[] {
  const out: Rel[] = [];
  for (let s = ctx.scope; s !== null; s = s.parent) for (const r of s.rels) if (!r.hidden) out.push(r);
  return out;
}

/** The relations a star expands: `*` the innermost FROM level, `t.*` the relation t. */
function starRels(fields: ReadonlyArray<string | null>, ctx: Ctx): Rel[] {
  if (fields.length === 1) return (ctx.scope?.rels ?? []).filter((r) => !r.hidden);
  const rels = findQual(fields.slice(0, -1).join('.'), ctx);
  return rels.length > 0 ? rels : everything(ctx);
}

function resolveRef(ref: Node, ctx: Ctx): Resolved {
  const fields = refFields(ref);
  if (fields.length === 0) return { keys: [], direct: false };
  if (fields[fields.length - 1] === null) {
    // `t.*` inside an expression (`to_jsonb(t.*)`, `ROW(t.*)`): whole rows.
    return { keys: starRels(fields, ctx).flatMap((r) => r.whole()), direct: false };
  }
  const names = fields.map((f) => f ?? '');
  return names.length === 1 ? unqualified(names[0]!, ctx, true) : qualified(names, ctx);
}

// ---------------------------------------------------------------------------------------------
// Expressions.

/**
 * Sources of an expression: every column it reads, through operators, function arguments, casts,
 * CASE (conditions included), COALESCE, subscripts and sub-selects (their output columns).
 * Not sources: window definitions (PARTITION BY / ORDER BY), aggregate FILTER and ORDER BY, which
 * pick rows but do not flow into the value; except ORDER BY of an ordered-set aggregate
 * (`percentile_disc(0.5) WITHIN GROUP (ORDER BY salary)` returns a salary).
 * Unknown node types are walked generically, so new expression forms keep their columns.
 */
function collect(node: unknown, ctx: Ctx, acc: Set<Key>): void {
  if (Array.isArray(node)) {
    for (const x of node) collect(x, ctx, acc);
    return;
  }
  const n = obj(node);
  if (n === undefined) return;
  for (const k in n) {
    const v = n[k];
    if (v === null || typeof v !== 'object') continue;
    const b = v as Node;
    switch (k) {
      case 'ColumnRef':
        addAll(acc, resolveRef(b, ctx).keys);
        break;
      case 'A_Indirection':
        indirection(b, ctx, acc);
        break;
      case 'SubLink':
        collect(b.testexpr, ctx, acc);
        addAll(acc, allKeys(queryCols(b.subselect, ctx)));
        break;
      case 'FuncCall': {
        const name = list(b.funcname)
          .map(sval)
          .filter((p): p is string => p !== undefined)
          .join('.');
        if (name !== '') acc.add(key(CALL, name));
        collect(b.args, ctx, acc);
        if (b.agg_within_group === true) collect(b.agg_order, ctx, acc);
        break;
      }
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        addAll(acc, allKeys(queryCols({ [k]: b }, ctx)));
        break;
      case 'typeName':
      case 'TypeName':
        break; // type names hold no columns
      default:
        collect(b, ctx, acc);
    }
  }
}

/** `(x).f`: x a relation (its column f) or a composite column x (all of it); then subscripts. */
function indirection(v: Node, ctx: Ctx, acc: Set<Key>): void {
  const ref = obj(obj(v.arg)?.ColumnRef);
  const ind = list(v.indirection);
  const field = sval(ind[0]);
  if (ref !== undefined && field !== undefined) {
    const fields = refFields(ref);
    if (fields.length > 0 && fields.every((f) => f !== null)) {
      const names = fields as string[];
      // A relation by that name: its column `field` (the row's field).
      if (findQual(names.join('.'), ctx).length > 0) addAll(acc, qualified([...names, field], ctx).keys);
      // A column by that name (composite): all of it.
      addAll(acc, (names.length === 1 ? unqualified(names[0]!, ctx, false) : qualified(names, ctx)).keys);
      collect(ind, ctx, acc);
      return;
    }
  }
  collect(v.arg, ctx, acc);
  collect(ind, ctx, acc);
}

// ---------------------------------------------------------------------------------------------
// Output names (PostgreSQL's FigureColname, parse_target.c).

const XML_NAMES: Record<string, string> = {
  IS_XMLCONCAT: 'xmlconcat', IS_XMLELEMENT: 'xmlelement', IS_XMLFOREST: 'xmlforest', IS_XMLPARSE: 'xmlparse',
  IS_XMLPI: 'xmlpi', IS_XMLROOT: 'xmlroot', IS_XMLSERIALIZE: 'xmlserialize',
};

const NAMED_NODES: Record<string, string> = {
  GroupingFunc: 'grouping', MergeSupportFunc: 'merge_action', A_ArrayExpr: 'array', RowExpr: 'row', CoalesceExpr: 'coalesce',
  XmlSerialize: 'xmlserialize', JsonParseExpr: 'json', JsonScalarExpr: 'json_scalar', JsonSerializeExpr: 'json_serialize',
  JsonObjectConstructor: 'json_object', JsonArrayConstructor: 'json_array', JsonArrayQueryConstructor: 'json_array',
  JsonObjectAgg: 'json_objectagg', JsonArrayAgg: 'json_arrayagg',
};

const JSON_FUNC_NAMES: Record<string, string> = { JSON_EXISTS_OP: 'json_exists', JSON_QUERY_OP: 'json_query', JSON_VALUE_OP: 'json_value' };

/** Name and strength (2: a real name, 1: a fallback like "case" or a type name), or null for "?column?". */
function figure(node: unknown): [string, number] | null {
  const [type, v] = entry(node);
  const named = NAMED_NODES[type];
  if (named !== undefined) return [named, 2];
  switch (type) {
    case 'ColumnRef': {
      const fields = refFields(v).filter((f): f is string => f !== null);
      return fields.length > 0 ? [fields[fields.length - 1]!, 2] : null;
    }
    case 'A_Indirection': {
      const fields = list(v.indirection).map(sval).filter((f): f is string => f !== undefined);
      return fields.length > 0 ? [fields[fields.length - 1]!, 2] : figure(v.arg);
    }
    case 'FuncCall': {
      const fn = list(v.funcname).map(sval);
      const last = fn[fn.length - 1];
      return last !== undefined ? [last, 2] : null;
    }
    case 'A_Expr':
      return v.kind === 'AEXPR_NULLIF' ? ['nullif', 2] : null;
    case 'TypeCast': {
      const inner = figure(v.arg);
      if (inner !== null && inner[1] > 1) return inner;
      const tn = list(obj(v.typeName)?.names).map(sval);
      const last = tn[tn.length - 1];
      return last !== undefined ? [last, 1] : inner;
    }
    case 'CollateClause':
      return figure(v.arg);
    case 'CaseExpr': {
      const d = figure(v.defresult);
      return d !== null && d[1] > 1 ? d : ['case', 1];
    }
    case 'MinMaxExpr':
      return [v.op === 'IS_GREATEST' ? 'greatest' : 'least', 2];
    case 'SQLValueFunction':
      return [String(v.op ?? '').replace(/^SVFOP_/, '').replace(/_N$/, '').toLowerCase(), 2];
    case 'XmlExpr': {
      const n = XML_NAMES[String(v.op)];
      return n !== undefined ? [n, 2] : null;
    }
    case 'JsonFuncExpr': {
      const n = JSON_FUNC_NAMES[String(v.op)];
      return n !== undefined ? [n, 2] : null;
    }
    case 'SubLink':
      switch (v.subLinkType) {
        case 'EXISTS_SUBLINK':
          return ['exists', 2];
        case 'ARRAY_SUBLINK':
          return ['array', 2];
        case 'EXPR_SUBLINK': {
          const n = firstOutputName(v.subselect);
          return n !== undefined ? [n, 2] : null;
        }
        default:
          return null;
      }
    default:
      return null;
  }
}

/** Name of a query's first output column (a scalar sub-select's column name). */
function firstOutputName(node: unknown): string | undefined {
  let s = obj(obj(node)?.SelectStmt);
  while (s !== undefined && s.op !== undefined && s.op !== 'SETOP_NONE') s = obj(s.larg);
  if (s === undefined) return undefined;
  if (s.valuesLists !== undefined) return 'column1';
  const rt = obj(obj(list(s.targetList)[0])?.ResTarget);
  if (rt === undefined) return undefined;
  return typeof rt.name === 'string' ? rt.name : figure(rt.val)?.[0];
}

// ---------------------------------------------------------------------------------------------
// Queries.

/** Output columns of a wrapped SELECT / INSERT / UPDATE / DELETE / MERGE node. */
function queryCols(node: unknown, ctx: Ctx): readonly Col[] {
  const [type, v] = entry(node);
  switch (type) {
    case 'SelectStmt':
      return selectCols(v, ctx);
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return dmlCols(type, v, ctx);
    default: {
      // Not a query form we know: one opaque column holding everything it reads.
      const acc = new Set<Key>();
      collect(node, ctx, acc);
      return [{ name: '?column?', keys: [...acc], direct: false, star: true, starRels: null }];
    }
  }
}

function selectCols(s: Node, outer: Ctx): readonly Col[] {
  const env = s.withClause !== undefined ? withEnv(obj(s.withClause) ?? {}, outer) : outer.env;
  const ctx: Ctx = { scope: outer.scope, env };
  if (s.op !== undefined && s.op !== 'SETOP_NONE') {
    return setOperation(selectCols(obj(s.larg) ?? {}, ctx), selectCols(obj(s.rarg) ?? {}, ctx));
  }
  if (s.valuesLists !== undefined) return valuesCols(list(s.valuesLists), ctx);
  const rels = fromRels(list(s.fromClause), ctx);
  return targetCols(list(s.targetList), { scope: { rels, parent: outer.scope }, env });
}

/** UNION / INTERSECT / EXCEPT: column i derives from column i of both branches; names from the left. */
function setOperation(l: readonly Col[], r: readonly Col[]): Col[] {
  if (l.length === r.length && !l.some((c) => c.star) && !r.some((c) => c.star)) {
    return l.map((c, i) => ({ name: c.name, keys: unique([...c.keys, ...r[i]!.keys]), direct: false, star: false, starRels: null }));
  }
  // A star makes positions unknown: every column may come from anything either branch reads.
  const all = unique([...allKeys(l), ...allKeys(r)]);
  return l.map((c) => ({ name: c.name, keys: all, direct: false, star: c.star, starRels: null }));
}

function valuesCols(rows: Node[], ctx: Ctx): Col[] {
  const items = rows.map((row) => list(obj(row.List)?.items));
  const width = Math.max(0, ...items.map((r) => r.length));
  const out: Col[] = [];
  for (let i = 0; i < width; i++) {
    const acc = new Set<Key>();
    for (const row of items) collect(row[i], ctx, acc);
    out.push({ name: `column${i + 1}`, keys: [...acc], direct: false, star: false, starRels: null });
  }
  return out;
}

function targetCols(targets: Node[], ctx: Ctx): Col[] {
  const out: Col[] = [];
  for (const t of targets) {
    const rt = obj(t.ResTarget);
    if (rt === undefined) continue;
    const alias = typeof rt.name === 'string' ? rt.name : undefined;
    const ref = obj(obj(rt.val)?.ColumnRef);
    if (ref !== undefined) {
      const fields = refFields(ref);
      if (fields[fields.length - 1] === null) {
        const rels = starRels(fields, ctx);
        const keys = unique(rels.flatMap((r) => r.whole()));
        out.push({ name: fields.map((f) => f ?? '*').join('.'), keys, direct: false, star: true, starRels: rels });
        continue;
      }
      const r = resolveRef(ref, ctx);
      out.push({ name: alias ?? fields[fields.length - 1] ?? '?column?', keys: unique(r.keys), direct: r.direct, star: false, starRels: null });
      continue;
    }
    const acc = new Set<Key>();
    collect(rt.val, ctx, acc);
    out.push({ name: alias ?? figure(rt.val)?.[0] ?? '?column?', keys: [...acc], direct: false, star: false, starRels: null });
  }
  return out;
}

/** Apply `AS x(a, b, ...)` column aliases, positionally. */
function renameCols(cols: readonly Col[], names: readonly string[] | null): readonly Col[] {
  if (names === null) return cols;
  const firstStar = cols.findIndex((c) => c.star);
  const known = firstStar < 0 ? cols.length : firstStar;
  const out: Col[] = [];
  for (let i = 0; i < known; i++) out.push(i < names.length ? { ...cols[i]!, name: names[i]! } : cols[i]!);
  if (names.length > known) {
    // Names past a star land on columns we cannot place: each may be any of the rest.
    const rest = firstStar < 0 ? allKeys(cols) : allKeys(cols.slice(firstStar));
    for (let i = known; i < names.length; i++) out.push({ name: names[i]!, keys: rest, direct: false, star: false, starRels: null });
  }
  if (firstStar >= 0) out.push(...cols.slice(firstStar));
  return out;
}

/** The CTEs of a WITH clause, as a new environment over `outer`'s. */
function withEnv(w: Node, outer: Ctx): Env {
  const ctes = new Map<string, Cte>();
  const env: Env = { ctes, parent: outer.env };
  const ctx: Ctx = { scope: outer.scope, env };
  const defs = list(w.ctes).map((c) => obj(c.CommonTableExpr) ?? {});
  const analyze = (d: Node): readonly Col[] => searchCycleCols(d, renameCols(queryCols(d.ctequery, ctx), aliasColnames({ colnames: d.aliascolnames })));
  if (w.recursive !== true) {
    // Each body sees the CTEs before it only.
    for (const d of defs) ctes.set(String(d.ctename), { cols: analyze(d) });
    return env;
  }
  // WITH RECURSIVE: every body sees every CTE, itself included. Iterate from "nothing known" until
  // no column gains a source: each pass only adds sources, so it ends.
  for (const d of defs) ctes.set(String(d.ctename), { cols: null });
  for (let pass = 0; ; pass++) {
    let changed = false;
    for (const d of defs) {
      const name = String(d.ctename);
      const prev = ctes.get(name)?.cols ?? null;
      const next = analyze(d);
      const merged = prev === null ? next : mergeCols(prev, next);
      if (prev === null || merged.some((c, i) => c.keys.length !== prev[i]?.keys.length)) changed = true;
      ctes.set(name, { cols: merged });
    }
    if (!changed) break;
    if (pass >= MAX_RECURSIVE_PASSES) {
      // Not settled (should not happen): every column of every CTE gets every source seen.
      const all = unique(defs.flatMap((d) => allKeys(ctes.get(String(d.ctename))?.cols ?? [])));
      for (const d of defs) {
        const name = String(d.ctename);
        ctes.set(name, { cols: (ctes.get(name)?.cols ?? []).map((c) => ({ ...c, keys: all, starRels: c.star ? null : c.starRels })) });
      }
      break;
    }
  }
  return env;
}

/**
 * SEARCH ... SET seq / CYCLE ... SET mark USING path add columns to a recursive CTE: the sequence
 * and path columns hold row values of the listed columns (taken here as all of them).
 */
function searchCycleCols(d: Node, cols: readonly Col[]): readonly Col[] {
  const search = obj(d.search_clause);
  const cycle = obj(d.cycle_clause);
  if (search === undefined && cycle === undefined) return cols;
  const all = allKeys(cols);
  const out = [...cols];
  const add = (name: unknown, keys: readonly Key[]): void => {
    if (typeof name === 'string') out.push({ name, keys, direct: false, star: false, starRels: null });
  };
  add(search?.search_seq_column, all);
  add(cycle?.cycle_mark_column, []);
  add(cycle?.cycle_path_column, all);
  return out;
}

/** Positional union of two passes over the same query (same shape). */
function mergeCols(prev: readonly Col[], next: readonly Col[]): readonly Col[] {
  if (prev.length !== next.length) {
    const all = unique([...allKeys(prev), ...allKeys(next)]);
    return next.map((c) => ({ ...c, keys: all }));
  }
  return next.map((c, i) => ({ ...c, keys: unique([...prev[i]!.keys, ...c.keys]) }));
}

function findCte(name: string, env: Env | null): Cte | undefined {
  for (let e = env; e !== null; e = e.parent) {
    const c = e.ctes.get(name);
    if (c !== undefined) return c;
  }
  return undefined;
}

/**
 * FROM items, left to right. A LATERAL subquery, and any function or table function (implicitly
 * lateral), sees the items before it; a plain subquery sees only the enclosing query's scope.
 */
function fromRels(items: Node[], ctx: Ctx): Rel[] {
  const rels: Rel[] = [];
  const lateral: Ctx = { scope: { rels, parent: ctx.scope }, env: ctx.env };
  for (const item of items) fromItem(item, lateral, ctx, rels);
  return rels;
}

/** One FROM item into `out`; `lateral` sees the items already in `out`, `plain` does not. */
function fromItem(node: unknown, lateral: Ctx, plain: Ctx, out: Rel[]): void {
  const [type, v] = entry(node);
  switch (type) {
    case 'RangeVar':
      out.push(rangeVarRel(v, plain.env));
      return;
    case 'RangeSubselect': {
      const name = aliasName(v.alias);
      const cols = queryCols(v.subquery, v.lateral === true ? lateral : plain);
      out.push(new DerivedRel(name !== undefined ? [name] : [], renameCols(cols, aliasColnames(v.alias))));
      return;
    }
    case 'JoinExpr': {
      const start = out.length;
      fromItem(v.larg, lateral, plain, out);
      fromItem(v.rarg, lateral, plain, out);
      const joined = out.slice(start).filter((r) => !r.hidden);
      const usingAlias = aliasName(v.join_using_alias);
      if (usingAlias !== undefined) out.push(new JoinRel([usingAlias], joined, null));
      const alias = aliasName(v.alias);
      if (alias !== undefined) out.push(new JoinRel([alias], joined, aliasColnames(v.alias)));
      return;
    }
    case 'RangeTableSample':
      fromItem(v.relation, lateral, plain, out);
      return;
    case 'RangeFunction': {
      // Set-returning functions: their columns derive from their arguments.
      const acc = new Set<Key>();
      collect(v.functions, lateral, acc);
      const name = aliasName(v.alias);
      const quals: string[] = [];
      if (name !== undefined) quals.push(name);
      else {
        // `FROM generate_series(1, 3)`: a lone function is qualified by its name.
        const fns = list(v.functions);
        if (fns.length === 1) {
          const call = obj(obj(list(obj(fns[0]!.List)?.items)[0])?.FuncCall);
          const parts = list(call?.funcname).map(sval);
          const last = parts[parts.length - 1];
          if (last !== undefined) quals.push(last);
        }
      }
      out.push(new OpaqueRel(quals, [...acc]));
      return;
    }
    default: {
      // XMLTABLE, JSON_TABLE, anything newer: opaque over everything it reads.
      const acc = new Set<Key>();
      collect(v, lateral, acc);
      const name = aliasName(v.alias);
      out.push(new OpaqueRel(name !== undefined ? [name] : [], [...acc]));
    }
  }
}

function rangeVarRel(v: Node, env: Env | null): Rel {
  const rel = String(v.relname ?? '');
  const schema = typeof v.schemaname === 'string' ? v.schemaname : undefined;
  const catalog = typeof v.catalogname === 'string' ? v.catalogname : undefined;
  const alias = aliasName(v.alias);
  if (schema === undefined && catalog === undefined) {
    const cte = findCte(rel, env);
    if (cte !== undefined) {
      const quals = [alias ?? rel];
      // First pass of a recursive WITH: nothing known yet (later passes fill it in).
      if (cte.cols === null) return new OpaqueRel(quals, []);
      return new DerivedRel(quals, renameCols(cte.cols, aliasColnames(v.alias)));
    }
  }
  const table = [catalog, schema, rel].filter((p): p is string => p !== undefined).join('.');
  let quals: string[];
  if (alias !== undefined) quals = [alias];
  else {
    quals = [rel];
    if (schema !== undefined) quals.push(`${schema}.${rel}`);
    if (catalog !== undefined) quals.push(table);
  }
  return new TableRel(table, quals, aliasColnames(v.alias));
}

// ---------------------------------------------------------------------------------------------
// INSERT / UPDATE / DELETE / MERGE ... RETURNING.

/**
 * RETURNING is a target list over the target table (plus UPDATE's FROM, DELETE's USING, MERGE's
 * source). A returned column holds what the statement wrote into it, so the sources of the
 * written values (INSERT's rows, SET expressions, ON CONFLICT and MERGE actions) are added to the
 * target's columns.
 */
function dmlCols(type: string, v: Node, outer: Ctx): readonly Col[] {
  const env = v.withClause !== undefined ? withEnv(obj(v.withClause) ?? {}, outer) : outer.env;
  const ctx: Ctx = { scope: outer.scope, env };
  const rc = obj(v.returningClause);
  const returning = rc !== undefined ? list(rc.exprs) : list(v.returningList);
  if (returning.length === 0) return [];
  const relation = obj(v.relation) ?? {};
  const base = rangeVarRel(relation, null);
  // PostgreSQL 18: RETURNING old.x / new.x, renamable with RETURNING WITH (OLD AS o, NEW AS n).
  const quals = [...base.quals, 'old', 'new'];
  for (const o of list(rc?.options)) {
    const name = obj(o.ReturningOption)?.value;
    if (typeof name === 'string') quals.push(name);
  }
  const target = new TableRel(base instanceof TableRel ? base.table : String(relation.relname ?? ''), quals, null);
  const rels: Rel[] = [target];
  const lc: Ctx = { scope: { rels, parent: outer.scope }, env };
  const pending: Array<[string, Key[]]> = [];
  switch (type) {
    case 'InsertStmt': {
      if (v.selectStmt !== undefined) {
        const cols = queryCols(v.selectStmt, ctx); // the rows inserted do not see the target
        const names = list(v.cols).map((c) => String(obj(c.ResTarget)?.name ?? ''));
        if (names.length > 0 && names.length === cols.length && !cols.some((c) => c.star)) names.forEach((n, i) => pending.push([n, [...cols[i]!.keys]]));
        else target.assignedAny.push(...allKeys(cols));
      }
      flush(target, pending);
      const conflict = obj(v.onConflictClause);
      if (conflict !== undefined) {
        const cc: Ctx = { scope: { rels: [target, new AliasRel(['excluded'], target)], parent: outer.scope }, env };
        setSources(list(conflict.targetList), cc, pending);
      }
      break;
    }
    case 'UpdateStmt':
      for (const item of list(v.fromClause)) fromItem(item, lc, ctx, rels);
      setSources(list(v.targetList), lc, pending);
      break;
    case 'DeleteStmt':
      for (const item of list(v.usingClause)) fromItem(item, lc, ctx, rels);
      break;
    case 'MergeStmt':
      fromItem(v.sourceRelation, lc, ctx, rels);
      for (const w of list(v.mergeWhenClauses)) {
        const m = obj(w.MergeWhenClause) ?? {};
        if (m.commandType === 'CMD_UPDATE') setSources(list(m.targetList), lc, pending);
        else if (m.commandType === 'CMD_INSERT') {
          const values = list(m.values);
          const names = list(m.targetList).map((t) => String(obj(t.ResTarget)?.name ?? ''));
          if (names.length > 0 && names.length === values.length) {
            names.forEach((n, i) => {
              const acc = new Set<Key>();
              collect(values[i], lc, acc);
              pending.push([n, [...acc]]);
            });
          } else {
            const acc = new Set<Key>();
            collect(values, lc, acc);
            target.assignedAny.push(...acc);
          }
        }
      }
      break;
  }
  flush(target, pending);
  return targetCols(returning, lc);
}

/** `SET col = expr` / `SET (a, b) = (SELECT ...)`: the sources written to each column. */
function setSources(targets: Node[], ctx: Ctx, out: Array<[string, Key[]]>): void {
  for (const t of targets) {
    const rt = obj(t.ResTarget);
    if (rt === undefined) continue;
    const name = String(rt.name ?? '');
    const acc = new Set<Key>();
    const multi = obj(obj(rt.val)?.MultiAssignRef);
    if (multi !== undefined) {
      const colno = Number(multi.colno ?? 0);
      const [type, src] = entry(multi.source);
      if (type === 'SubLink') {
        const cols = queryCols(src.subselect, ctx);
        const col = cols[colno - 1];
        addAll(acc, col !== undefined && !cols.some((c) => c.star) ? col.keys : allKeys(cols));
      } else if (type === 'RowExpr' && list(src.args)[colno - 1] !== undefined) collect(list(src.args)[colno - 1], ctx, acc);
      else collect(multi.source, ctx, acc);
    } else collect(rt.val, ctx, acc);
    collect(rt.indirection, ctx, acc); // SET a[i] = ...: the subscript
    out.push([name, [...acc]]);
  }
}

function flush(target: TableRel, pending: Array<[string, Key[]]>): void {
  for (const [name, keys] of pending) {
    if (keys.length === 0) continue;
    const prev = target.assigned.get(name);
    target.assigned.set(name, prev === undefined ? keys : unique([...prev, ...keys]));
  }
  pending.length = 0;
}

// ---------------------------------------------------------------------------------------------
// Entry point.

/** Keys to sorted SourceColumns (function calls left out); a whole row of a table covers its single columns. */
function toSources(keys: readonly Key[]): SourceColumn[] {
  const byTable = new Map<string, Set<string>>();
  for (const k of keys) {
    const i = k.indexOf(SEP);
    const table = k.slice(0, i);
    if (table === CALL) continue;
    const column = k.slice(i + 1);
    let cols = byTable.get(table);
    if (cols === undefined) byTable.set(table, (cols = new Set()));
    cols.add(column);
  }
  const out: SourceColumn[] = [];
  for (const table of [...byTable.keys()].sort()) {
    const cols = byTable.get(table)!;
    if (cols.has(WHOLE)) out.push({ table, column: WHOLE });
    else for (const column of [...cols].sort()) out.push({ table, column });
  }
  return out;
}

/** The function calls among the keys, sorted. */
function toFunctions(keys: readonly Key[]): string[] {
  const out: string[] = [];
  for (const k of keys) if (k.charCodeAt(0) === 0 /* CALL + SEP */) out.push(k.slice(1));
  return [...new Set(out)].sort();
}

const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Lineage of the output columns of the statement (a SELECT, VALUES, a WITH ... SELECT, a set operation, INSERT/UPDATE/DELETE ... RETURNING, EXPLAIN is not needed). null when the text is not a single statement that returns rows, or cannot be parsed. */
export function outputLineage(text: string): OutputLineage[] | null {
  let stmts: unknown[];
  try {
    stmts = list((parseSync(text) as Node).stmts);
  } catch {
    return null; // not parseable (or the parser is not loaded): no lineage
  }
  if (stmts.length !== 1) return null;
  const stmt = obj(obj(stmts[0])?.stmt);
  const [type, v] = entry(stmt);
  if (type === 'SelectStmt') {
    if (v.intoClause !== undefined) return null; // SELECT INTO creates a table, returns no rows
  } else if (DML.has(type)) {
    const rc = obj(v.returningClause);
    if ((rc !== undefined ? list(rc.exprs) : list(v.returningList)).length === 0) return null;
  } else return null;
  let cols: readonly Col[];
  try {
    cols = queryCols(stmt, { scope: null, env: null });
  } catch {
    return null; // a tree shape we did not foresee, or nesting too deep for the stack
  }
  return cols.map((c) => ({ name: c.name, direct: c.direct, sources: toSources(c.keys), star: c.star, functions: toFunctions(c.keys) }));
}
