/** JSON logs with pino: asynchronous writes to stdout, flushed on exit. */
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { node: bindings.node ?? hostname(), ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: false, minLength: 0 }),
  );
}
