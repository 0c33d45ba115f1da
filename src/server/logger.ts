/**
 * JSON logs with pino, written asynchronously to stdout. Lines are batched (12 KB per write) and
 * flushed at least every 100 ms: under load this turns thousands of small writes per second into
 * a few large ones, and a quiet proxy's lines still appear within 100 ms. Flushed on exit.
 *
 * Lines are gathered in an array and handed to the file writer (sonic-boom) joined, a batch at a
 * time. Handed each line, sonic-boom appends it to one growing string while a write is in flight
 * and measures that string's UTF-8 length again on each append: with a backlog, 10-20 µs per
 * statement line against ~1.5 µs batched (measured in-process, 2 million lines).
 */
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';

export const LOG_FLUSH_INTERVAL_MS = 100;
/** Characters gathered before they go to the file writer as one string. */
const BATCH_CHARS = 12 * 1024;

interface FileWriter {
  write(data: string): boolean;
  flush(cb?: (err?: Error | null) => void): void;
  flushSync(): void;
}

/** What pino writes to: `write(line)` gathers; `flush` hands the batch on. */
export class LineBatcher {
  readonly #out: FileWriter;
  #lines: string[] = [];
  #chars = 0;

  constructor(out: FileWriter) {
    this.#out = out;
  }

  write(line: string): boolean {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= BATCH_CHARS) this.#handOn();
    return true;
  }

  #handOn(): void {
    if (this.#lines.length === 0) return;
    const batch = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines = [];
    this.#chars = 0;
    this.#out.write(batch);
  }

  /** Hand the gathered lines to the file writer and start writing them (`cb` once written). */
  flush(cb?: (err?: Error | null) => void): void {
    this.#handOn();
    this.#out.flush(cb);
  }

  /** Write everything now (exit). */
  flushSync(): void {
    this.#handOn();
    this.#out.flushSync();
  }
}

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  const destination = new LineBatcher(pino.destination({ dest: 1, sync: false, minLength: BATCH_CHARS, maxWrite: 64 * 1024 }));
  setInterval(() => {
    try {
      destination.flush();
    } catch {
      // Nothing to flush, or a write in progress: the next tick flushes.
    }
  }, LOG_FLUSH_INTERVAL_MS).unref();
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // stdout closed: nothing more can be written.
    }
  });
  return pino(
    {
      level,
      base: { node: bindings.node ?? hostname(), ...Object.fromEntries(Object.entries(bindings).filter(([k, v]) => k !== 'node' && v !== undefined)) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
