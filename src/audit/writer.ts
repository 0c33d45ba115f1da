/**
 * The audit writer, on the proxy's event loop: numbers events (one sequence per writer), encodes
 * them canonically and hands them in batches to the writer thread, which chains, signs and
 * commits them.
 *
 * Group commit: while one batch is being committed the next accumulates, so one fsync covers
 * every event that arrived meanwhile. `durable(seq)` resolves once an event is committed (audit
 * before effect); other events are committed within `flushDelayMs`.
 *
 * Nothing is dropped: if the store cannot be written, the batch stays queued and is retried with
 * backoff; meanwhile `healthy` is false (production writes are refused by the audit stage) and
 * one alert is logged per outage. Above `maxPending` queued events `overloaded` is true and the
 * stage refuses every statement rather than drop its event.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AuditUnavailable, ConfigError } from '../errors.js';
import type { StoreSpec } from '../store/open.js';
import { canonicalJson, eventColumns, type AuditEvent, type EventInput } from './event.js';
import { Batch, type Fragment } from './compact.js';
import type { WriterThreadData } from './writer-thread.js';

export interface AuditWriterOptions {
  /** Writer id: node id, plus ".w<i>" for cluster workers. */
  readonly node: string;
  readonly store: StoreSpec;
  /** Ed25519 private key (PEM) path. */
  readonly signingKey: string;
  readonly checkpointEvery: number;
  readonly checkpointIntervalMs: number;
  /** Longest delay before an event that nobody waits for is committed. */
  readonly flushDelayMs: number;
  /** Most events per transaction. */
  readonly maxBatch: number;
  /** Queued events above which every statement is refused. */
  readonly maxPending: number;
  /** How long one store write may wait for a lock before it counts as failed. */
  readonly busyTimeoutMs: number;
  readonly logger: Logger;
}

interface Waiter {
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export class AuditWriter {
  readonly node: string;
  readonly #opts: AuditWriterOptions;
  readonly #log: Logger;
  #worker: Worker | undefined;
  /** Last sequence number handed out. */
  #seq = 0;
  /** Highest committed sequence number. */
  #committed = 0;
  /**
   * Events not yet sent, in batches of at most maxBatch events: the last one is being filled,
   * the first is sent next (no copying of a growing queue).
   */
  #chunks: Batch[] = [new Batch()];
  #tail: Batch = this.#chunks[0]!;
  /** Events in #chunks. */
  #queued = 0;
  #pendingFirst = 1;
  /** The batch being committed, kept until the thread confirms it. */
  #inflight: Array<{ batch: Batch; first: number; count: number }> = [];
  #inflightCount = 0;
  #waiters: Waiter[] = [];
  #timer: NodeJS.Timeout | undefined;
  #immediate = false;
  #retryMs = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #healthy = true;
  #outageSince = 0;
  #lastError = '';
  #closing: Promise<void> | undefined;
  #closed = false;
  #onCheckpoint: ((seq: number) => void) | undefined;
  #fragmentId = 0;
  /** Fragment ids to forget once a chunk is written, by chunk. */
  readonly #releases = new WeakMap<Batch, number[]>();

  constructor(opts: AuditWriterOptions) {
    this.node = opts.node;
    this.#opts = opts;
    this.#log = opts.logger;
  }

  /** Start the writer thread; resolves once the chain's head is known. Key or store problems reject with a ConfigError. */
  async start(): Promise<void> {
    const data: WriterThreadData = {
      node: this.node,
      store: this.#opts.store,
      signingKey: this.#opts.signingKey,
      checkpointEvery: this.#opts.checkpointEvery,
      checkpointIntervalMs: this.#opts.checkpointIntervalMs,
      busyTimeoutMs: this.#opts.busyTimeoutMs,
    };
    const worker = new Worker(new URL('./writer-thread.js', import.meta.url), { workerData: data });
    this.#worker = worker;
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { op: string; seq?: number; message?: string }): void => {
        if (m.op === 'ready') {
          this.#seq = this.#committed = m.seq!;
          this.#pendingFirst = m.seq! + 1;
          worker.off('message', onMessage);
          worker.off('error', reject);
          resolve();
        } else if (m.op === 'init_failed') {
          worker.off('message', onMessage);
          void worker.terminate();
          // Startup failures (key, store) are configuration problems: one line naming the key.
          reject(new ConfigError(m.message!));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    worker.on('message', (m) => this.#onMessage(m));
    worker.on('error', (err) => this.#fail(`audit writer thread failed: ${err.message}`));
    worker.on('exit', (code) => {
      if (!this.#closed) this.#fail(`audit writer thread exited (code ${code})`);
    });
  }

  /** False while the store cannot be written. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** True when so many events are queued that statements must stop until the store recovers. */
  get overloaded(): boolean {
    return this.#queued + this.#inflightCount >= this.#opts.maxPending;
  }

  /** Why the store is failing (for refusals and logs). */
  get lastError(): string {
    return this.#lastError;
  }

  /** Events queued or in flight. */
  get backlog(): number {
    return this.#queued + this.#inflightCount;
  }

  get committed(): number {
    return this.#committed;
  }

  /** Called when the thread signed a checkpoint (tests, metrics). */
  set onCheckpoint(fn: ((seq: number) => void) | undefined) {
    this.#onCheckpoint = fn;
  }

  /** Record an event; returns its sequence number. The event is committed within the flush delay. */
  record(input: EventInput): number {
    const seq = ++this.#seq;
    const event = { ...input, seq, ts: input.ts ?? Date.now(), node: this.node } as AuditEvent;
    const c = eventColumns(event);
    this.#chunk().full([c.node, c.seq, c.ts, c.type, c.session, c.identity, c.on_behalf_of, c.connection, c.environment, c.kind, c.tables, c.decision, canonicalJson(event)]);
    this.#schedule();
    return seq;
  }

  /** Next sequence number, for compact events (the hot path; see pushCompact). */
  next(): number {
    return ++this.#seq;
  }

  /** The chunk to append one event to. */
  #chunk(): Batch {
    this.#queued++;
    if (this.#tail.count >= this.#opts.maxBatch) {
      this.#tail = new Batch();
      this.#chunks.push(this.#tail);
    }
    return this.#tail;
  }

  /**
   * Register a fragment for compact events (src/audit/compact.ts); returns its id. Sent to the
   * thread at once, so it arrives before any batch that refers to it.
   */
  fragment(f: Fragment): number {
    const id = ++this.#fragmentId;
    this.#worker?.postMessage({ op: 'frag', id, f });
    return id;
  }

  /** Forget fragments once the events queued so far (which may refer to them) are written. */
  release(ids: readonly number[]): void {
    if (ids.length === 0) return;
    let list = this.#releases.get(this.#tail);
    if (list === undefined) this.#releases.set(this.#tail, (list = []));
    list.push(...ids);
  }

  /** Queue a compact statement event (src/audit/compact.ts). */
  pushCompact(tag: number, seq: number, ts: number, session: number, decision: number, statement: number | string, durationMs: number, rows: number, affects: boolean, command: string | null, sqlstate: string | null, refusedBy: string | null, masked: string | null): void {
    this.#chunk().compact(tag, seq, ts, session, decision, statement, durationMs, rows, affects, command, sqlstate, refusedBy, masked);
    this.#schedule();
  }

  /** Resolves once event `seq` is committed; rejects with AuditUnavailable if the store fails first. */
  durable(seq: number): Promise<void> {
    if (seq <= this.#committed) return Promise.resolve();
    if (!this.#healthy) return Promise.reject(new AuditUnavailable(`the audit store is unavailable: ${this.#lastError}`));
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ seq, resolve, reject });
      // Everything arriving in this turn of the event loop shares the commit.
      if (!this.#immediate) {
        this.#immediate = true;
        setImmediate(() => {
          this.#immediate = false;
          this.#flush();
        });
      }
    });
  }

  #schedule(): void {
    if (this.#chunks.length > 1) {
      this.#flush();
      return;
    }
    if (this.#timer === undefined && this.#retryTimer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#flush();
      }, this.#opts.flushDelayMs);
    }
  }

  #flush(): void {
    if (this.#queued === 0 || this.#worker === undefined || this.#retryTimer !== undefined) return;
    // At most two batches in flight, the second only when a full one waits: encoding it for the
    // thread then overlaps the thread's commit of the first (measured: the thread idled otherwise).
    if (this.#inflight.length >= 2 || (this.#inflight.length === 1 && this.#chunks.length === 1)) return;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#chunks.shift()!;
    if (this.#chunks.length === 0) {
      this.#tail = new Batch();
      this.#chunks.push(this.#tail);
    }
    const count = batch.count;
    this.#queued -= count;
    const first = this.#pendingFirst;
    this.#pendingFirst += count;
    this.#inflight.push({ batch, first, count });
    this.#inflightCount += count;
    this.#worker.postMessage({ op: 'append', nums: batch.nums, strs: batch.strs, count, first, release: this.#releases.get(batch) });
  }

  #onMessage(m: { op: string; through?: number; message?: string; seq?: number; first?: number }): void {
    switch (m.op) {
      case 'committed': {
        this.#committed = m.through!;
        while (this.#inflight.length > 0 && this.#inflight[0]!.first + this.#inflight[0]!.count - 1 <= this.#committed) this.#inflightCount -= this.#inflight.shift()!.count;
        this.#retryMs = 0;
        if (!this.#healthy) {
          this.#healthy = true;
          this.#log.warn({ event: 'audit_store_recovered', outage_ms: Date.now() - this.#outageSince, backlog: this.backlog }, 'audit store recovered; queued events are being written');
        }
        let n = 0;
        while (n < this.#waiters.length && this.#waiters[n]!.seq <= this.#committed) this.#waiters[n++]!.resolve();
        if (n > 0) this.#waiters.splice(0, n);
        // Group commit: what queued meanwhile goes now if someone waits or the batch is full.
        if (this.#waiters.length > 0 || this.#chunks.length > 1 || this.#closing !== undefined) this.#flush();
        else if (this.#queued > 0) this.#schedule();
        break;
      }
      case 'failed': {
        // A batch sent after the failed one fails too (it does not follow the head): already requeued.
        if (this.#inflight.length === 0 || this.#inflight[0]!.first !== m.first) break;
        // Put the batches back in front: same events, same numbers, retried in order.
        this.#pendingFirst = this.#inflight[0]!.first;
        for (let i = this.#inflight.length - 1; i >= 0; i--) {
          this.#chunks.unshift(this.#inflight[i]!.batch);
          this.#queued += this.#inflight[i]!.count;
        }
        this.#inflight = [];
        this.#inflightCount = 0;
        this.#fail(m.message ?? 'unknown error');
        break;
      }
      case 'checkpointed':
        this.#onCheckpoint?.(m.seq!);
        break;
      case 'store_warning':
        this.#log.warn({ event: 'audit_store_warning', reason: m.message }, 'audit store maintenance failed; retrying');
        break;
      case 'checkpoint_failed':
        this.#log.warn({ event: 'audit_checkpoint_failed', reason: m.message }, 'audit checkpoint could not be written; retrying with the next batch');
        break;
    }
  }

  #fail(reason: string): void {
    this.#lastError = reason;
    if (this.#healthy) {
      this.#healthy = false;
      this.#outageSince = Date.now();
      this.#log.error({ event: 'audit_store_unavailable', alert: true, reason, backlog: this.backlog }, 'ALERT: the audit store cannot be written; production writes are refused and events are queued until it recovers');
    }
    const err = new AuditUnavailable(`the audit store is unavailable: ${reason}`);
    for (const w of this.#waiters.splice(0)) w.reject(err);
    if (this.#closed || this.#worker === undefined) return;
    this.#retryMs = Math.min(Math.max(this.#retryMs * 2, 50), 2000);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#flush();
    }, this.#retryMs);
  }

  /** Ask the thread to sign its head now. */
  checkpoint(): void {
    this.#worker?.postMessage({ op: 'checkpoint' });
  }

  /**
   * Commit everything queued, sign a final checkpoint and stop the thread. Waits up to
   * `timeoutMs` for an unavailable store; events still queued then are reported as lost.
   */
  close(timeoutMs = 10_000): Promise<void> {
    return (this.#closing ??= (async () => {
      const deadline = Date.now() + timeoutMs;
      this.#flush();
      while ((this.#queued > 0 || this.#inflight.length > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
        this.#flush();
      }
      if (this.backlog > 0) this.#log.error({ event: 'audit_events_lost', alert: true, count: this.backlog, reason: this.#lastError }, 'ALERT: audit events could not be written before shutdown');
      this.#closed = true;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
      const worker = this.#worker;
      if (worker === undefined) return;
      await new Promise<void>((resolve) => {
        const done = setTimeout(() => void worker.terminate().then(() => resolve()), Math.max(1000, deadline - Date.now()));
        worker.on('message', (m: { op: string }) => {
          if (m.op === 'closed') {
            clearTimeout(done);
            resolve();
          }
        });
        worker.once('exit', () => {
          clearTimeout(done);
          resolve();
        });
        worker.postMessage({ op: 'close' });
      });
    })());
  }
}
