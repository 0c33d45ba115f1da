/**
 * Run pgbench against a target and read its summary. The numbers come from pgbench's own report
 * ("tps = … (without initial connection time)", "latency average = … ms"), so they match what
 * anyone running pgbench by hand would see.
 * https://www.postgresql.org/docs/15/pgbench.html
 */
import { writeFileSync } from 'node:fs';
import { runCommand, type ProcessRegistry } from './processes.js';
import type { QueryMode } from './settings.js';
import { libpqEnv, type Target } from './targets.js';

export interface PgbenchRun {
  readonly mode: QueryMode;
  readonly clients: number;
  readonly seconds: number;
  /** Extra pgbench options (e.g. a custom script later); appended before the database name. */
  readonly extraArgs?: readonly string[];
}

export interface PgbenchSummary {
  /** Transactions per second, excluding connection set-up. */
  readonly tps: number;
  /** Mean transaction latency in milliseconds. */
  readonly latencyMs: number;
  readonly transactions: number;
  /** pgbench >= 15 reports failed transactions; 0 when absent. */
  readonly failed: number;
}

export class PgbenchError extends Error {
  override readonly name = 'PgbenchError';
}

/** Parse the summary pgbench prints at the end of a run; throws when a number is missing. */
export function parsePgbenchOutput(text: string): PgbenchSummary {
  const num = (re: RegExp, what: string): number => {
    const m = re.exec(text);
    if (!m) throw new PgbenchError(`pgbench output has no "${what}" line`);
    return Number(m[1]);
  };
  return {
    tps: num(/^tps = ([\d.]+) \(without initial connection time\)/m, 'tps = … (without initial connection time)'),
    latencyMs: num(/^latency average = ([\d.]+) ms/m, 'latency average'),
    transactions: num(/^number of transactions actually processed: (\d+)/m, 'number of transactions actually processed'),
    failed: Number(/^number of failed transactions: (\d+)/m.exec(text)?.[1] ?? 0),
  };
}

/** The pgbench command line for a select-only (`-S`) run; `-n` because -S never needs the vacuum. */
export function pgbenchArgs(target: Target, run: PgbenchRun): string[] {
  const e = target.endpoint;
  const threads = Math.min(run.clients, 2);
  return ['-h', e.host, '-p', String(e.port), '-U', e.user, '-S', '-M', run.mode, '-c', String(run.clients), '-j', String(threads), '-T', String(run.seconds), '-n', ...(run.extraArgs ?? []), e.database];
}

/**
 * Run pgbench once. The full output is written to `outputFile` (if given) for later inspection;
 * a failed run throws with the tail of pgbench's stderr.
 */
export async function runPgbench(registry: ProcessRegistry, target: Target, run: PgbenchRun, outputFile?: string): Promise<PgbenchSummary> {
  const args = pgbenchArgs(target, run);
  const r = await runCommand(registry, 'pgbench', 'pgbench', args, { env: libpqEnv(target.endpoint) });
  if (outputFile) writeFileSync(outputFile, `$ pgbench ${args.join(' ')}\n# exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  if (r.code !== 0) throw new PgbenchError(`pgbench against ${target.id} exited with ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return parsePgbenchOutput(r.stdout);
}
