/**
 * The PostgreSQL catalog for the pipeline: result columns carry their table's OID and attribute
 * number (RowDescription); this resolves them to schema, table and column names through
 * pg_catalog, on a connection of Gatehouse's own to the connection's upstream (same credentials,
 * never a client's session). One per Gatehouse connection, shared by its sessions, cached until
 * DDL passes. Queries are serialized on the one catalog session, and a broken session is
 * reopened on the next lookup.
 */
import type { Logger } from 'pino';
import type { ResolvedConnection } from '../../config/load.js';
import { UpstreamUnavailable } from '../../errors.js';
import { BackendCode, BufferReader, messages, parseErrorFields } from '../../protocol/postgres/index.js';
import type { Catalog, ColumnSource } from '../../session/types.js';
import { SocketReader } from './socket-io.js';
import { connectUpstream, type UpstreamSession } from './upstream.js';

/** Most tables remembered; the oldest are forgotten first. */
const MAX_TABLES = 10_000;

interface TableInfo {
  readonly schema: string;
  readonly table: string;
  /** attnum -> column name. */
  readonly columns: Map<number, string>;
  /** A view's (or materialized view's) defining query, for the lineage of its columns. */
  readonly definition: string | null;
}

/** A SQL string literal (standard_conforming_strings on, as Gatehouse's own session has it). */
const literal = (s: string): string => `'${s.replace(/'/g, "''")}'`;

export class PgCatalog implements Catalog {
  readonly #conn: ResolvedConnection;
  readonly #log: Logger;
  /** table OID -> info, or null when the OID is not a table with columns. */
  readonly #tables = new Map<number, TableInfo | null>();
  /**
   * Table name as the SQL analysis reports it -> the OIDs of every relation it may name (empty:
   * none). An unqualified name is resolved in every schema, because the client's search_path
   * (which may differ from this session's) decides which one it means.
   */
  readonly #names = new Map<string, number[]>();
  /**
   * Names of the pg_catalog (and information_schema) functions no function of another schema
   * shares: a call by such a name runs the built-in whatever the client's search_path. null
   * until loaded; reloaded after DDL (a function created later may share a name).
   */
  #builtins: Set<string> | null = null;
  #session: { upstream: UpstreamSession; io: SocketReader } | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(conn: ResolvedConnection, logger: Logger) {
    this.#conn = conn;
    this.#log = logger;
  }

  column(tableId: number, columnId: number): ColumnSource | null | undefined {
    const t = this.#tables.get(tableId);
    if (t === undefined) return undefined;
    if (t === null) return null;
    const column = t.columns.get(columnId);
    if (column !== undefined) return { schema: t.schema, table: t.table, column };
    // A user column this table did not have when it was loaded: added since by DDL that did not
    // pass through this connection. Unknown until reloaded, so it is not classified by its alias.
    // System columns (ctid, xmin: attnum < 0) are not table data.
    return columnId > 0 ? undefined : null;
  }

  viewDefinition(tableId: number): string | null | undefined {
    const t = this.#tables.get(tableId);
    return t === undefined ? undefined : t === null ? null : t.definition;
  }

  tableColumns(name: string): readonly ColumnSource[] | null | undefined {
    const oids = this.#names.get(name);
    if (oids === undefined) return undefined;
    if (oids.length === 0) return null;
    const out: ColumnSource[] = [];
    let found = false;
    for (const oid of oids) {
      const t = this.#tables.get(oid);
      if (t === undefined) return undefined;
      if (t === null) continue;
      found = true;
      for (const column of t.columns.values()) out.push({ schema: t.schema, table: t.table, column });
    }
    return found ? out : null;
  }

  builtinFunction(name: string): boolean | undefined {
    return this.#builtins === null ? undefined : this.#builtins.has(name);
  }

  load(tableIds: readonly number[], names: readonly string[], functions = false): Promise<void> {
    const run = this.#queue.then(async () => {
      if (functions && this.#builtins === null) await this.#loadFunctions();
      await this.#load(tableIds, names);
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  invalidate(): void {
    this.#tables.clear();
    this.#names.clear();
    this.#builtins = null;
  }

  close(): void {
    this.#session?.upstream.socket.destroy();
    this.#session = null;
  }

  async #loadFunctions(): Promise<void> {
    const rows = await this.#query(
      `SELECT p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace GROUP BY p.proname ` +
        `HAVING bool_and(n.nspname IN ('pg_catalog', 'information_schema'))`,
    );
    this.#builtins = new Set(rows.map(([name]) => name!));
  }

  async #load(tableIds: readonly number[], names: readonly string[]): Promise<void> {
    // Every id asked for is (re)loaded: the pipeline asks only for tables it has never seen and
    // for columns a cached table lacks (added by DDL outside this connection).
    const ids = [...new Set(tableIds.filter((id) => id !== 0))];
    const wanted = [...new Set(names.filter((n) => !this.#names.has(n)))];
    if (ids.length === 0 && wanted.length === 0) return;
    if (wanted.length > 0) {
      // Names come from the parse tree: case kept, quotes removed, parts joined with ".". So match
      // pg_class exactly (to_regclass would fold case) and, for an unqualified name, in every
      // schema: this session's search_path is not the client's (fail closed: all candidates count).
      const parts = wanted.map((n) => n.split('.'));
      const rel = (p: string[]): string => literal(p[p.length - 1]!);
      const nsp = (p: string[]): string => (p.length >= 2 ? literal(p[p.length - 2]!) : 'NULL');
      const rows = await this.#query(
        `SELECT t.n, c.oid FROM unnest(ARRAY[${wanted.map(literal).join(',')}]::text[], ARRAY[${parts.map(nsp).join(',')}]::text[], ARRAY[${parts.map(rel).join(',')}]::text[]) AS t(n, s, r) ` +
          `LEFT JOIN (pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace) ` +
          `ON c.relname = t.r AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND (t.s IS NULL OR ns.nspname = t.s)`,
      );
      for (const n of wanted) this.#names.set(n, []);
      for (const [n, oid] of rows) {
        if (oid === null) continue;
        const id = Number(oid);
        this.#names.get(n!)!.push(id);
        if (!this.#tables.has(id)) ids.push(id);
      }
    }
    if (ids.length === 0) return;
    // OIDs are integers we parsed from the wire: safe to inline.
    const rows = await this.#query(
      `SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname, ` +
        `CASE WHEN c.relkind IN ('v', 'm') AND a.attnum = 1 THEN pg_catalog.pg_get_viewdef(c.oid) END FROM pg_catalog.pg_class c ` +
        `JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ` +
        `JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ` +
        `WHERE c.oid IN (${ids.map((id) => String(Math.trunc(id))).join(',')})`,
    );
    const found = new Map<number, TableInfo>();
    const definitions = new Map<number, string>();
    for (const [oid, schema, table, attnum, attname, definition] of rows) {
      const id = Number(oid);
      if (definition !== null && definition !== undefined) definitions.set(id, definition);
      let t = found.get(id);
      if (t === undefined) found.set(id, (t = { schema: schema!, table: table!, columns: new Map(), definition: null }));
      t.columns.set(Number(attnum), attname!);
    }
    for (const [id, definition] of definitions) found.set(id, { ...found.get(id)!, definition });
    for (const id of ids) {
      if (this.#tables.size >= MAX_TABLES) this.#tables.delete(this.#tables.keys().next().value!);
      this.#tables.set(id, found.get(id) ?? null);
    }
  }

  /** Run one simple query on the catalog session; rows as text values. */
  async #query(sql: string): Promise<Array<Array<string | null>>> {
    try {
      return await this.#run(sql);
    } catch (err) {
      // One retry on a fresh session (the old one may have been closed by the server).
      this.close();
      this.#log.warn({ connection: this.#conn.name, reason: (err as Error).message }, 'catalog session failed; reconnecting');
      return this.#run(sql);
    }
  }

  async #run(sql: string): Promise<Array<Array<string | null>>> {
    if (this.#session === null) {
      const upstream = await connectUpstream(this.#conn, new Map([['application_name', 'gatehouse-catalog']]));
      const io = new SocketReader(upstream.socket);
      if (upstream.leftover.length > 0) io.reader.push(upstream.leftover);
      upstream.socket.on('error', () => {});
      this.#session = { upstream, io };
    }
    const { upstream, io } = this.#session;
    upstream.socket.write(messages.query(sql));
    const rows: Array<Array<string | null>> = [];
    let error: string | undefined;
    const r = new BufferReader();
    for (;;) {
      const msg = await io.next((h) => h.next(64 << 20));
      if (msg.tag === BackendCode.DataRow) {
        r.setBuffer(msg.body, 0, msg.body.length);
        const n = r.int16();
        const row: Array<string | null> = new Array(n);
        for (let i = 0; i < n; i++) {
          const len = r.int32();
          row[i] = len < 0 ? null : r.bytes(len).toString('utf8');
        }
        rows.push(row);
      } else if (msg.tag === BackendCode.ErrorResponse) {
        const f = parseErrorFields(msg.body, 0, msg.body.length);
        error = `${f.get('M') ?? 'error'} (SQLSTATE ${f.get('C') ?? 'XX000'})`;
      } else if (msg.tag === BackendCode.ReadyForQuery) break;
    }
    if (error !== undefined) throw new UpstreamUnavailable(`connection "${this.#conn.name}": catalog query failed: ${error}`);
    return rows;
  }
}
