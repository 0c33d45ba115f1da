/**
 * pgbench select-only throughput per (query mode, clients, target). Select-only keeps
 * PostgreSQL's own work tiny, so the differences between targets are the proxies' overhead.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { SCALE } from './database.js';
import { runPgbench, type PgbenchSummary } from './pgbench.js';
import type { BenchContext, Section, SectionResult } from './section.js';
import type { QueryMode } from './settings.js';
import { formatMs, formatRatio, formatTps, type Column } from './table.js';
import type { Target } from './targets.js';

/** The goal from the issue: at 16+ clients every subject keeps >= 80% of pgbouncer's TPS. */
export const GOAL = { versus: 'pgbouncer', minClients: 16, ratio: 0.8 } as const;

type Verdict = 'PASS' | 'FAIL';

/** One pgbench run: a summary, or why there is none. */
type Measurement = { readonly ok: true; readonly summary: PgbenchSummary } | { readonly ok: false; readonly error: string };

export interface ThroughputRow {
  readonly mode: QueryMode;
  readonly clients: number;
  readonly target: string;
  readonly tps: number | null;
  readonly latency_ms: number | null;
  readonly transactions: number | null;
  readonly failed_transactions: number | null;
  readonly error?: string;
  /** Subjects only: TPS divided by each baseline's TPS, keyed by baseline id. */
  readonly ratios?: Record<string, number | null>;
  /** Subjects only: PASS/FAIL against GOAL, null where the goal does not apply. */
  readonly goal?: Verdict | null;
}

const key = (mode: QueryMode, clients: number, target: string): string => `${mode}/${clients}/${target}`;

function ratio(subject: Measurement | undefined, baseline: Measurement | undefined): number | null {
  if (!subject?.ok || !baseline?.ok || baseline.summary.tps === 0) return null;
  return subject.summary.tps / baseline.summary.tps;
}

function verdict(clients: number, vsGoal: number | null): Verdict | null {
  if (clients < GOAL.minClients || vsGoal === null) return null;
  return vsGoal >= GOAL.ratio ? 'PASS' : 'FAIL';
}

async function measure(ctx: BenchContext, target: Target, mode: QueryMode, clients: number, seconds: number, outputFile: string): Promise<Measurement> {
  try {
    return { ok: true, summary: await runPgbench(ctx.registry, target, { mode, clients, seconds }, outputFile) };
  } catch (err) {
    // A run killed by Ctrl-C is no measurement; let the interrupt end the section.
    if (ctx.registry.stopping) throw err;
    return { ok: false, error: (err as Error).message };
  }
}

export const throughputSection: Section = {
  id: 'throughput',
  title: 'pgbench -S (select-only) throughput',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const { settings } = ctx;
    const targets = await ctx.targets();
    const baselines = targets.filter((t) => t.role === 'baseline');
    const subjects = targets.filter((t) => t.role === 'subject');
    const outDir = join(ctx.dir, 'pgbench');
    mkdirSync(outDir, { recursive: true });
    const errors: string[] = [];

    // One short run per target first, so no target's first measurement pays for cold caches,
    // JIT compilation or pgbouncer opening its server connections.
    const warmClients = Math.max(...settings.clients);
    for (const t of targets) {
      ctx.progress(`warm-up: ${t.id}, -M ${settings.modes[0]} -c ${warmClients}, ${settings.warmupSeconds}s`);
      const m = await measure(ctx, t, settings.modes[0]!, warmClients, settings.warmupSeconds, join(outDir, `warmup-${t.id}.txt`));
      if (!m.ok) errors.push(`warm-up of ${t.id}: ${m.error}`);
    }

    // Targets run back-to-back per (mode, clients), so slow drift of a noisy machine hits
    // all three alike instead of skewing one whole column.
    const results = new Map<string, Measurement>();
    const total = settings.modes.length * settings.clients.length * targets.length;
    let n = 0;
    for (const mode of settings.modes) {
      for (const clients of settings.clients) {
        for (const t of targets) {
          n++;
          ctx.progress(`[${n}/${total}] -M ${mode} -c ${clients} ${t.id} (${settings.seconds}s)`);
          const m = await measure(ctx, t, mode, clients, settings.seconds, join(outDir, `${mode}-c${clients}-${t.id}.txt`));
          results.set(key(mode, clients, t.id), m);
          if (m.ok) ctx.progress(`    ${formatTps(m.summary.tps)} tps, ${formatMs(m.summary.latencyMs)} ms`);
          else {
            ctx.progress(`    error: ${m.error}`);
            errors.push(`-M ${mode} -c ${clients} ${t.id}: ${m.error}`);
          }
        }
      }
    }

    const columns: Column[] = [{ header: 'mode' }, { header: 'clients', align: 'right' }];
    for (const t of targets) columns.push({ header: `${t.label} tps`, align: 'right' }, { header: `${t.label} ms`, align: 'right' });
    for (const s of subjects) for (const b of baselines) columns.push({ header: `${s.label}/${b.label}`, align: 'right' });
    for (const s of subjects) columns.push({ header: subjects.length > 1 ? `goal ${s.label}` : 'goal' });

    const tableRows: string[][] = [];
    const rows: ThroughputRow[] = [];
    let checked = 0;
    let passed = 0;
    for (const mode of settings.modes) {
      for (const clients of settings.clients) {
        const cells = [mode, String(clients)];
        const ratioCells: string[] = [];
        const goalCells: string[] = [];
        for (const t of targets) {
          const m = results.get(key(mode, clients, t.id));
          cells.push(m?.ok ? formatTps(m.summary.tps) : 'error', m?.ok ? formatMs(m.summary.latencyMs) : 'error');
          const row: ThroughputRow = {
            mode,
            clients,
            target: t.id,
            tps: m?.ok ? m.summary.tps : null,
            latency_ms: m?.ok ? m.summary.latencyMs : null,
            transactions: m?.ok ? m.summary.transactions : null,
            failed_transactions: m?.ok ? m.summary.failed : null,
            ...(m && !m.ok ? { error: m.error } : {}),
          };
          if (t.role === 'subject') {
            const ratios: Record<string, number | null> = {};
            for (const b of baselines) {
              ratios[b.id] = ratio(m, results.get(key(mode, clients, b.id)));
              ratioCells.push(ratios[b.id] === null ? '-' : formatRatio(ratios[b.id]!));
            }
            const v = verdict(clients, ratio(m, results.get(key(mode, clients, GOAL.versus))));
            if (v !== null) {
              checked++;
              if (v === 'PASS') passed++;
            }
            goalCells.push(v ?? '-');
            rows.push({ ...row, ratios, goal: v });
          } else rows.push(row);
        }
        tableRows.push([...cells, ...ratioCells, ...goalCells]);
      }
    }

    const failedTx = rows.filter((r) => (r.failed_transactions ?? 0) > 0);
    const notes = [
      `tps: pgbench "tps … (without initial connection time)"; ms: pgbench "latency average"; ${settings.seconds}s per run, -j min(clients, 2), pgbench scale ${SCALE}.`,
      `goal: ${subjects.map((s) => s.label).join(', ')} TPS >= ${GOAL.ratio} x ${GOAL.versus} TPS at >= ${GOAL.minClients} clients (PASS/FAIL; "-" where it does not apply). Met in ${passed} of ${checked} rows.`,
      ...failedTx.map((r) => `warning: ${r.failed_transactions} failed transactions in -M ${r.mode} -c ${r.clients} ${r.target}`),
      `raw pgbench output: ${outDir}`,
    ];
    return { table: { columns, rows: tableRows }, notes, rows, errors };
  },
};
