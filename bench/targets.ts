/**
 * A target is one way of reaching the benchmark database: PostgreSQL itself, through pgbouncer,
 * through Gatehouse, and through Gatehouse with guardrails and a policy. Sections iterate over targets and never
 * care how each one was started.
 */
import { createServer, type AddressInfo } from 'node:net';
import pg from 'pg';
import type { UpstreamTransport } from './settings.js';

export const BENCH_DATABASE = 'gh_bench';
export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;
/** The Debian cluster's Unix-socket directory (holds .s.PGSQL.5432). */
export const PG_SOCKET_DIR = '/var/run/postgresql';

/**
 * The host through which a target reaches PostgreSQL: the socket directory (libpq, pgbouncer and
 * Gatehouse all read a host starting with "/" as one) or the loopback address.
 */
export function upstreamHost(transport: UpstreamTransport): string {
  return transport === 'unix' ? PG_SOCKET_DIR : PG_HOST;
}

/** "unix socket /var/run/postgresql/.s.PGSQL.5432" or "tcp 127.0.0.1:5432", for descriptions. */
export function describeUpstream(transport: UpstreamTransport): string {
  return transport === 'unix' ? `unix socket ${PG_SOCKET_DIR}/.s.PGSQL.${PG_PORT}` : `tcp ${PG_HOST}:${PG_PORT}`;
}

/** Where a libpq client connects. */
export interface PgEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
}

export interface Target {
  /** Stable id, used in JSON results and file names ("direct", "pgbouncer", "gatehouse", "gatehouse+policy"). */
  readonly id: string;
  /** Column header in tables. */
  readonly label: string;
  /** A baseline is a reference point; a subject is what we measure against the baselines. */
  readonly role: 'baseline' | 'subject';
  readonly endpoint: PgEndpoint;
  /** One line for the report header: version and the settings that matter for the numbers. */
  readonly description: string;
  /** The process group the target runs in (its leader's pid), whose CPU per transaction the throughput section reports. */
  readonly pid?: number;
}

/** libpq environment for an endpoint. SSL is off for every target so none pays for an SSLRequest round trip. */
export function libpqEnv(e: PgEndpoint): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' };
  delete env.PGPASSWORD;
  if (e.password !== undefined) env.PGPASSWORD = e.password;
  return env;
}

/** Open a connection, run `fn`, always close. */
export async function withClient<T>(e: PgEndpoint, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database, connectionTimeoutMillis: 5_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Poll until `SELECT 1` succeeds through the endpoint: a listening port is not enough, the
 * whole path (auth, upstream) must work before we spend time measuring it.
 */
export async function waitUntilQueryable(e: PgEndpoint, what: string, opts: { timeoutMs?: number; failed?: () => string | undefined } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last = '';
  for (;;) {
    const failure = opts.failed?.();
    if (failure) throw new Error(`${what} failed to start: ${failure}`);
    try {
      await withClient(e, (c) => c.query('SELECT 1'));
      return;
    } catch (err) {
      last = (err as Error).message;
    }
    const where = e.host.startsWith('/') ? `${e.host}/.s.PGSQL.${e.port}` : `${e.host}:${e.port}`;
    if (Date.now() > deadline) throw new Error(`${what} is not answering on ${where} (last error: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PostgreSQL itself, reached the same way the proxies reach it (BENCH_UPSTREAM). */
export function directTarget(transport: UpstreamTransport = 'tcp'): Target {
  return {
    id: 'direct',
    label: 'direct',
    role: 'baseline',
    endpoint: { host: upstreamHost(transport), port: PG_PORT, user: 'postgres', database: BENCH_DATABASE },
    description: `PostgreSQL over ${describeUpstream(transport)}`,
  };
}

/** A port that was free a moment ago (bind to 0, read, close). Racy in theory, fine on a bench box. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, PG_HOST, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
