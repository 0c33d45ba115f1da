/**
 * Audit sinks: copies of the trail for a SIEM or a log pipeline (`audit.sinks`).
 *
 * A sink only reads the store, on its own timer: it never sits on the statement path, so a sink
 * that is down or slow cannot hold up or refuse a statement. Each sink keeps, in the store and
 * under its name, the last sequence number it delivered per writer. Every `interval` it reads the
 * events after that cursor (per writer, in seq order), delivers them, and only then advances and
 * saves the cursor: delivery is at least once (a crash between delivery and saving repeats the
 * last batch), in order per writer, and nothing is skipped. A failed delivery is retried with the
 * same events after a backoff that doubles from 1s up to `max_backoff`, with one warning per
 * failure; once the target is back the sink catches up from its cursor.
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { AuditStore, StoredEvent } from '../store/audit.js';

export type SinkConfig = Config['audit']['sinks'][number];
type JsonlSinkConfig = Extract<SinkConfig, { type: 'jsonl' }>;
type WebhookSinkConfig = Extract<SinkConfig, { type: 'webhook' }>;

/** Delivers one batch of one writer's events, in seq order; rejects if any was not delivered. */
interface Target {
  /** Most events handed to one `deliver` call. */
  readonly batch: number;
  deliver(events: readonly StoredEvent[]): Promise<void>;
}

export interface SinksHandle {
  /** Let the delivery in progress finish (its cursor is saved), then stop every sink. */
  stop(): Promise<void>;
}

/** Backoff after the first failure; doubles per consecutive failure up to `max_backoff`. */
const FIRST_BACKOFF_MS = 1000;
/** Default cap for sinks without a `max_backoff` key (jsonl). */
const DEFAULT_MAX_BACKOFF_MS = 60_000;
/** Events read and written per jsonl batch. */
const JSONL_BATCH = 1000;

/** Start every configured sink; each runs independently of the others. */
export function startSinks(store: AuditStore, sinks: Config['audit']['sinks'], opts: { logger: Logger; baseDir: string }): SinksHandle {
  const runners = sinks.map((s) => new SinkRunner(store, s, createTarget(s, opts.baseDir), opts.logger.child({ sink: s.name, sink_type: s.type })));
  for (const r of runners) r.start();
  return {
    stop: async () => {
      await Promise.all(runners.map((r) => r.stop()));
    },
  };
}

function createTarget(s: SinkConfig, baseDir: string): Target {
  switch (s.type) {
    case 'jsonl':
      return new JsonlTarget(s, resolve(baseDir, s.path));
    case 'webhook':
      return new WebhookTarget(s);
  }
}

/** The poll / deliver / save-cursor loop of one sink. */
class SinkRunner {
  readonly #store: AuditStore;
  readonly #config: SinkConfig;
  readonly #target: Target;
  readonly #log: Logger;
  readonly #maxBackoffMs: number;
  /** node -> last delivered seq; loaded from the store once, then kept in step with it. */
  #cursor: Map<string, number> | null = null;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | null = null;
  #stopping = false;
  #backoffMs = 0;
  #failingSince = 0;

  constructor(store: AuditStore, config: SinkConfig, target: Target, log: Logger) {
    this.#store = store;
    this.#config = config;
    this.#target = target;
    this.#log = log;
    this.#maxBackoffMs = config.type === 'webhook' ? config.max_backoff : DEFAULT_MAX_BACKOFF_MS;
  }

  start(): void {
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#stopping) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#tick().finally(() => (this.#running = null));
    }, ms);
    // Sinks never keep the process alive on their own.
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    let next = this.#config.interval;
    try {
      await this.#catchUp();
      if (this.#backoffMs > 0) {
        this.#log.info({ event: 'audit_sink_recovered', outage_ms: Date.now() - this.#failingSince }, `audit sink "${this.#config.name}" recovered and caught up`);
        this.#backoffMs = 0;
      }
    } catch (err) {
      if (this.#backoffMs === 0) this.#failingSince = Date.now();
      this.#backoffMs = Math.min(this.#backoffMs === 0 ? FIRST_BACKOFF_MS : this.#backoffMs * 2, this.#maxBackoffMs);
      next = this.#backoffMs;
      this.#log.warn(
        { event: 'audit_sink_failed', reason: (err as Error).message, retry_in_ms: next, failing_ms: Date.now() - this.#failingSince },
        `audit sink "${this.#config.name}" failed: ${(err as Error).message}; retrying the same events in ${next} ms`,
      );
    }
    this.#schedule(next);
  }

  /** Deliver everything after the cursor, writer by writer, batch by batch. Throws on the first failure. */
  async #catchUp(): Promise<void> {
    const store = this.#store;
    const name = this.#config.name;
    this.#cursor ??= await store.sinkCursor(name);
    const cursor = this.#cursor;
    for (const node of await store.nodes()) {
      let after = cursor.get(node) ?? 0;
      for (;;) {
        if (this.#stopping) return;
        const events = await store.range(node, after, this.#target.batch);
        if (events.length === 0) break;
        const first = events[0]!.seq;
        if (first !== after + 1 && !(after === 0 && first > 1 && (await this.#anchored(node, first)))) {
          // Retention deleted events before this sink delivered them: say so, then go on.
          this.#log.warn({ event: 'audit_sink_gap', node, from: after + 1, to: first - 1 }, `audit sink "${name}": events ${after + 1}..${first - 1} of writer ${node} were deleted by retention before they were delivered`);
        }
        await this.#target.deliver(events);
        after = events[events.length - 1]!.seq;
        await store.saveSinkCursor(name, node, after);
        cursor.set(node, after);
        if (events.length < this.#target.batch) break;
      }
    }
  }

  /** Whether a writer's head was cut by retention before this sink existed (not a loss). */
  async #anchored(node: string, first: number): Promise<boolean> {
    return (await this.#store.checkpoints(node)).some((c) => c.seq === first - 1);
  }
}

/**
 * Appends each event's canonical body as one line. Before a line would take the file past
 * `max_bytes` the file is rotated: path.(n-1) -> path.n ... path -> path.1, keeping `max_files`
 * rotated files. The file is opened per batch (so external log shippers may move it) and each
 * batch is written in one call; the cursor advances only once the write has returned.
 */
class JsonlTarget implements Target {
  readonly batch = JSONL_BATCH;
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  #dirReady = false;

  constructor(c: JsonlSinkConfig, path: string) {
    this.#path = path;
    this.#maxBytes = c.max_bytes;
    this.#maxFiles = c.max_files;
  }

  async deliver(events: readonly StoredEvent[]): Promise<void> {
    if (!this.#dirReady) {
      await mkdir(dirname(this.#path), { recursive: true });
      this.#dirReady = true;
    }
    let i = 0;
    while (i < events.length) {
      const file = await open(this.#path, 'a');
      let written = false;
      try {
        let size = (await file.stat()).size;
        let chunk = '';
        for (; i < events.length; i++) {
          const line = `${events[i]!.body}\n`;
          const bytes = Buffer.byteLength(line);
          // Rotate before a line would overflow the file; a line longer than max_bytes gets a file of its own.
          if (size > 0 && size + bytes > this.#maxBytes) break;
          chunk += line;
          size += bytes;
        }
        if (chunk.length > 0) await file.write(chunk);
        written = true;
      } finally {
        await file.close().catch((err: Error) => {
          if (written) throw err;
        });
      }
      if (i < events.length) await this.#rotate();
    }
  }

  async #rotate(): Promise<void> {
    const p = this.#path;
    await rm(`${p}.${this.#maxFiles}`, { force: true });
    for (let n = this.#maxFiles - 1; n >= 1; n--) await renameIfExists(`${p}.${n}`, `${p}.${n + 1}`);
    await renameIfExists(p, `${p}.1`);
  }
}

async function renameIfExists(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * POSTs up to `batch` events per request as newline-delimited JSON. Anything but a 2xx answer
 * within `timeout` (or a network error) fails the batch, which is then retried as a whole.
 */
class WebhookTarget implements Target {
  readonly batch: number;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(c: WebhookSinkConfig) {
    this.batch = c.batch;
    this.#url = c.url;
    // The body is NDJSON whatever the configured headers say.
    this.#headers = Object.fromEntries(Object.entries(c.headers).filter(([k]) => k.toLowerCase() !== 'content-type'));
    this.#headers['content-type'] = 'application/x-ndjson';
    this.#timeoutMs = c.timeout;
  }

  async deliver(events: readonly StoredEvent[]): Promise<void> {
    let body = '';
    for (const e of events) body += `${e.body}\n`;
    let res: Response;
    try {
      res = await fetch(this.#url, { method: 'POST', headers: this.#headers, body, signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new SinkDeliveryFailed(`POST ${redact(this.#url)}: ${why}`);
    }
    // Read the answer so the connection can be reused.
    await res.arrayBuffer().catch(() => undefined);
    if (res.status < 200 || res.status > 299) throw new SinkDeliveryFailed(`POST ${redact(this.#url)}: HTTP ${res.status}`);
  }
}

/** A URL without credentials or query (which may hold secrets), for logs. */
function redact(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** One delivery failed; stays inside this module (logged, then retried). */
class SinkDeliveryFailed extends Error {
  override readonly name = 'SinkDeliveryFailed';
}
