/**
 * The live targets of a run: the benchmark database, PostgreSQL direct, pgbouncer, node-relay (a
 * byte relay with Gatehouse's socket I/O: the floor of a Node.js proxy), Gatehouse
 * (pass-through: no guardrails, no policy files, no audit), the same with the audit trail on, and
 * Gatehouse with guardrails and a 20-rule policy (audit off, to isolate the policy's cost), started once on first use and stopped with the process registry. All four reach
 * PostgreSQL the same way (BENCH_UPSTREAM).
 */
import { join } from 'node:path';
import { ensureBenchDatabase } from './database.js';
import { startGatehouse } from './gatehouse.js';
import { startNodeRelay } from './node-relay.js';
import { ensurePgbouncer, startPgbouncer } from './pgbouncer.js';
import { BENCH_RULES, writeBenchPolicy } from './policy-fixture.js';
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
    const direct = directTarget(settings.upstream);
    await waitUntilQueryable({ ...direct.endpoint, database: 'postgres' }, 'PostgreSQL', { timeoutMs: 5_000 });
    await ensureBenchDatabase(registry, progress);
    const bin = await ensurePgbouncer(registry, progress);
    const pgbouncer = await startPgbouncer(registry, bin, join(dir, 'pgbouncer'), settings.upstream);
    progress(`pgbouncer: ${pgbouncer.target.description}`);
    const relay = await startNodeRelay(registry, join(dir, 'node-relay'), settings.upstream);
    progress(`node-relay: ${relay.description}`);
    const common = { workers: settings.workers, logStatements: settings.logStatements, upstream: settings.upstream };
    const gatehouse = await startGatehouse(registry, join(dir, 'gatehouse'), { ...common, id: 'gatehouse', guardrails: false, audit: false });
    progress(`gatehouse: ${gatehouse.target.description}`);
    // The same pass-through with the audit trail on: their ratio is the cost of auditing alone.
    const audited = await startGatehouse(registry, join(dir, 'gatehouse-audit'), { ...common, id: 'gatehouse+audit', guardrails: false, audit: true });
    progress(`gatehouse+audit: ${audited.target.description}`);
    const policyFile = writeBenchPolicy(join(dir, 'policy'));
    const withPolicy = await startGatehouse(registry, join(dir, 'gatehouse-policy'), { ...common, id: 'gatehouse+policy', guardrails: true, audit: false, policyFiles: [policyFile] });
    const policyTarget = { ...withPolicy.target, description: `${withPolicy.target.description}; ${BENCH_RULES.length} policy rules + built-in guardrails, none matching pgbench -S` };
    progress(`gatehouse+policy: ${policyTarget.description}`);
    // Run order within each (mode, clients): direct, pgbouncer, node-relay, gatehouse, gatehouse+audit, gatehouse+policy.
    started = [direct, pgbouncer.target, relay, gatehouse.target, audited.target, policyTarget];
    return started;
  };
  return {
    get: () => (starting ??= start()),
    get started() {
      return started;
    },
  };
}
