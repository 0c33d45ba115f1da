/**
 * The benchmark's knobs, read from the environment once and validated up front, so a typo fails
 * in the first second rather than after minutes of measuring.
 */

/** pgbench query protocols (`-M`): one Query message, unnamed Parse/Bind/Execute, named prepared statements. */
export const QUERY_MODES = ['simple', 'extended', 'prepared'] as const;
export type QueryMode = (typeof QUERY_MODES)[number];

export interface BenchSettings {
  /** Seconds per measured pgbench run (BENCH_SECONDS). */
  readonly seconds: number;
  /** Seconds of the one-off warm-up run per target. */
  readonly warmupSeconds: number;
  /** Gatehouse `--workers` (BENCH_WORKERS). */
  readonly workers: number;
  /** Gatehouse `log.statements` (BENCH_LOG_STATEMENTS). */
  readonly logStatements: boolean;
  /** pgbench client counts, in run order (BENCH_CLIENTS). */
  readonly clients: readonly number[];
  /** pgbench query modes, in run order (BENCH_MODES). */
  readonly modes: readonly QueryMode[];
  /** Section ids to run (BENCH_SECTIONS); empty = all. */
  readonly sections: readonly string[];
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

function positiveInt(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new SettingsError(`${key}: expected a whole number >= 1, got "${raw}"`);
  return n;
}

function list(env: NodeJS.ProcessEnv, key: string, fallback: string): string[] {
  const items = (env[key]?.trim() || fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new SettingsError(`${key}: expected a comma-separated list`);
  return items;
}

function bool(env: NodeJS.ProcessEnv, key: string, fallback: boolean): boolean {
  const raw = env[key]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new SettingsError(`${key}: expected true or false, got "${env[key]}"`);
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): BenchSettings {
  const clients = list(env, 'BENCH_CLIENTS', '1,16').map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new SettingsError(`BENCH_CLIENTS: expected whole numbers >= 1, got "${c}"`);
    return n;
  });
  const modes = list(env, 'BENCH_MODES', QUERY_MODES.join(',')).map((m) => {
    if (!(QUERY_MODES as readonly string[]).includes(m)) throw new SettingsError(`BENCH_MODES: expected some of ${QUERY_MODES.join(', ')}, got "${m}"`);
    return m as QueryMode;
  });
  return {
    seconds: positiveInt(env, 'BENCH_SECONDS', 10),
    warmupSeconds: 2,
    workers: positiveInt(env, 'BENCH_WORKERS', 1),
    logStatements: bool(env, 'BENCH_LOG_STATEMENTS', true),
    clients,
    modes,
    sections: env.BENCH_SECTIONS?.trim() ? list(env, 'BENCH_SECTIONS', '') : [],
  };
}
