/**
 * The benchmark database: created and filled by `pgbench -i` on first use, then kept, because
 * initializing scale 10 (1M accounts) costs far more than a typical run.
 */
import { runCommand, type ProcessRegistry } from './processes.js';
import { BENCH_DATABASE, directTarget, libpqEnv, withClient } from './targets.js';

/** pgbench scale factor (`-s`): 10 = 1,000,000 rows in pgbench_accounts. */
export const SCALE = 10;

const PGBENCH_TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_history', 'pgbench_tellers'];

export async function ensureBenchDatabase(registry: ProcessRegistry, progress: (msg: string) => void): Promise<void> {
  const direct = directTarget().endpoint;
  const exists = await withClient({ ...direct, database: 'postgres' }, async (c) => {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [BENCH_DATABASE]);
    if (r.rowCount === 0) {
      progress(`creating database ${BENCH_DATABASE}`);
      await c.query(`CREATE DATABASE ${BENCH_DATABASE}`);
      return false;
    }
    return true;
  });
  const missing = exists
    ? await withClient(direct, async (c) => {
        const r = await c.query<{ name: string; present: boolean }>('SELECT name, to_regclass(name) IS NOT NULL AS present FROM unnest($1::text[]) AS name', [PGBENCH_TABLES]);
        return r.rows.filter((row) => !row.present).map((row) => row.name);
      })
    : PGBENCH_TABLES;
  if (missing.length === 0) {
    progress(`database ${BENCH_DATABASE} is ready (pgbench tables present)`);
    return;
  }
  progress(`initializing ${BENCH_DATABASE}: pgbench -i -s ${SCALE} -q (missing: ${missing.join(', ')})`);
  const r = await runCommand(registry, 'pgbench -i', 'pgbench', ['-i', '-s', String(SCALE), '-q', '-h', direct.host, '-p', String(direct.port), '-U', direct.user, direct.database], { env: libpqEnv(direct) });
  if (r.code !== 0) throw new Error(`pgbench -i failed (exit ${r.code}):\n${r.stderr.trim()}`);
}
