/**
 * The benchmark's knobs, read from the environment once and validated up front, so a typo fails
 * in the first second rather than after minutes of measuring.
 */

/** pgbench query protocols (`-M`): one Query message, unnamed Parse/Bind/Execute, named prepared statements. */
export const QUERY_MODES = ['simple', 'extended', 'prepared'] as const;
export type QueryMode = (typeof QUERY_MODES)[number];

/**
 * How the proxies and direct pgbench reach PostgreSQL (BENCH_UPSTREAM): `unix` = the socket in
 * /var/run/postgresql for all three, `tcp` = 127.0.0.1:5432 for all three. Clients always reach
 * pgbouncer and Gatehouse over TCP 127.0.0.1; only the hop to PostgreSQL changes, and it is the
 * same for every target, so none is favoured.
 */
export const UPSTREAM_TRANSPORTS = ['unix', 'tcp'] as const;
export type UpstreamTransport = (typeof UPSTREAM_TRANSPORTS)[number];

export interface BenchSettings {
  /** Seconds per measured pgbench run (BENCH_SECONDS). */
  readonly seconds: number;
  /**
   * Runs per (mode, clients, target) in the throughput section (BENCH_ROUNDS): each round runs
   * every target once, in a rotated order; figures are the medians over rounds, ratios the
   * medians of each round's side-by-side ratios.
   */
  readonly rounds: number;
  /** Seconds of the one-off warm-up run per target. */
  readonly warmupSeconds: number;
  /** Gatehouse `--workers` (BENCH_WORKERS). */
  readonly workers: number;
  /** Gatehouse `log.statements` (BENCH_LOG_STATEMENTS); on by default, as in production. */
  readonly logStatements: boolean;
  /** How every target reaches PostgreSQL (BENCH_UPSTREAM). */
  readonly upstream: UpstreamTransport;
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
  const upstream = (env.BENCH_UPSTREAM?.trim().toLowerCase() || 'unix') as UpstreamTransport;
  if (!(UPSTREAM_TRANSPORTS as readonly string[]).includes(upstream)) throw new SettingsError(`BENCH_UPSTREAM: expected one of ${UPSTREAM_TRANSPORTS.join(', ')}, got "${env.BENCH_UPSTREAM}"`);
  return {
    seconds: positiveInt(env, 'BENCH_SECONDS', 6),
    rounds: positiveInt(env, 'BENCH_ROUNDS', 3),
    warmupSeconds: 2,
    workers: positiveInt(env, 'BENCH_WORKERS', 1),
    logStatements: bool(env, 'BENCH_LOG_STATEMENTS', true),
    upstream,
    clients,
    modes,
    sections: env.BENCH_SECTIONS?.trim() ? list(env, 'BENCH_SECTIONS', '') : [],
  };
}
