/**
 * The live targets of a run: the benchmark database, PostgreSQL direct, pgbouncer and Gatehouse,
 * started once on first use and stopped with the process registry.
 */
import { join } from 'node:path';
import { ensureBenchDatabase } from './database.js';
import { startGatehouse } from './gatehouse.js';
import { ensurePgbouncer, startPgbouncer } from './pgbouncer.js';
import type { ProcessRegistry } from './processes.js';
import type { BenchSettings } from './settings.js';
import { directTarget, waitUntilQueryable, type Target } from './targets.js';

export interface TargetSet {
  /** Start the targets on the first call; later calls share the result. */
  get(): Promise<readonly Target[]>;
  /** The targets started so far (empty if no section asked for them). */
  readonly started: readonly Target[];
}

export function createTargets(registry: ProcessRegistry, dir: string, settings: BenchSettings, progress: (msg: string) => void): TargetSet {
  let starting: Promise<readonly Target[]> | undefined;
  let started: readonly Target[] = [];
  const start = async (): Promise<readonly Target[]> => {
    const direct = directTarget();
    await waitUntilQueryable({ ...direct.endpoint, database: 'postgres' }, 'PostgreSQL', { timeoutMs: 5_000 });
    await ensureBenchDatabase(registry, progress);
    const bin = await ensurePgbouncer(registry, progress);
    const pgbouncer = await startPgbouncer(registry, bin, join(dir, 'pgbouncer'));
    progress(`pgbouncer: ${pgbouncer.target.description}`);
    const gatehouse = await startGatehouse(registry, join(dir, 'gatehouse'), { workers: settings.workers, logStatements: settings.logStatements });
    progress(`gatehouse: ${gatehouse.target.description}`);
    // Run order within each (mode, clients), as the issue asks: direct, pgbouncer, gatehouse.
    started = [direct, pgbouncer.target, gatehouse.target];
    return started;
  };
  return {
    get: () => (starting ??= start()),
    get started() {
      return started;
    },
  };
}
