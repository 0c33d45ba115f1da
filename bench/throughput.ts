/**
 * pgbench select-only throughput per (query mode, clients, target). Select-only keeps
 * PostgreSQL's own work tiny, so the differences between targets are the proxies' overhead.
 * Each (mode, clients) is measured in BENCH_ROUNDS rounds of every target side by side
 * (src: rounds.ts): TPS and latency are the medians over rounds, a ratio the median of the
 * rounds' ratios, printed with its range.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { SCALE } from './database.js';
import { runPgbench, type PgbenchSummary } from './pgbench.js';
import type { BenchContext, Section, SectionResult } from './section.js';
import type { QueryMode } from './settings.js';
import { formatMs, formatRatio, formatTps, renderTable, type Column } from './table.js';
import type { Target } from './targets.js';
import { median, rotated, roundRatios, spread, type Spread } from './rounds.js';
import { groupCpuSeconds } from './cpu.js';

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
  // The Node.js floor: what Gatehouse's own work costs over a bare relay with its socket I/O, and what that relay costs over pgbouncer.
  { subject: 'gatehouse', base: 'node-relay' },
  { subject: 'node-relay', base: 'pgbouncer' },
  { subject: 'gatehouse+audit', base: 'gatehouse', goal: { min: 0.85, minClients: 16, source: 'audit overhead goal (issue 5)' } },
  { subject: 'gatehouse+policy', base: 'gatehouse', goal: { min: 0.9, minClients: 16, source: 'policy overhead goal' } },
];

type Verdict = 'PASS' | 'FAIL';

/**
 * One pgbench run: a summary and the target's CPU per transaction (µs, its whole process group,
 * null without one), or why there is none.
 */
type Measurement = { readonly ok: true; readonly summary: PgbenchSummary; readonly cpuUs: number | null } | { readonly ok: false; readonly error: string };

export interface ThroughputRow {
  readonly mode: QueryMode;
  readonly clients: number;
  readonly target: string;
  /** Median over the rounds that measured. */
  readonly tps: number | null;
  readonly latency_ms: number | null;
  /** Over all rounds. */
  readonly transactions: number | null;
  readonly failed_transactions: number | null;
  /** Each round's TPS, in round order (null: that run failed). */
  readonly round_tps: ReadonlyArray<number | null>;
  /** CPU time of the target's process group per transaction (µs, user + system), median over the rounds; null for direct. */
  readonly cpu_us_per_tx: number | null;
  readonly round_cpu_us_per_tx: ReadonlyArray<number | null>;
  readonly error?: string;
  /** Targets that are the subject of a ratio: the median of the rounds' ratios to each base, keyed by base id. */
  readonly ratios?: Record<string, number | null>;
  /** ...and each round's ratio, in round order. */
  readonly round_ratios?: Record<string, ReadonlyArray<number | null>>;
  /** PASS/FAIL per base with a goal; null where the goal does not apply (too few clients, no number). */
  readonly goals?: Record<string, Verdict | null>;
}

const key = (mode: QueryMode, clients: number, target: string): string => `${mode}/${clients}/${target}`;

const tpsOf = (runs: readonly Measurement[] | undefined): Array<number | null> => (runs ?? []).map((m) => (m.ok ? m.summary.tps : null));
const cpuOf = (runs: readonly Measurement[]): Array<number | null> => runs.map((m) => (m.ok ? m.cpuUs : null));
const medianOrNull = (xs: ReadonlyArray<number | null>): number | null => {
  const known = xs.filter((x): x is number => x !== null);
  return known.length > 0 ? median(known) : null;
};

/** A ratio and its range over rounds, e.g. "0.82 (0.78-0.86)"; "-" without one. */
function formatSpread(s: Spread | null): string {
  if (s === null) return '-';
  return s.n > 1 ? `${formatRatio(s.median)} (${formatRatio(s.min)}-${formatRatio(s.max)})` : formatRatio(s.median);
}

function verdict(spec: RatioSpec, clients: number, r: number | null): Verdict | null {
  if (!spec.goal || clients < spec.goal.minClients || r === null) return null;
  return r >= spec.goal.min ? 'PASS' : 'FAIL';
}

const ratioLabel = (spec: RatioSpec): string => `${spec.subject}/${spec.base}`;

/** CPU per transaction is measured from this long after pgbench starts: its clients are connected and authenticated by then. */
const CPU_FROM_MS = 1000;

async function measure(ctx: BenchContext, target: Target, mode: QueryMode, clients: number, seconds: number, outputFile: string): Promise<Measurement> {
  const pid = target.pid;
  let from: { cpu: number; at: number } | null = null;
  const timer =
    pid !== undefined && seconds * 1000 > 2 * CPU_FROM_MS
      ? setTimeout(() => {
          const cpu = groupCpuSeconds(pid);
          if (cpu !== null) from = { cpu, at: performance.now() };
        }, CPU_FROM_MS)
      : undefined;
  try {
    const summary = await runPgbench(ctx.registry, target, { mode, clients, seconds }, outputFile);
    const start = from as { cpu: number; at: number } | null;
    const cpu = start !== null ? groupCpuSeconds(pid!) : null;
    // Transactions of the window: pgbench's rate (which leaves out connecting) times its length.
    const transactions = start !== null ? (summary.tps * (performance.now() - start.at)) / 1000 : 0;
    const cpuUs = cpu !== null && transactions > 0 ? ((cpu - start!.cpu) * 1e6) / transactions : null;
    return { ok: true, summary, cpuUs };
  } catch (err) {
    // A run killed by Ctrl-C is no measurement; let the interrupt end the section.
    if (ctx.registry.stopping) throw err;
    return { ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
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

    // Targets run back-to-back per (mode, clients), round after round in a rotated order, so
    // slow drift of a noisy machine hits all of them alike instead of skewing one whole column,
    // and a burst of other load skews one round, which the median leaves out.
    const rounds = settings.rounds;
    const results = new Map<string, Measurement[]>();
    const total = settings.modes.length * settings.clients.length * targets.length * rounds;
    let n = 0;
    for (const mode of settings.modes) {
      for (const clients of settings.clients) {
        for (let round = 0; round < rounds; round++) {
          for (const t of rotated(targets, round)) {
            n++;
            const label = rounds > 1 ? `, round ${round + 1}/${rounds}` : '';
            ctx.progress(`[${n}/${total}] -M ${mode} -c ${clients} ${t.id}${label} (${settings.seconds}s)`);
            const file = join(outDir, `${mode}-c${clients}-${t.id}${rounds > 1 ? `-r${round + 1}` : ''}.txt`);
            const m = await measure(ctx, t, mode, clients, settings.seconds, file);
            const k = key(mode, clients, t.id);
            results.set(k, [...(results.get(k) ?? []), m]);
            if (m.ok) ctx.progress(`    ${formatTps(m.summary.tps)} tps, ${formatMs(m.summary.latencyMs)} ms`);
            else {
              ctx.progress(`    error: ${m.error}`);
              errors.push(`-M ${mode} -c ${clients} ${t.id} round ${round + 1}: ${m.error}`);
            }
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

    // Table 3 (in the notes): CPU per transaction of each target that is a process of its own.
    const cpuTargets = targets.filter((t) => t.pid !== undefined);
    const cpuColumns: Column[] = [{ header: 'mode' }, { header: 'clients', align: 'right' }, ...cpuTargets.map((t): Column => ({ header: `${t.label} µs/tx`, align: 'right' }))];
    const cpuRows: string[][] = [];
    const tableRows: string[][] = [];
    const ratioRows: string[][] = [];
    const rows: ThroughputRow[] = [];
    const tally = new Map<RatioSpec, { checked: number; passed: number }>(goalSpecs.map((r) => [r, { checked: 0, passed: 0 }]));
    for (const mode of settings.modes) {
      for (const clients of settings.clients) {
        const cells = [mode, String(clients)];
        const cpuCells = [mode, String(clients)];
        const get = (id: string): Measurement[] => results.get(key(mode, clients, id)) ?? [];
        const perRound = new Map(ratioSpecs.map((r) => [r, roundRatios(tpsOf(get(r.subject)), tpsOf(get(r.base)))]));
        const spreadOf = new Map(ratioSpecs.map((r) => [r, spread(perRound.get(r)!)]));
        const ratioOf = new Map(ratioSpecs.map((r) => [r, spreadOf.get(r)?.median ?? null]));
        for (const t of targets) {
          const runs = get(t.id);
          const ok = runs.flatMap((m) => (m.ok ? [m.summary] : []));
          const tps = ok.length > 0 ? median(ok.map((s) => s.tps)) : null;
          const latency = ok.length > 0 ? median(ok.map((s) => s.latencyMs)) : null;
          cells.push(tps !== null ? formatTps(tps) : 'error', latency !== null ? formatMs(latency) : 'error');
          const mine = ratioSpecs.filter((r) => r.subject === t.id);
          const ratios = Object.fromEntries(mine.map((r) => [r.base, ratioOf.get(r)!]));
          const roundsOf = Object.fromEntries(mine.map((r) => [r.base, perRound.get(r)!]));
          const goals = Object.fromEntries(mine.filter((r) => r.goal).map((r) => [r.base, verdict(r, clients, ratioOf.get(r)!)]));
          const cpu = medianOrNull(cpuOf(runs));
          if (t.pid !== undefined) cpuCells.push(cpu === null ? '-' : cpu.toFixed(1));
          const failure = runs.find((m): m is Extract<Measurement, { ok: false }> => !m.ok);
          rows.push({
            mode,
            clients,
            target: t.id,
            tps,
            latency_ms: latency,
            transactions: ok.length > 0 ? ok.reduce((a, s) => a + s.transactions, 0) : null,
            failed_transactions: ok.length > 0 ? ok.reduce((a, s) => a + s.failed, 0) : null,
            round_tps: tpsOf(runs),
            cpu_us_per_tx: cpu,
            round_cpu_us_per_tx: cpuOf(runs),
            ...(failure !== undefined ? { error: failure.error } : {}),
            ...(mine.length > 0 ? { ratios, round_ratios: roundsOf } : {}),
            ...(Object.keys(goals).length > 0 ? { goals } : {}),
          });
        }
        tableRows.push(cells);
        cpuRows.push(cpuCells);
        const verdicts = goalSpecs.map((r) => {
          const v = verdict(r, clients, ratioOf.get(r)!);
          if (v !== null) {
            const t = tally.get(r)!;
            t.checked++;
            if (v === 'PASS') t.passed++;
          }
          return v ?? '-';
        });
        ratioRows.push([mode, String(clients), ...ratioSpecs.map((r) => formatSpread(spreadOf.get(r)!)), ...verdicts]);
      }
    }

    const failedTx = rows.filter((r) => (r.failed_transactions ?? 0) > 0);
    const notes = [
      `tps: pgbench "tps … (without initial connection time)"; ms: pgbench "latency average"; ${settings.seconds}s per run, -j min(clients, 2), pgbench scale ${SCALE}.`,
      rounds > 1
        ? `${rounds} rounds per (mode, clients), each running every target once, the order rotated each round (round 1: ${targets.map((t) => t.id).join(', ')}); tps and ms are the medians over the rounds.`
        : `Run order per (mode, clients): ${targets.map((t) => t.id).join(', ')}.`,
      '',
      rounds > 1
        ? 'Ratios (TPS of the first target divided by TPS of the second, within each round): the median over the rounds, with their range; verdicts on the median:'
        : 'Ratios (TPS of the first target divided by TPS of the second):',
      '',
      renderTable({ columns: ratioColumns, rows: ratioRows }),
      '',
      ...goalSpecs.map((r) => {
        const t = tally.get(r)!;
        return `goal (${r.goal!.source}): ${r.subject} TPS >= ${r.goal!.min} x ${r.base} TPS at >= ${r.goal!.minClients} clients (PASS/FAIL; "-" where it does not apply). Met in ${t.passed} of ${t.checked} rows.`;
      }),
      ...(cpuTargets.length > 0
        ? [
            '',
            `CPU per transaction of each proxy: user + system time of its whole process group (every thread, so the audit writer, and cluster workers when --workers > 1) from ${CPU_FROM_MS / 1000} s into each pgbench run (its clients connected and authenticated) to its end, divided by pgbench's TPS times that time; median over the rounds. With autogroup on (the header's scheduling line), a proxy that needs all of its session's share of a saturated machine has a TPS near that share divided by its CPU per transaction:`,
            '',
            renderTable({ columns: cpuColumns, rows: cpuRows }),
          ]
        : []),
      ...failedTx.map((r) => `warning: ${r.failed_transactions} failed transactions in -M ${r.mode} -c ${r.clients} ${r.target}`),
      `raw pgbench output: ${outDir}`,
    ];
    return { table: { columns, rows: tableRows }, notes, rows, errors };
  },
};
