/**
 * JSON logs with pino, written asynchronously to stdout. Lines are batched (12 KB per write) and
 * flushed at least every 100 ms: under load this turns thousands of small writes per second into
 * a few large ones, and a quiet proxy's lines still appear within 100 ms. Flushed on exit.
 */
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';

export const LOG_FLUSH_INTERVAL_MS = 100;

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 12 * 1024, maxWrite: 64 * 1024 });
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
