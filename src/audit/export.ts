/**
 * The audit export file, and reading one back for offline verification.
 *
 * Format (JSON Lines, UTF-8, one JSON object per line):
 *
 *   line 1   {"format":"gatehouse-audit-export","version":1,"exported_at":<ms>,"public_keys":{"<key_id>":"<PEM>"}}
 *   then, per writer (node), in seq order:
 *            {"record":"event","node":"<node>","seq":<n>,"hash":"<hex>","body":"<canonical JSON, exactly as stored>"}
 *            {"record":"checkpoint","node":"<node>","seq":<n>,"hash":"<hex>","ts":<ms>,"key_id":"<id>","signature":"<base64>"}
 *
 * A checkpoint line follows the event it covers (a retention anchor, whose event was deleted,
 * precedes the writer's first event). The body is the exact string the chain hashed, so the file
 * verifies with the same code as the store (`verifyAudit`). `public_keys` is a convenience copy of
 * the signing key's public half: it travels with the data, so an auditor verifies with their own
 * copy (`gatehouse audit verify --file ... --public-key ...`).
 *
 * Memory: writing streams the store page by page (`range`), holding one page; reading streams the
 * file too, holding only the checkpoints, the writer names and up to MAX_MALFORMED bad lines. The
 * reader makes one pass to index the file, then one pass per writer as `verifyAudit` asks for its
 * events, so a file of any size verifies in bounded memory at the cost of 1 + writers reads.
 */
import type { KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { ConfigError } from '../errors.js';
import type { StoredEvent } from '../store/audit.js';
import { keyId, publicKeyFromPem, type Checkpoint } from './chain.js';
import { eventColumns, type AuditEvent, type EventColumns } from './event.js';
import type { VerifySource } from './verify.js';

export const EXPORT_FORMAT = 'gatehouse-audit-export';
export const EXPORT_VERSION = 1;
/** Events read from the store per query while exporting. */
export const EXPORT_PAGE = 5000;
/** Bad lines remembered (and reported) when reading a file; the rest are only counted. */
export const MAX_MALFORMED = 100;

/** Line 1 of an export. */
export interface ExportHeader {
  readonly format: typeof EXPORT_FORMAT;
  readonly version: number;
  /** UTC epoch milliseconds when the export started. */
  readonly exported_at: number;
  /** PEM (SPKI) public keys by key id: a convenience copy, not a trust anchor. */
  readonly public_keys: Readonly<Record<string, string>>;
}

/** One event line. */
export interface ExportedEvent {
  readonly record: 'event';
  readonly node: string;
  readonly seq: number;
  /** Chain hash of this event, hex. */
  readonly hash: string;
  /** Canonical JSON of the event, byte for byte as hashed. */
  readonly body: string;
}

/** One checkpoint line. */
export interface ExportedCheckpoint extends Checkpoint {
  readonly record: 'checkpoint';
}

export interface ExportOptions {
  /** Public keys for the header, by key id. */
  readonly publicKeys: Readonly<Record<string, string>>;
  /** Only these writers (default: all). */
  readonly nodes?: readonly string[];
  readonly pageSize?: number;
  readonly now?: number;
}

export interface ExportSummary {
  readonly writers: number;
  readonly events: number;
  readonly checkpoints: number;
}

const eventLine = (node: string, seq: number, hash: string, body: string): string => `${JSON.stringify({ record: 'event', node, seq, hash, body } satisfies ExportedEvent)}\n`;
const checkpointLine = (c: Checkpoint): string =>
  `${JSON.stringify({ record: 'checkpoint', node: c.node, seq: c.seq, hash: c.hash, ts: c.ts, key_id: c.key_id, signature: c.signature } satisfies ExportedCheckpoint)}\n`;

/** Write `text`, waiting for the stream to drain when its buffer is full; rejects if it fails. */
async function put(out: Writable, text: string): Promise<void> {
  if (out.destroyed || out.errored) throw out.errored ?? new Error('the output stream is closed');
  if (!out.write(text)) await once(out, 'drain');
}

/**
 * Write an export of `source` to `out` (which is not ended). Checkpoints are read before each
 * writer's events, so every exported checkpoint's events are exported too even while a proxy keeps
 * appending (events appended meanwhile form an unsigned tail).
 */
export async function writeExport(source: VerifySource, out: Writable, opts: ExportOptions): Promise<ExportSummary> {
  const page = opts.pageSize ?? EXPORT_PAGE;
  const header: ExportHeader = { format: EXPORT_FORMAT, version: EXPORT_VERSION, exported_at: opts.now ?? Date.now(), public_keys: opts.publicKeys };
  await put(out, `${JSON.stringify(header)}\n`);
  const nodes = opts.nodes ?? (await source.nodes());
  let events = 0;
  let checkpoints = 0;
  for (const node of nodes) {
    const cps = await source.checkpoints(node);
    let ci = 0;
    let afterSeq = 0;
    for (;;) {
      const rows = await source.range(node, afterSeq, page);
      if (rows.length === 0) break;
      // One write per page: lines are joined here rather than written one by one.
      let chunk = '';
      for (const row of rows) {
        while (ci < cps.length && cps[ci]!.seq < row.seq) chunk += checkpointLine(cps[ci++]!);
        chunk += eventLine(node, row.seq, row.hash, row.body);
        while (ci < cps.length && cps[ci]!.seq === row.seq) chunk += checkpointLine(cps[ci++]!);
      }
      await put(out, chunk);
      events += rows.length;
      afterSeq = rows[rows.length - 1]!.seq;
    }
    // Checkpoints past the last event (events cut from the store): exported, so verify sees the cut.
    let rest = '';
    while (ci < cps.length) rest += checkpointLine(cps[ci++]!);
    if (rest !== '') await put(out, rest);
    checkpoints += cps.length;
  }
  return { writers: nodes.length, events, checkpoints };
}

/** A line of the file that is not a valid record (reported by verify as a failure). */
export interface MalformedLine {
  readonly line: number;
  readonly reason: string;
}

const NULL_COLUMNS: Omit<EventColumns, 'node' | 'seq'> = { ts: 0, type: '', session: null, identity: null, on_behalf_of: null, connection: null, environment: null, kind: null, tables: null, decision: null };

/**
 * A stored row rebuilt from an exported event: the indexed columns come from the body itself (the
 * export carries no separate copy), node and seq from the line, so verify still checks that the
 * body claims the position the line puts it at.
 */
export function storedEventOf(node: string, seq: number, hash: string, body: string): StoredEvent {
  let cols: Omit<EventColumns, 'node' | 'seq'> = NULL_COLUMNS;
  try {
    cols = eventColumns(JSON.parse(body) as AuditEvent);
  } catch {
    // Not an event: verify reports the body as modified.
  }
  return { ...cols, node, seq, hash, body };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

/** Why a parsed line is not a valid record, or null. */
function recordProblem(r: Record<string, unknown>): string | null {
  if (r.record === 'event') {
    if (typeof r.node !== 'string' || !isSeq(r.seq) || typeof r.hash !== 'string' || typeof r.body !== 'string') return 'an event record needs string node, hash and body and a whole-number seq';
    return null;
  }
  if (r.record === 'checkpoint') {
    if (typeof r.node !== 'string' || !isSeq(r.seq) || typeof r.hash !== 'string' || typeof r.ts !== 'number' || typeof r.key_id !== 'string' || typeof r.signature !== 'string') {
      return 'a checkpoint record needs string node, hash, key_id and signature and numeric seq and ts';
    }
    return null;
  }
  return `unknown record type ${JSON.stringify(r.record)}`;
}

interface Cursor {
  readonly lines: AsyncIterator<string>;
  readonly close: () => void;
  /** Seq of the last row handed out. */
  last: number;
}

/**
 * An export file as a `VerifySource`. `open` reads it once to check the header and collect the
 * writers, checkpoints and bad lines; `range` then streams a writer's events in file order (a
 * continuation of the previous call when `afterSeq` is the last seq it returned, as verify asks),
 * so events out of order or duplicated in the file reach verify as they are.
 */
export class ExportFile implements VerifySource {
  readonly path: string;
  readonly header: ExportHeader;
  /** Bad lines (at most MAX_MALFORMED); `malformedCount` counts them all. */
  readonly malformed: readonly MalformedLine[];
  readonly malformedCount: number;
  readonly #nodes: string[];
  readonly #checkpoints: Map<string, Checkpoint[]>;
  readonly #cursors = new Map<string, Cursor>();

  private constructor(path: string, header: ExportHeader, nodes: string[], checkpoints: Map<string, Checkpoint[]>, malformed: MalformedLine[], malformedCount: number) {
    this.path = path;
    this.header = header;
    this.#nodes = nodes;
    this.#checkpoints = checkpoints;
    this.malformed = malformed;
    this.malformedCount = malformedCount;
  }

  /** Read and index the file; a file that is not an export (bad header) is a ConfigError. */
  static async open(path: string): Promise<ExportFile> {
    const { lines, close } = readLines(path);
    let header: ExportHeader | undefined;
    const nodes = new Set<string>();
    const checkpoints = new Map<string, Checkpoint[]>();
    const malformed: MalformedLine[] = [];
    let malformedCount = 0;
    const bad = (line: number, reason: string): void => {
      malformedCount++;
      if (malformed.length < MAX_MALFORMED) malformed.push({ line, reason });
    };
    let n = 0;
    try {
      for await (const text of { [Symbol.asyncIterator]: () => lines }) {
        n++;
        if (n === 1) {
          header = parseHeader(path, text);
          continue;
        }
        if (text.trim() === '') continue;
        let r: unknown;
        try {
          r = JSON.parse(text);
        } catch {
          bad(n, 'not valid JSON');
          continue;
        }
        if (!isObject(r)) {
          bad(n, 'not a JSON object');
          continue;
        }
        const problem = recordProblem(r);
        if (problem !== null) {
          bad(n, problem);
          continue;
        }
        const node = r.node as string;
        nodes.add(node);
        if (r.record === 'checkpoint') {
          let list = checkpoints.get(node);
          if (list === undefined) checkpoints.set(node, (list = []));
          list.push({ node, seq: r.seq as number, hash: r.hash as string, ts: r.ts as number, key_id: r.key_id as string, signature: r.signature as string });
        }
      }
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`--file: cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    } finally {
      close();
    }
    if (header === undefined) throw new ConfigError(`--file: "${path}" is empty (expected a Gatehouse audit export)`);
    for (const list of checkpoints.values()) list.sort((a, b) => a.seq - b.seq);
    return new ExportFile(path, header, [...nodes].sort(), checkpoints, malformed, malformedCount);
  }

  /** The header's public keys by key id, the ids recomputed from the keys themselves. */
  headerKeys(): Map<string, KeyObject> {
    const keys = new Map<string, KeyObject>();
    for (const [label, pem] of Object.entries(this.header.public_keys)) {
      let key: KeyObject;
      try {
        key = publicKeyFromPem(pem);
      } catch {
        throw new ConfigError(`--file: "${this.path}": the header's public key "${label}" is not a PEM public key`);
      }
      keys.set(keyId(key), key);
    }
    return keys;
  }

  async nodes(): Promise<string[]> {
    return [...this.#nodes];
  }

  async checkpoints(node: string): Promise<Checkpoint[]> {
    return [...(this.#checkpoints.get(node) ?? [])];
  }

  async range(node: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    let cursor = this.#cursors.get(node);
    // A fresh scan unless this continues the previous call; a fresh scan after seq > 0 (not what
    // verify asks) skips rows up to afterSeq.
    const fresh = cursor === undefined || afterSeq === 0 || cursor.last !== afterSeq;
    if (fresh) {
      cursor?.close();
      cursor = { ...readLines(this.path), last: 0 };
      this.#cursors.set(node, cursor);
      await cursor.lines.next(); // the header
    }
    const rows: StoredEvent[] = [];
    while (rows.length < limit) {
      const next = await cursor!.lines.next();
      if (next.done) {
        cursor!.close();
        break;
      }
      const r = parseEventLine(next.value);
      if (r === null || r.node !== node) continue;
      if (fresh && afterSeq > 0 && r.seq <= afterSeq) continue;
      rows.push(storedEventOf(node, r.seq, r.hash, r.body));
      cursor!.last = r.seq;
    }
    return rows;
  }

  /** Close any open reads. */
  close(): void {
    for (const c of this.#cursors.values()) c.close();
    this.#cursors.clear();
  }
}

function parseHeader(path: string, text: string): ExportHeader {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch {
    h = null;
  }
  if (!isObject(h) || h.format !== EXPORT_FORMAT) throw new ConfigError(`--file: "${path}" is not a Gatehouse audit export (line 1 is not a {"format":"${EXPORT_FORMAT}",...} header)`);
  if (h.version !== EXPORT_VERSION) throw new ConfigError(`--file: "${path}" is export format version ${String(h.version)}; this Gatehouse reads version ${EXPORT_VERSION}`);
  if (!isObject(h.public_keys) || Object.values(h.public_keys).some((v) => typeof v !== 'string')) throw new ConfigError(`--file: "${path}": the header's public_keys must map key ids to PEM strings`);
  return h as unknown as ExportHeader;
}

/** An event line's fields, or null for any other (or bad) line. */
function parseEventLine(text: string): ExportedEvent | null {
  // Checkpoint and bad lines were dealt with by `open`; only event lines matter here.
  if (text.startsWith('{"record":"checkpoint"')) return null;
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(r) || r.record !== 'event' || recordProblem(r) !== null) return null;
  return r as unknown as ExportedEvent;
}

function readLines(path: string): { lines: AsyncIterator<string>; close: () => void } {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  return {
    lines: rl[Symbol.asyncIterator](),
    close: () => {
      rl.close();
      stream.destroy();
    },
  };
}
