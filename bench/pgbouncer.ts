/**
 * pgbouncer as the reference proxy: installed with apt-get when missing, configured from scratch
 * in a private directory (never /etc/pgbouncer), run as the `postgres` OS user because pgbouncer
 * refuses to run as root, and stopped with the rest of the benchmark. pgbouncer <= 1.22 exits at
 * once on SIGTERM; newer ones wait for clients, which are gone by then.
 * https://www.pgbouncer.org/config.html
 */
import { execFileSync } from 'node:child_process';
import { accessSync, chownSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { runCommand, spawnLogged, tailFile, type ProcessRegistry } from './processes.js';
import type { UpstreamTransport } from './settings.js';
import { BENCH_DATABASE, PG_HOST, PG_PORT, describeUpstream, freePort, upstreamHost, waitUntilQueryable, type Target } from './targets.js';

/** The OS user pgbouncer runs as; also the database role it connects with (trust auth). */
const RUN_AS = 'postgres';

/** Settings that shape the numbers; printed with the results. */
const POOL = { pool_mode: 'session', max_client_conn: 200, default_pool_size: 40 } as const;

function findExecutable(name: string): string | undefined {
  // /usr/sbin is where Debian puts pgbouncer, and it is not on every user's PATH.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Path of the pgbouncer binary, installing the Debian package first if needed. */
export async function ensurePgbouncer(registry: ProcessRegistry, progress: (msg: string) => void): Promise<string> {
  const found = findExecutable('pgbouncer');
  if (found) return found;
  progress('pgbouncer not found: installing it with apt-get');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', 'pgbouncer']]) {
    progress(`  $ apt-get ${args.join(' ')}`);
    const r = await runCommand(registry, 'apt-get', 'apt-get', args, { env });
    if (r.code !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.code}):\n${(r.stdout + r.stderr).trim().split('\n').slice(-15).join('\n')}`);
  }
  const installed = findExecutable('pgbouncer');
  if (!installed) throw new Error('apt-get installed pgbouncer, but no pgbouncer executable was found on PATH or in /usr/sbin');
  progress(`  installed ${installed}`);
  return installed;
}

function osUserIds(user: string): { uid: number; gid: number } {
  return { uid: Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim()), gid: Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim()) };
}


export interface StartedPgbouncer {
  readonly target: Target;
  readonly dir: string;
}

/**
 * Write pgbouncer.ini and the auth file into `dir` (created, owned by postgres) and start pgbouncer
 * on a free TCP port; it reaches PostgreSQL over `upstream` (a host starting with "/" is a
 * Unix-socket directory to pgbouncer, as to libpq).
 */
export async function startPgbouncer(registry: ProcessRegistry, bin: string, dir: string, upstream: UpstreamTransport): Promise<StartedPgbouncer> {
  mkdirSync(dir, { recursive: true });
  const { uid, gid } = osUserIds(RUN_AS);
  // pgbouncer (as postgres) writes its log and unix socket here.
  chownSync(dir, uid, gid);
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  const authFile = join(dir, 'userlist.txt');
  // auth_type = trust still needs the user listed in auth_file; the password is ignored.
  writeFileSync(authFile, `"${RUN_AS}" ""\n`);
  writeFileSync(
    ini,
    [
      '[databases]',
      `${BENCH_DATABASE} = host=${upstreamHost(upstream)} port=${PG_PORT} dbname=${BENCH_DATABASE}`,
      '',
      '[pgbouncer]',
      `listen_addr = ${PG_HOST}`,
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = trust',
      `auth_file = ${authFile}`,
      `pool_mode = ${POOL.pool_mode}`,
      `max_client_conn = ${POOL.max_client_conn}`,
      `default_pool_size = ${POOL.default_pool_size}`,
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `admin_users = ${RUN_AS}`,
      '',
    ].join('\n'),
  );
  for (const f of [ini, authFile]) chownSync(f, uid, gid);

  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  // `-u` makes pgbouncer drop root itself after reading its config: one process that we reap,
  // where `runuser -u postgres -- pgbouncer` adds a middleman that can leave a zombie on stop.
  const { proc, failed } = spawnLogged(registry, 'pgbouncer', bin, ['-u', RUN_AS, ini], join(dir, 'pgbouncer.out'), dir);
  const target: Target = {
    id: 'pgbouncer',
    label: 'pgbouncer',
    role: 'baseline',
    pid: proc.child.pid,
    endpoint: { host: PG_HOST, port, user: RUN_AS, database: BENCH_DATABASE },
    description: `${version} on ${PG_HOST}:${port}, pool_mode=${POOL.pool_mode}, default_pool_size=${POOL.default_pool_size}, upstream ${describeUpstream(upstream)}`,
  };
  await waitUntilQueryable(target.endpoint, 'pgbouncer', {
    failed: () => {
      const why = failed();
      return why === undefined ? undefined : `${why}\n${tailFile(join(dir, 'pgbouncer.log'))}`;
    },
  });
  return { target, dir };
}
