/**
 * Compact statement events: what the proxy's event loop hands the writer thread for the events it
 * records tens of thousands of times a second. Instead of a canonical body it sends numbers, short
 * strings and the ids of fragments it registered once (per session, per decision, per statement
 * shape); the writer thread assembles the canonical JSON, with its keys already in canonical
 * order. So the event loop builds no large string per statement and clones little: measured under
 * pgbench, building and cloning bodies there cost ~10% of its time, most of it garbage collection.
 *
 * Events travel in a Batch: NUMS numbers per event in one typed array, cloned in one piece, and
 * beside it only the strings events have (measured with bench/audit.ts, cloning 13 values per
 * event one by one was a sixteenth of the writer thread's time). The numbers of an event:
 *   [tag, seq, ts, sessionFragment, decisionFragment, statementFragment (-1: text in strs),
 *    duration_ms, rows, flags]
 * and its strings, in this order when its flags say it has them: the statement JSON (full-text
 * mode), command, sqlstate, refused_by, masked_columns JSON. A full event (tag FULL_EVENT) has
 * its COLUMN_COUNT + 1 row values (columns, then canonical body) in the strings instead.
 */
import type { ChainEncoder } from './chain.js';
import { COLUMN_COUNT } from './event.js';

export const FULL_EVENT = 0;
export const COMPACT_STATEMENT = 1;
export const COMPACT_INTENT = 2;

/** Numbers per event in Batch.nums. */
export const NUMS = 9;

// Flags (the event's last number).
const AFFECTS = 1;
const COMMAND = 2;
const SQLSTATE = 4;
const REFUSED = 8;
const MASKED = 16;
const TEXT = 32;

/** Events queued for the writer thread (see the top of this file). */
export class Batch {
  nums = new Float64Array(64 * NUMS);
  readonly strs: unknown[] = [];
  count = 0;

  /** Where the next event's numbers go (the array doubles when full). */
  #slot(): number {
    const o = this.count++ * NUMS;
    if (o + NUMS > this.nums.length) {
      const grown = new Float64Array(this.nums.length * 2);
      grown.set(this.nums);
      this.nums = grown;
    }
    return o;
  }

  /** A full event: its columns, then its canonical body. */
  full(row: readonly unknown[]): void {
    this.nums[this.#slot()] = FULL_EVENT;
    for (const v of row) this.strs.push(v);
  }

  compact(tag: number, seq: number, ts: number, session: number, decision: number, statement: number | string, durationMs: number, rows: number, affects: boolean, command: string | null, sqlstate: string | null, refusedBy: string | null, masked: string | null): void {
    const o = this.#slot();
    const n = this.nums;
    const strs = this.strs;
    n[o] = tag;
    n[o + 1] = seq;
    n[o + 2] = ts;
    n[o + 3] = session;
    n[o + 4] = decision;
    n[o + 6] = durationMs;
    n[o + 7] = rows;
    let flags = affects ? AFFECTS : 0;
    if (typeof statement === 'number') {
      n[o + 5] = statement;
    } else {
      n[o + 5] = -1;
      flags |= TEXT;
      strs.push(statement);
    }
    n[o + 8] = flags | this.#string(command, COMMAND) | this.#string(sqlstate, SQLSTATE) | this.#string(refusedBy, REFUSED) | this.#string(masked, MASKED);
  }

  /** Queue an optional string; its flag when present. */
  #string(v: string | null, flag: number): number {
    if (v === null) return 0;
    this.strs.push(v);
    return flag;
  }
}

/** A batch as the writer thread turns it into rows for the store (EventBatch). */
export interface Expanded {
  readonly rows: unknown[];
  readonly bodies: Buffer[];
  readonly hashes: string[];
  readonly sets: number[];
  /**
   * Per event, the template its body was written from (undefined: none), and where in the body
   * its own values are: the duration's bytes [durationFrom, durationTo) and its rows number.
   */
  readonly templates: Array<Template | undefined>;
  readonly durationFrom: number[];
  readonly durationTo: number[];
  readonly counts: number[];
}

/** An empty Expanded for `count` events. */
export function expanded(count: number): Expanded {
  return {
    rows: new Array(count * (COLUMN_COUNT + 1)),
    bodies: new Array(count),
    hashes: new Array(count),
    sets: new Array(count),
    templates: new Array(count),
    durationFrom: new Array(count),
    durationTo: new Array(count),
    counts: new Array(count),
  };
}

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
  /** The session's plain statement events, as pieces joined once, by statement fragment (see writeCompact). */
  readonly templates: Map<Buffer, Template>;
  /** Column set ids (EventBatch.sets) of this session's statement and intent events, by decision. */
  readonly sets: Map<EncodedFragment, number>;
  readonly intentSets: Map<EncodedFragment, number>;
}

/**
 * What a session's statement events share while it repeats a statement with the same outcome
 * (decision, statement fragment, command tag, rows or rows_affected; no masked columns, refusal
 * or SQLSTATE), as three runs of bytes between the numbers that change. The body of such an
 * event is `templatedBody(head, duration, middle, rows, seq, tail, ts)`.
 */
export interface Template {
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
      return { t: 's', client: utf8(f.client), connection: utf8(f.connection), identity: utf8(f.identity), session: utf8(f.session), sessionId: utf8(f.sessionId), identityName: utf8(f.identityName), onBehalfOf: utf8OrNull(f.onBehalfOf), connectionName: utf8(f.connectionName), environment: utf8(f.environment), templates: new Map(), sets: new Map(), intentSets: new Map() };
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

/** Templates kept per session (a session running more distinct statements starts afresh). */
const MAX_SESSION_TEMPLATES = 64;

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
 * Write the canonical body of the compact event whose numbers start at `nums[o]` and strings at
 * `strs[s]` into `enc` (its keys in canonical order), and the event's row (columns) at
 * `out.rows[i * (COLUMN_COUNT + 1)]`, its body's bytes at `out.bodies[i]`, its chain hash at
 * `out.hashes[i]` and its column set id at `out.sets[i]`. Returns where the next event's strings start.
 */
export function writeCompact(enc: ChainEncoder, w: CompactWriter, fragments: ReadonlyMap<number, EncodedFragment>, nums: Float64Array, o: number, strs: readonly unknown[], s: number, out: Expanded, i: number): number {
  const tag = nums[o]!;
  const seq = nums[o + 1]!;
  const ts = nums[o + 2]!;
  const f = fragments.get(nums[o + 3]!);
  const d = fragments.get(nums[o + 4]!);
  if (f?.t !== 's' || d?.t !== 'd') throw new Error(`audit event ${seq}: unknown fragment`);
  const flags = nums[o + 8]!;
  let statement: Buffer | string;
  if ((flags & TEXT) !== 0) {
    statement = strs[s++] as string;
  } else {
    const x = fragments.get(nums[o + 5]!);
    if (x?.t !== 'x') throw new Error(`audit event ${seq}: unknown statement fragment`);
    statement = x.statement;
  }
  const fixed = f.client.length + f.connection.length + f.identity.length + f.session.length + d.decision.length + w.nodeFragment.length + 256;
  let type: Buffer;
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
    type = INTENT;
  } else {
    const duration = nums[o + 6]!;
    const n = nums[o + 7]!;
    const affects = (flags & AFFECTS) !== 0;
    const command = (flags & COMMAND) !== 0 ? (strs[s++] as string) : null;
    const sqlstate = (flags & SQLSTATE) !== 0 ? (strs[s++] as string) : null;
    const refusedBy = (flags & REFUSED) !== 0 ? (strs[s++] as string) : null;
    const masked = (flags & MASKED) !== 0 ? (strs[s++] as string) : null;
    const plain = masked === null && refusedBy === null && sqlstate === null && typeof statement !== 'string';
    let t = plain ? f.templates.get(statement as Buffer) : undefined;
    if (plain && (t === undefined || t.decision !== d || t.command !== command || t.affects !== affects)) {
      // A new repeat candidate: join its pieces once.
      if (f.templates.size >= MAX_SESSION_TEMPLATES) f.templates.clear();
      t = {
        decision: d,
        statement: statement as Buffer,
        command,
        affects,
        head: Buffer.concat([f.client, commandBytes(command), f.connection, d.decision, DURATION]),
        middle: Buffer.concat([f.identity, w.nodeFragment, affects ? ROWS_AFFECTED : ROWS]),
        tail: Buffer.concat([f.session, statement as Buffer, TS]),
      };
      f.templates.set(statement as Buffer, t);
    }
    if (plain) {
      const tt = t!;
      enc.begin(tt.head.length + tt.middle.length + tt.tail.length + 128);
      enc.bytes(tt.head);
      out.durationFrom[i] = enc.written;
      enc.decimal(duration);
      out.durationTo[i] = enc.written;
      // Stored against the template only when the body is exactly templatedBody's (rows a safe integer).
      out.templates[i] = Number.isSafeInteger(n) && n >= 0 ? tt : undefined;
      out.counts[i] = n;
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
    type = STATEMENT;
  }
  // Same session fragment, decision and type: same columns.
  const byDecision = tag === COMPACT_INTENT ? f.intentSets : f.sets;
  let set = byDecision.get(d);
  if (set === undefined) byDecision.set(d, (set = ++w.lastSet));
  out.sets[i] = set;
  const rows = out.rows;
  const base = i * (COLUMN_COUNT + 1);
  rows[base] = w.node;
  rows[base + 1] = seq;
  rows[base + 2] = ts;
  rows[base + 3] = type;
  rows[base + 4] = f.sessionId;
  rows[base + 5] = f.identityName;
  rows[base + 6] = f.onBehalfOf;
  rows[base + 7] = f.connectionName;
  rows[base + 8] = f.environment;
  rows[base + 9] = d.kind;
  rows[base + 10] = d.tables;
  rows[base + 11] = d.action;
  rows[base + COLUMN_COUNT] = null;
  out.hashes[i] = enc.end(out.bodies, i);
  return s;
}

/**
 * The canonical body of a statement event stored against a template: the template's three runs
 * of bytes with the event's own values between them (see Template). Readers of the store rebuild
 * bodies with this; the writer builds the same bytes in writeCompact.
 */
export function templatedBody(head: string, duration: string, middle: string, rows: number | string, seq: number | string, tail: string, ts: number | string): string {
  return `${head}${duration}${middle}${rows},"seq":${seq}${tail}${ts},"type":"statement"}`;
}

/** A template as the store keeps it: for one batch, keyed by the seq of its first event there. */
export interface StoredTemplate {
  readonly first: number;
  /** The seq of its last event (retention deletes it with that event). */
  readonly last: number;
  readonly head: Buffer;
  readonly middle: Buffer;
  readonly tail: Buffer;
}

/** Which events of a batch are stored against a template, and the templates (EventBatch.templated). */
export interface BatchTemplates {
  /** The writer the templates belong to (the tpl_node column). */
  readonly node: string;
  /** Per event: its template's `first`, or -1 for a body stored whole. */
  readonly of: number[];
  /** Per event stored against a template: its rows (or rows_affected) number. */
  readonly counts: number[];
  readonly list: StoredTemplate[];
}

/**
 * Store the batch's repeated statement events against templates: a template used by two or more
 * of its events is stored once for the batch, and each of those events keeps only its own values
 * (its duration's bytes take the body's place; seq and ts are columns already), about a sixth of
 * a whole body. Templates are per batch, never shared between batches: retention deletes one with
 * the last event that uses it, and no later batch can refer to a deleted one. Returns undefined
 * when no event qualifies. `node` is the writer; `seqOf(i)` is event i's sequence number.
 */
export function templatize(out: Expanded, count: number, node: string, seqOf: (i: number) => number): BatchTemplates | undefined {
  const uses = new Map<Template, { first: number; last: number; n: number }>();
  for (let i = 0; i < count; i++) {
    const t = out.templates[i];
    if (t === undefined) continue;
    const u = uses.get(t);
    if (u === undefined) uses.set(t, { first: seqOf(i), last: seqOf(i), n: 1 });
    else {
      u.last = seqOf(i);
      u.n++;
    }
  }
  const list: StoredTemplate[] = [];
  for (const [t, u] of uses) if (u.n >= 2) list.push({ first: u.first, last: u.last, head: t.head, middle: t.middle, tail: t.tail });
  if (list.length === 0) return undefined;
  const of = new Array<number>(count);
  const counts = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const t = out.templates[i];
    const u = t === undefined ? undefined : uses.get(t)!;
    if (u === undefined || u.n < 2) {
      of[i] = -1;
      continue;
    }
    of[i] = u.first;
    counts[i] = out.counts[i]!;
    out.bodies[i] = out.bodies[i]!.subarray(out.durationFrom[i]!, out.durationTo[i]!);
  }
  return { node, of, counts, list };
}
