/**
 * A target is one way of reaching the benchmark database: PostgreSQL itself, through pgbouncer,
 * through Gatehouse (later also Gatehouse with a policy). Sections iterate over targets and never
 * care how each one was started.
 */
import { createServer, type AddressInfo } from 'node:net';
import pg from 'pg';

export const BENCH_DATABASE = 'gh_bench';
export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;

/** Where a libpq client connects. */
export interface PgEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
}

export interface Target {
  /** Stable id, used in JSON results and file names ("direct", "pgbouncer", "gatehouse"). */
  readonly id: string;
  /** Column header in tables. */
  readonly label: string;
  /** A baseline is a reference point; a subject is what we measure against the baselines. */
  readonly role: 'baseline' | 'subject';
  readonly endpoint: PgEndpoint;
  /** One line for the report header: version and the settings that matter for the numbers. */
  readonly description: string;
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
    if (Date.now() > deadline) throw new Error(`${what} is not answering on ${e.host}:${e.port} (last error: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function directTarget(): Target {
  return {
    id: 'direct',
    label: 'direct',
    role: 'baseline',
    endpoint: { host: PG_HOST, port: PG_PORT, user: 'postgres', database: BENCH_DATABASE },
    description: `PostgreSQL at ${PG_HOST}:${PG_PORT}`,
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
