/**
 * Test helpers that talk to the real PostgreSQL of this machine (127.0.0.1:5432, trust) and,
 * when a test needs other server settings (TLS, md5/SCRAM upstream auth, many connections),
 * to a private PostgreSQL cluster created with initdb for the test and removed after it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const exec = promisify(execFile);

export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;

/** A database on the machine's PostgreSQL, unique to the calling test, dropped by `drop`. */
export async function createTestDatabase(prefix = 'gh_test'): Promise<{ name: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    name,
    drop: async () => {
      const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: 'postgres' });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Run SQL directly against the machine's PostgreSQL (bypassing the proxy). */
export async function direct<T extends pg.QueryResultRow = pg.QueryResultRow>(database: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult<T>> {
  const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database });
  await c.connect();
  try {
    return await c.query<T>(sql, params);
  } finally {
    await c.end();
  }
}

/**
 * Wait until a statement whose text contains `marker` (a comment in it) is running on the
 * machine's PostgreSQL: a CancelRequest or SIGTERM sent before then would find the backend idle
 * (PostgreSQL ignores such a cancel), however long a fixed sleep was on a loaded machine.
 */
export async function untilActive(database: string, marker: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  const sql = `select count(*)::int as n from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() and strpos(query, $1) > 0`;
  while ((await direct<{ n: number }>(database, sql, [marker])).rows[0]!.n === 0) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the statement marked ${marker} to run`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Several distinct free ports (a port just released can be handed out again). */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function binDir(): Promise<string> {
  const { stdout } = await exec('pg_config', ['--bindir']).catch(() => ({ stdout: '' }));
  if (stdout.trim()) return stdout.trim();
  const { stdout: ls } = await exec('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1']);
  return ls.trim();
}

export interface PrivatePostgres {
  readonly port: number;
  readonly dir: string;
  /** Stop the server (fast shutdown). */
  stop(): Promise<void>;
  /** Start it again after `stop` (same port, same data). */
  start(): Promise<void>;
}

export interface PrivatePostgresOptions {
  /** pg_hba.conf lines for TCP (default: trust). */
  hba?: string[];
  /** Enable TLS with a generated self-signed certificate. */
  ssl?: boolean;
  maxConnections?: number;
  /** SQL run as superuser after start (e.g. CREATE ROLE ... PASSWORD ...). */
  setup?: string[];
}

/**
 * A private PostgreSQL cluster (initdb) on a free port, owned by the `postgres` OS user (initdb
 * refuses to run as root). Removed by `stop()` + `cleanup()`.
 */
export async function startPrivatePostgres(opts: PrivatePostgresOptions = {}): Promise<PrivatePostgres & { cleanup(): Promise<void> }> {
  const bin = await binDir();
  const dir = mkdtempSync(join(tmpdir(), 'gh-pg-'));
  chmodSync(dir, 0o777);
  const data = join(dir, 'data');
  const asPostgres = (cmd: string, args: string[]) => exec('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { cwd: '/' });
  await asPostgres('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  const conf: string[] = [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    `max_connections = ${opts.maxConnections ?? 50}`,
    `fsync = off`,
    `shared_buffers = 32MB`,
  ];
  if (opts.ssl) {
    await exec('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-keyout', join(data, 'server.key'), '-out', join(data, 'server.crt')]);
    const { stdout: uid } = await exec('id', ['-u', 'postgres']);
    const { stdout: gid } = await exec('id', ['-g', 'postgres']);
    for (const f of ['server.key', 'server.crt']) chownSync(join(data, f), Number(uid), Number(gid));
    chmodSync(join(data, 'server.key'), 0o600);
    conf.push(`ssl = on`);
  }
  writeFileSync(join(data, 'postgresql.auto.conf'), conf.join('\n') + '\n');
  const hba = ['local all all trust', ...(opts.hba ?? ['host all all 127.0.0.1/32 trust'])];
  writeFileSync(join(data, 'pg_hba.conf'), hba.join('\n') + '\n');
  const start = async (): Promise<void> => {
    await asPostgres('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
  };
  const stop = async (): Promise<void> => {
    await asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
  };
  await start();
  for (const sql of opts.setup ?? []) {
    await exec('runuser', ['-u', 'postgres', '--', join(bin, 'psql'), '-h', dir, '-p', String(port), '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  }
  return {
    port,
    dir,
    start,
    stop,
    cleanup: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command (psql, pgbench, ...) with input; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin!.on('error', () => {}); // the command may exit before reading its input (EPIPE)
    child.stdin!.end(opts.input ?? '');
  });
}
