/**
 * `npm run bench`: compares Gatehouse with PostgreSQL direct and with pgbouncer, and prints a
 * report to paste into a closing note. Knobs (environment): BENCH_SECONDS (10), BENCH_WORKERS (1),
 * BENCH_LOG_STATEMENTS (true), BENCH_UPSTREAM ("unix" or "tcp"; unix), BENCH_CLIENTS ("1,16"),
 * BENCH_MODES ("simple,extended,prepared"), BENCH_SECTIONS (all). Progress goes to stderr, the report to stdout; raw outputs, logs and
 * results.json go to a fresh directory under the OS temp dir, never into the repository.
 * The goal verdicts are informational: the exit code is 0 unless a measurement could not be taken.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTargets } from './environment.js';
import { ProcessRegistry } from './processes.js';
import type { BenchContext, Section, SectionResult } from './section.js';
import { SECTIONS } from './sections.js';
import { readSettings, SettingsError, type BenchSettings } from './settings.js';
import { renderTable } from './table.js';
import { PG_HOST, describeUpstream, directTarget, withClient, type Target } from './targets.js';

const progress = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

function selectSections(settings: BenchSettings): readonly Section[] {
  if (settings.sections.length === 0) return SECTIONS;
  const unknown = settings.sections.filter((id) => !SECTIONS.some((s) => s.id === id));
  if (unknown.length > 0) throw new SettingsError(`BENCH_SECTIONS: unknown section(s) ${unknown.join(', ')}; known: ${SECTIONS.map((s) => s.id).join(', ')}`);
  return SECTIONS.filter((s) => settings.sections.includes(s.id));
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Share of all CPUs busy over a short window, from /proc/stat. Unlike the load average, this
 * does not still count the previous benchmark run a minute later. Null where /proc is missing.
 */
async function cpuBusyPercent(windowMs = 1_000): Promise<number | null> {
  const sample = (): { idle: number; total: number } | null => {
    try {
      // "cpu  user nice system idle iowait irq softirq steal ..." in clock ticks since boot.
      const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
      return { idle: ticks[3]! + (ticks[4] ?? 0), total: ticks.slice(0, 8).reduce((a, b) => a + b, 0) };
    } catch {
      return null;
    }
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, windowMs));
  const b = sample();
  if (!a || !b || b.total === a.total) return null;
  return Math.round((1 - (b.idle - a.idle) / (b.total - a.total)) * 100);
}

interface Machine {
  readonly cpus: number;
  /** Percent of all CPUs busy during one second before the run; other work skews every number. */
  readonly cpu_busy_at_start_pct: number | null;
  readonly loadavg_at_start: readonly number[];
  readonly node: string;
  readonly pgbench: string;
  readonly postgres: string;
  /** /proc/sys/kernel/sched_autogroup_enabled; null where it cannot be read. */
  readonly autogroup: boolean | null;
}

function autogroupEnabled(): boolean | null {
  try {
    return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
  } catch {
    return null;
  }
}

async function describeMachine(): Promise<Machine> {
  const postgres = await withClient({ ...directTarget().endpoint, database: 'postgres' }, async (c) => (await c.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v).catch(() => 'unknown');
  return { cpus: availableParallelism(), cpu_busy_at_start_pct: await cpuBusyPercent(), loadavg_at_start: loadavg().map((x) => Math.round(x * 100) / 100), node: process.version, pgbench: firstLine('pgbench', ['--version']), postgres: postgres.split(',')[0]!, autogroup: autogroupEnabled() };
}

function header(settings: BenchSettings, machine: Machine, targets: readonly Target[], startedAt: Date): string {
  return [
    `Gatehouse benchmark — ${startedAt.toISOString()}`,
    `machine: ${machine.cpus} CPUs, ${machine.cpu_busy_at_start_pct ?? '?'}% busy just before the run; ${machine.postgres}; ${machine.pgbench}; node ${machine.node}`,
    `settings: BENCH_SECONDS=${settings.seconds} BENCH_ROUNDS=${settings.rounds} BENCH_WORKERS=${settings.workers} BENCH_LOG_STATEMENTS=${settings.logStatements} BENCH_UPSTREAM=${settings.upstream} BENCH_CLIENTS=${settings.clients.join(',')} BENCH_MODES=${settings.modes.join(',')}`,
    `upstream transport: ${settings.upstream} — direct pgbench, pgbouncer, node-relay and Gatehouse all reach PostgreSQL over ${describeUpstream(settings.upstream)}; clients reach the proxies over TCP ${PG_HOST}`,
    // Every child runs in its own session (detached): pgbench, pgbouncer, each Gatehouse; the
    // PostgreSQL backends share the postmaster's. Autogroup shares CPU between sessions first.
    `scheduling: each pgbench, pgbouncer, node-relay and Gatehouse process in its own session; kernel autogroup ${machine.autogroup === null ? 'unknown' : machine.autogroup ? 'on (CPU is shared between sessions first: at full load a proxy gets about its session\'s share, so its CPU per transaction sets its TPS)' : 'off'}`,
    `statement log: Gatehouse log.statements=${settings.logStatements}${settings.logStatements ? ' (one JSON line per statement written to the log file, as in production; the default)' : ' (off: BENCH_LOG_STATEMENTS=false; production default is on)'}`,
    ...targets.map((t) => `target ${t.id}: ${t.description}`),
    // Other work on a small machine moves every number; say so next to them.
    ...((machine.cpu_busy_at_start_pct ?? 0) > 20 ? [`warning: other work kept the CPUs ${machine.cpu_busy_at_start_pct}% busy just before the run; compare ratios, not absolute TPS`] : []),
  ].join('\n');
}

async function main(): Promise<number> {
  const settings = readSettings();
  const sections = selectSections(settings);
  const registry = new ProcessRegistry();
  let interrupted = false;
  const interrupt = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: stopping child processes`);
    void registry.stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  // A crash skips the orderly stop below; at least signal the children.
  process.once('exit', () => registry.killAllNow());

  const dir = mkdtempSync(join(tmpdir(), 'gh-bench-'));
  // pgbouncer runs as `postgres` and must reach its subdirectory.
  chmodSync(dir, 0o755);
  progress(`scratch directory: ${dir}`);
  const startedAt = new Date();
  const machine = await describeMachine();
  const targets = createTargets(registry, dir, settings, progress);
  const ctx: BenchContext = { settings, registry, dir, targets: targets.get, progress };

  const results: { section: Section; result: SectionResult }[] = [];
  try {
    for (const section of sections) {
      progress(`section ${section.id}: ${section.title}`);
      results.push({ section, result: await section.run(ctx) });
    }
  } catch (err) {
    if (interrupted) return 130;
    await registry.stopAll();
    throw err;
  }
  const liveTargets = targets.started;
  await registry.stopAll();
  if (interrupted) return 130;
  const finishedAt = new Date();

  const out: string[] = [header(settings, machine, liveTargets, startedAt)];
  for (const { section, result } of results) {
    out.push('', `## ${section.title}`, '', renderTable(result.table), '', ...result.notes);
    if (result.errors.length > 0) out.push('', 'errors:', ...result.errors.map((e) => `  ${e}`));
  }
  const jsonFile = join(dir, 'results.json');
  writeFileSync(
    jsonFile,
    JSON.stringify(
      {
        started_at: startedAt.toISOString(),
        finished_at: finishedAt.toISOString(),
        settings,
        machine,
        targets: liveTargets.map((t) => ({ id: t.id, role: t.role, description: t.description })),
        sections: Object.fromEntries(results.map(({ section, result }) => [section.id, { title: section.title, rows: result.rows, notes: result.notes, errors: result.errors }])),
      },
      null,
      2,
    ) + '\n',
  );
  out.push('', `results: ${jsonFile}`);
  process.stdout.write(out.join('\n') + '\n');
  return results.some(({ result }) => result.errors.length > 0) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Setup failures (pgbouncer, Gatehouse, the database) carry their own context; no stack needed.
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof SettingsError ? 2 : 1;
  },
);
