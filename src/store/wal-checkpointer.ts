/**
 * WAL checkpoints of the embedded store on a thread of their own. In WAL mode every commit
 * appends pages to the -wal file and, by default, the commit that crosses 1,000 pages copies them
 * back into the database file: measured with bench/audit.ts, about a sixth of the audit writer
 * thread's time went to those copies. The writer's connection instead leaves checkpoints to this
 * thread, which runs a PASSIVE checkpoint (it never blocks a writer or a reader) every
 * CHECKPOINT_INTERVAL_MS; the writer keeps a large automatic checkpoint as a safety net, so the
 * WAL stays bounded even if this thread falls behind or stops.
 */
import { Worker } from 'node:worker_threads';

/** How often the checkpointer copies the WAL back into the database. */
export const CHECKPOINT_INTERVAL_MS = 250;
/** The writer connection's own automatic checkpoint, in pages (16 KiB each: 64 MiB of WAL). */
export const WRITER_AUTOCHECKPOINT_PAGES = 4096;

export class WalCheckpointer {
  readonly #worker: Worker;
  /** Resolves when the thread has ended, for whatever reason (stopped, or failed to open the file). */
  readonly #exited: Promise<void>;
  #stopping = false;

  /** `onError` hears why a checkpoint failed (the next one tries again). */
  constructor(file: string, busyTimeoutMs: number, onError: (message: string) => void) {
    this.#worker = new Worker(new URL('./wal-checkpointer-thread.js', import.meta.url), { workerData: { file, busyTimeoutMs, intervalMs: CHECKPOINT_INTERVAL_MS } });
    this.#worker.on('message', (m: { op: string; message: string }) => {
      if (m.op === 'error') onError(m.message);
    });
    // A thread that dies (the file could not be opened, say) leaves the writer's own automatic
    // checkpoint in charge; the reason is reported once.
    this.#worker.on('error', (err) => onError(`the checkpointer thread stopped: ${err.message}`));
    this.#exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.unref();
  }

  /** Run a last checkpoint and end the thread (at once if it has already ended). */
  stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#worker.postMessage({ op: 'stop' });
    }
    return this.#exited;
  }
}
