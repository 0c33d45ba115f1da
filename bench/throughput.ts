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
import { formatMs, formatRatio, formatTps, renderTable, type Column } from './table.js';
import type { Target } from './targets.js';

/** A ratio column: subject TPS divided by base TPS, per (mode, clients). */
export interface RatioSpec {
  readonly subject: string;
  readonly base: string;
  /** PASS/FAIL at >= minClients when the ratio is at least `min`; no verdict without it. */
  readonly goal?: { readonly min: number; readonly minClients: number; readonly source: string };
}

/**
 * The ratios the report prints, in column order. Goals: gatehouse keeps >= 80% of pgbouncer's TPS
 * at 16+ clients; the audit trail costs at most 15%; guardrails plus a 20-rule policy cost Gatehouse at most 10% at 16+ clients.
 */
export const RATIOS: readonly RatioSpec[] = [
  { subject: 'gatehouse', base: 'direct' },
  { subject: 'gatehouse', base: 'pgbouncer', goal: { min: 0.8, minClients: 16, source: 'proxy overhead goal' } },
  { subject: 'gatehouse+audit', base: 'gatehouse', goal: { min: 0.85, minClients: 16, source: 'audit overhead goal (issue 5)' } },
  { subject: 'gatehouse+policy', base: 'gatehouse', goal: { min: 0.9, minClients: 16, source: 'policy overhead goal' } },
];

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
  /** Targets that are the subject of a ratio: TPS divided by each base's TPS, keyed by base id. */
  readonly ratios?: Record<string, number | null>;
  /** PASS/FAIL per base with a goal; null where the goal does not apply (too few clients, no number). */
  readonly goals?: Record<string, Verdict | null>;
}

const key = (mode: QueryMode, clients: number, target: string): string => `${mode}/${clients}/${target}`;

function ratio(subject: Measurement | undefined, baseline: Measurement | undefined): number | null {
  if (!subject?.ok || !baseline?.ok || baseline.summary.tps === 0) return null;
  return subject.summary.tps / baseline.summary.tps;
}

function verdict(spec: RatioSpec, clients: number, r: number | null): Verdict | null {
  if (!spec.goal || clients < spec.goal.minClients || r === null) return null;
  return r >= spec.goal.min ? 'PASS' : 'FAIL';
}

const ratioLabel = (spec: RatioSpec): string => `${spec.subject}/${spec.base}`;

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
    // all of them alike instead of skewing one whole column.
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

    const ids = new Set(targets.map((t) => t.id));
    const ratioSpecs = RATIOS.filter((r) => ids.has(r.subject) && ids.has(r.base));
    const goalSpecs = ratioSpecs.filter((r) => r.goal);

    // Table 1: TPS and latency per target. Table 2 (in the notes): ratios and verdicts, so
    // neither grows too wide to read in a terminal.
    const columns: Column[] = [{ header: 'mode' }, { header: 'clients', align: 'right' }];
    for (const t of targets) columns.push({ header: `${t.label} tps`, align: 'right' }, { header: `${t.label} ms`, align: 'right' });
    const ratioColumns: Column[] = [{ header: 'mode' }, { header: 'clients', align: 'right' }];
    for (const r of ratioSpecs) ratioColumns.push({ header: ratioLabel(r), align: 'right' });
    for (const r of goalSpecs) ratioColumns.push({ header: `${ratioLabel(r)} >= ${r.goal!.min}` });

    const tableRows: string[][] = [];
    const ratioRows: string[][] = [];
    const rows: ThroughputRow[] = [];
    const tally = new Map<RatioSpec, { checked: number; passed: number }>(goalSpecs.map((r) => [r, { checked: 0, passed: 0 }]));
    for (const mode of settings.modes) {
      for (const clients of settings.clients) {
        const cells = [mode, String(clients)];
        const get = (id: string): Measurement | undefined => results.get(key(mode, clients, id));
        const ratioOf = new Map(ratioSpecs.map((r) => [r, ratio(get(r.subject), get(r.base))]));
        for (const t of targets) {
          const m = get(t.id);
          cells.push(m?.ok ? formatTps(m.summary.tps) : 'error', m?.ok ? formatMs(m.summary.latencyMs) : 'error');
          const mine = ratioSpecs.filter((r) => r.subject === t.id);
          const ratios = Object.fromEntries(mine.map((r) => [r.base, ratioOf.get(r)!]));
          const goals = Object.fromEntries(mine.filter((r) => r.goal).map((r) => [r.base, verdict(r, clients, ratioOf.get(r)!)]));
          rows.push({
            mode,
            clients,
            target: t.id,
            tps: m?.ok ? m.summary.tps : null,
            latency_ms: m?.ok ? m.summary.latencyMs : null,
            transactions: m?.ok ? m.summary.transactions : null,
            failed_transactions: m?.ok ? m.summary.failed : null,
            ...(m && !m.ok ? { error: m.error } : {}),
            ...(mine.length > 0 ? { ratios } : {}),
            ...(Object.keys(goals).length > 0 ? { goals } : {}),
          });
        }
        tableRows.push(cells);
        const verdicts = goalSpecs.map((r) => {
          const v = verdict(r, clients, ratioOf.get(r)!);
          if (v !== null) {
            const t = tally.get(r)!;
            t.checked++;
            if (v === 'PASS') t.passed++;
          }
          return v ?? '-';
        });
        ratioRows.push([mode, String(clients), ...ratioSpecs.map((r) => (ratioOf.get(r) === null ? '-' : formatRatio(ratioOf.get(r)!))), ...verdicts]);
      }
    }

    const failedTx = rows.filter((r) => (r.failed_transactions ?? 0) > 0);
    const notes = [
      `tps: pgbench "tps … (without initial connection time)"; ms: pgbench "latency average"; ${settings.seconds}s per run, -j min(clients, 2), pgbench scale ${SCALE}.`,
      `Run order per (mode, clients): ${targets.map((t) => t.id).join(', ')}.`,
      '',
      'Ratios (TPS of the first target divided by TPS of the second):',
      '',
      renderTable({ columns: ratioColumns, rows: ratioRows }),
      '',
      ...goalSpecs.map((r) => {
        const t = tally.get(r)!;
        return `goal (${r.goal!.source}): ${r.subject} TPS >= ${r.goal!.min} x ${r.base} TPS at >= ${r.goal!.minClients} clients (PASS/FAIL; "-" where it does not apply). Met in ${t.passed} of ${t.checked} rows.`;
      }),
      ...failedTx.map((r) => `warning: ${r.failed_transactions} failed transactions in -M ${r.mode} -c ${r.clients} ${r.target}`),
      `raw pgbench output: ${outDir}`,
    ];
    return { table: { columns, rows: tableRows }, notes, rows, errors };
  },
};
