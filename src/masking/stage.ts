/**
 * The masking stage of the statement pipeline. For a statement decided `mask` it chooses, once
 * per result shape, which result columns are sensitive and how to mask each, and returns the row
 * transform the engine applies to every DataRow on the wire.
 *
 * A result column's class comes from where it comes from:
 *   - a table column (the engine's column metadata names it; the catalog resolves the name):
 *     explicit configuration (`masking.columns`), else the column-name rules;
 *   - a computed column (`upper(email)`, a CTE or subquery column, `row_to_json(c)`): the
 *     statement's lineage (src/sql/pg-lineage.ts) lists the source columns; the strictest of
 *     their classes wins, and a whole-row reference counts every column of its table.
 * What cannot be resolved (catalog unavailable, a FETCH or EXECUTE whose query is not in sight,
 * a value that went through a function that is not built-in, whose body may read any table) is
 * masked as a secret: fail closed. The plan (which function for which class) comes from the
 * matching `mask` rules (docs/masking.md).
 */
import type { Logger } from 'pino';
import type { PipelinePlugin } from '../session/pipeline.js';
import type { Catalog, Decision, Execution, MaskFunctionSpec, MaskPlan, ResultColumn, RowTransform, SessionInfo, Statement } from '../session/types.js';
import { outputLineage, type OutputLineage, type SourceColumn } from '../sql/pg-lineage.js';
import { predicateColumns } from '../sql/pg-predicates.js';
import { isMaskClass, MASK_CLASSES, strictestOf, type MaskClass } from './classes.js';
import { findSensitive } from './detectors.js';
import { compileMasker, type Masker } from './functions.js';
import { createNameClassifier, type NameClassifier } from './names.js';
import { compileTextScrubber } from './text-scrubber.js';
import { ConfigError } from '../errors.js';

export interface MaskingStageOptions {
  /** "schema.table.column" or "table.column" -> class, or "none". */
  readonly columns: Readonly<Record<string, string>>;
  readonly nameRules: ReadonlyArray<{ readonly pattern: string; readonly class: string }>;
  readonly nameDefaults: boolean;
  /** HMAC key of the hash function. */
  readonly hashKey: Buffer;
  readonly logger: Logger;
  /** The configuration file, named in errors. */
  readonly file?: string;
}

/** Rule id of the refusal of COPY TO under masking. */
export const MASK_COPY_RULE = 'gatehouse.mask-copy';

/** Rule id of the refusal of predicates on masked columns (`refuse_predicates`). */
export const MASK_PREDICATE_RULE = 'gatehouse.mask-predicate';

/** What failing closed masks an unresolvable column as. */
const UNKNOWN: MaskClass = 'secret';

/** How an unresolvable column is masked when the plan names no function for `secret`. */
const FAIL_CLOSED: MaskFunctionSpec = { fn: 'redact' };

/** Kinds whose computed output holds no table data. */
const NO_TABLE_DATA = new Set(['SHOW', 'EXPLAIN', 'SET', 'RESET', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE']);

/**
 * Built-in functions that run a query or read a whole table, schema or database given by name
 * (their values come from no column in the statement's text).
 */
const READS_BY_NAME = new Set([
  'query_to_xml',
  'query_to_xml_and_xmlschema',
  'table_to_xml',
  'table_to_xml_and_xmlschema',
  'cursor_to_xml',
  'schema_to_xml',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xml_and_xmlschema',
]);

/**
 * Whether a function called by this name (as the lineage reports it) may read data the
 * statement's text does not show: anything but a built-in (or unknown while the catalog has
 * not loaded its function names).
 */
function opaqueFunction(catalog: Catalog | undefined, written: string): boolean {
  const dot = written.lastIndexOf('.');
  const fn = written.slice(dot + 1);
  if (READS_BY_NAME.has(fn)) return true;
  if (dot >= 0 && written.slice(0, dot) !== 'pg_catalog') return true;
  return catalog?.builtinFunction(fn) !== true;
}

/** The class of an unresolvable column, noting that it was one. */
function unknown(unresolved: { hit: boolean }): MaskClass {
  unresolved.hit = true;
  return UNKNOWN;
}

interface Chosen {
  readonly transform: RowTransform | null;
  readonly masked: readonly string[];
}

export class MaskingStage implements PipelinePlugin {
  readonly name = 'masking';
  readonly #names: NameClassifier;
  /** Explicit classes by "schema.table.column" and "table.column", lower case; null = exempt. */
  readonly #explicit = new Map<string, MaskClass | null>();
  readonly #key: Buffer;
  readonly #log: Logger;
  /** Per decision (one shape in one session): result shape -> transform. */
  #chosen = new WeakMap<Decision, Map<string, Chosen>>();
  readonly #lineage = new WeakMap<Decision, OutputLineage[] | null>();

  constructor(opts: MaskingStageOptions) {
    this.#names = createNameClassifier({ rules: opts.nameRules.map((r) => ({ pattern: r.pattern, class: r.class as MaskClass | 'none' })), defaults: opts.nameDefaults });
    const where = opts.file !== undefined ? `${opts.file}: masking.columns` : 'masking.columns';
    for (const [key, cls] of Object.entries(opts.columns)) {
      const parts = key.toLowerCase().split('.');
      if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) throw new ConfigError(`${where}: "${key}": expected "schema.table.column" or "table.column"`);
      if (cls !== 'none' && !isMaskClass(cls)) throw new ConfigError(`${where}: "${key}": unknown class "${cls}" (expected none or one of ${MASK_CLASSES.join(', ')})`);
      this.#explicit.set(parts.join('.'), cls === 'none' ? null : cls);
    }
    this.#key = opts.hashKey;
    this.#log = opts.logger;
  }

  /** Class of a table column: explicit configuration first, then the name rules. */
  classify(schema: string | null, table: string, column: string): MaskClass | null {
    const t = table.toLowerCase();
    const c = column.toLowerCase();
    if (schema !== null) {
      const full = this.#explicit.get(`${schema.toLowerCase()}.${t}.${c}`);
      if (full !== undefined) return full;
    }
    const short = this.#explicit.get(`${t}.${c}`);
    if (short !== undefined) return short;
    if (schema === null) {
      // A table named without its schema: any configured schema's entry for it counts.
      for (const [k, v] of this.#explicit) if (k.endsWith(`.${t}.${c}`) && k.split('.').length === 3) return v;
    }
    return this.#names.classify(column);
  }

  /**
   * COPY TO sends rows as COPY data, which is not rewritten: refused while results are masked.
   * With `refuse_predicates`, so is a statement that filters, joins, groups or sorts on a masked
   * column (the answer would reveal the clear values).
   */
  decide(_s: SessionInfo, st: Statement): Decision | undefined {
    const d = st.decision;
    const plan = d.masks;
    if (plan === undefined) return undefined;
    if (d.statement?.copyTo === true) {
      return {
        action: 'deny',
        ruleId: MASK_COPY_RULE,
        message: `COPY ... TO is not available while your results are masked (rule ${plan.rules.join(', ')}); use SELECT`,
        statement: d.statement,
        matches: d.matches,
      };
    }
    if (!plan.refusePredicates) return undefined;
    const masked = this.#maskedPredicate(d, plan, st.text);
    if (masked === null) return undefined;
    return {
      action: 'deny',
      ruleId: MASK_PREDICATE_RULE,
      message: `filtering, joining or sorting on the masked column "${masked}" is not allowed (rule ${plan.rules.join(', ')})`,
      statement: d.statement,
      matches: d.matches,
    };
  }

  /** Per decision: the first masked column its predicates use, or null (cached by shape). */
  readonly #predicates = new WeakMap<Decision, string | null>();

  #maskedPredicate(d: Decision, plan: MaskPlan, text: string): string | null {
    let hit = this.#predicates.get(d);
    if (hit !== undefined) return hit;
    hit = null;
    const cols = predicateColumns(text);
    const tables = d.statement?.tables ?? [];
    for (const c of cols ?? []) {
      // Classified against every table read (the name alone says nothing of the table): over-refuses rather than misses.
      const classes = tables.length === 0 ? [this.#names.classify(c)] : tables.map((t) => {
        const dot = t.lastIndexOf('.');
        return this.classify(dot < 0 ? null : t.slice(0, dot), dot < 0 ? t : t.slice(dot + 1), c);
      });
      if (classes.some((cls) => cls !== null && plan.byClass.has(cls))) {
        hit = c;
        break;
      }
    }
    this.#predicates.set(d, hit);
    return hit;
  }

  result(session: SessionInfo, exec: Execution, columns: readonly ResultColumn[]): RowTransform | null | Promise<RowTransform | null> {
    const d = exec.statement.decision;
    const plan = d.masks;
    if (plan === undefined) return null;
    let sig = '';
    for (const c of columns) sig += `${c.tableId}.${c.columnId}.${c.typeId}.${c.typmod}.${c.binary ? 1 : 0},`;
    let byShape = this.#chosen.get(d);
    const hit = byShape?.get(sig);
    if (hit !== undefined) {
      exec.masked = hit.masked;
      return hit.transform;
    }
    const lineage = this.#lineageOf(d, exec.statement);
    const catalog = session.catalog;
    const ids: number[] = [];
    const names: string[] = [];
    if (catalog !== undefined) {
      for (const c of columns) if (c.tableId !== 0 && catalog.column(c.tableId, c.columnId) === undefined) ids.push(c.tableId);
      if (columns.some((c) => c.tableId === 0) && lineage !== null) {
        for (const l of lineage) for (const s of l.sources) if (s.column === '*' && catalog.tableColumns(s.table) === undefined) names.push(s.table);
      }
    }
    const finish = (): RowTransform | null => {
      const chosen = this.#choose(session, d, plan, columns, lineage);
      if (byShape === undefined) this.#chosen.set(d, (byShape = new Map()));
      if (byShape.size < 64) byShape.set(sig, chosen);
      exec.masked = chosen.masked;
      return chosen.transform;
    };
    // Which function names are built-in is loaded once (again after DDL), with the first lookup.
    const functions = catalog !== undefined && catalog.builtinFunction('') === undefined;
    if (catalog === undefined || (ids.length === 0 && names.length === 0 && !functions)) return finish();
    return catalog.load(ids, names, functions).then(finish, (err: Error) => {
      // Without the catalog nothing is known about these columns: finish() masks them as secrets.
      this.#log.warn({ session: session.id, reason: err.message }, 'catalog lookup failed; unresolved result columns are masked as secrets');
      return finish();
    });
  }

  /** Error and notice texts of a masked statement: what the detectors find is masked. */
  scrub(_s: SessionInfo, st: Statement, text: string): string {
    if (st.decision.masks === undefined) return text;
    const matches = findSensitive(text);
    if (matches.length === 0) return text;
    let out = '';
    let at = 0;
    for (const m of matches) {
      out += text.slice(at, m.start) + '*'.repeat([...text.slice(m.start, m.end)].length);
      at = m.end;
    }
    return out + text.slice(at);
  }

  /** After DDL, names and classes may have changed. */
  complete(session: SessionInfo, exec: Execution): void {
    const kind = exec.statement.decision.statement?.kind;
    if (exec.sqlstate !== undefined || kind === undefined) return;
    const c = kind.charCodeAt(0);
    if ((c === 0x41 /* A */ && kind.startsWith('ALTER')) || (c === 0x44 /* D */ && kind.startsWith('DROP')) || (c === 0x43 /* C */ && (kind.startsWith('CREATE') || kind === 'COMMENT'))) {
      session.catalog?.invalidate();
      this.#chosen = new WeakMap();
    }
  }

  /** Lineage of view definitions, by text (views change only with DDL). */
  readonly #views = new Map<string, OutputLineage[] | null>();

  #viewLineage(definition: string): OutputLineage[] | null {
    let l = this.#views.get(definition);
    if (l === undefined) {
      try {
        l = outputLineage(definition);
      } catch {
        l = null;
      }
      if (this.#views.size >= 1000) this.#views.clear();
      this.#views.set(definition, l);
    }
    return l;
  }

  #lineageOf(d: Decision, st: Statement): OutputLineage[] | null {
    let l = this.#lineage.get(d);
    if (l === undefined) {
      try {
        l = outputLineage(st.text);
      } catch {
        l = null;
      }
      this.#lineage.set(d, l);
    }
    return l;
  }

  #choose(session: SessionInfo, d: Decision, plan: MaskPlan, columns: readonly ResultColumn[], lineage: OutputLineage[] | null): Chosen {
    const catalog = session.catalog;
    const idx: number[] = [];
    const maskers: Masker[] = [];
    const masked: string[] = [];
    const positional = lineage !== null && lineage.length === columns.length && !lineage.some((l) => l.star);
    columns.forEach((col, i) => {
      let cls: MaskClass | null;
      let label = col.name;
      // Set when something about the column could not be resolved: it is masked whatever the plan names.
      const unresolved = { hit: false };
      if (col.tableId !== 0) {
        const src = catalog?.column(col.tableId, col.columnId);
        if (src === undefined) cls = unknown(unresolved);
        else if (src === null) cls = this.#names.classify(col.name);
        else {
          cls = this.classify(src.schema, src.table, src.column);
          label = `${src.schema}.${src.table}.${src.column}`;
          // A view's column is also as sensitive as what it is computed from (a renamed email).
          const def = catalog!.viewDefinition(col.tableId);
          if (def) {
            const viewLineage = this.#viewLineage(def);
            const entry = viewLineage !== null && !viewLineage.some((l) => l.star) ? viewLineage[col.columnId - 1] : undefined;
            const sources = entry !== undefined ? entry.sources : (viewLineage ?? []).flatMap((l) => l.sources);
            cls = strictestOf([cls, ...sources.flatMap((s2) => this.#sourceClasses(catalog, s2, unresolved))]);
            const functions = entry !== undefined ? entry.functions : (viewLineage ?? []).flatMap((l) => l.functions);
            if (viewLineage === null) cls = unknown(unresolved);
            else if (functions.some((f) => opaqueFunction(catalog, f))) cls = strictestOf([cls, unknown(unresolved)]);
          }
        }
      } else if (lineage === null) {
        cls = NO_TABLE_DATA.has(d.statement?.kind ?? '') ? null : unknown(unresolved);
      } else {
        const sources = positional ? lineage[i]!.sources : lineage.flatMap((l) => l.sources);
        cls = strictestOf(sources.flatMap((s) => this.#sourceClasses(catalog, s, unresolved)));
        const functions = positional ? lineage[i]!.functions : lineage.flatMap((l) => l.functions);
        if (functions.some((f) => opaqueFunction(catalog, f))) cls = strictestOf([cls, unknown(unresolved)]);
      }
      if (cls === null) return;
      // A plan that names no function for `secret` still masks what could not be resolved.
      const spec = plan.byClass.get(cls) ?? (unresolved.hit ? FAIL_CLOSED : undefined);
      if (spec === undefined) return;
      idx.push(i);
      maskers.push(this.#compile(spec, col));
      masked.push(label);
    });
    if (idx.length === 0) return { transform: null, masked };
    return { transform: maskingTransform(idx, maskers), masked };
  }

  #sourceClasses(catalog: Catalog | undefined, s: SourceColumn, unresolved: { hit: boolean }): Array<MaskClass | null> {
    const dot = s.table.lastIndexOf('.');
    const schema = dot < 0 ? null : s.table.slice(0, dot);
    const table = dot < 0 ? s.table : s.table.slice(dot + 1);
    if (s.column !== '*') return [this.classify(schema, table, s.column)];
    // A whole row: every column of its table.
    const cols = catalog?.tableColumns(s.table);
    if (cols === undefined || cols === null) return [unknown(unresolved)];
    return cols.map((c) => this.classify(c.schema, c.table, c.column));
  }

  #compile(spec: MaskFunctionSpec, col: ResultColumn): Masker {
    const column = { typeId: col.typeId, typmod: col.typmod, binary: col.binary };
    if (spec.fn === 'scrub') return compileTextScrubber(MASK_CLASSES, column, { maskChar: spec.maskChar });
    return compileMasker({ fn: spec.fn as never, keepFirst: spec.keepFirst, keepLast: spec.keepLast, maskChar: spec.maskChar, key: this.#key }, column, { inPlace: true });
  }
}

/**
 * The row transform that masks result columns `idx[k]` (ascending) with `maskers[k]`. Straight
 * from the frame when every masker can (no Buffer per value): the whole row is planned first
 * (each masker remembers its own column), then the relay writes.
 */
export function maskingTransform(idx: readonly number[], maskers: readonly Masker[]): RowTransform {
  const n = idx.length;
  const ranges = maskers.map((m) => m.range);
  const ranged: RowTransform['ranged'] = ranges.every((r) => r !== undefined)
    ? {
        plan: (frame, offs, count, lengths) => {
          for (let k = 0; k < n; k++) {
            const i = idx[k]!;
            const len = i < count ? offs[2 * i + 1]! : -1;
            if (len < 0) {
              lengths[k] = -1;
              continue;
            }
            const out = ranges[k]!.plan(frame, offs[2 * i]!, offs[2 * i]! + len);
            if (out < 0) return false;
            lengths[k] = out;
          }
          return true;
        },
        writers: ranges.map((r) => r!.write),
      }
    : undefined;
  const transform: RowTransform = Object.assign(
    (values: Array<Buffer | null>): Array<Buffer | null> => {
      for (let k = 0; k < n; k++) {
        const i = idx[k]!;
        if (i < values.length) values[i] = maskers[k]!(values[i]!);
      }
      return values;
    },
    ranged !== undefined ? { touches: idx, ranged } : { touches: idx },
  );
  return transform;
}
