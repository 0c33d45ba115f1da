/**
 * A section is one part of the benchmark report (pgbench throughput today; policy-decision
 * micro-benchmarks and more targets later). Each produces a table for people and rows for the
 * JSON results; run.ts only sequences sections and prints what they return.
 */
import type { ProcessRegistry } from './processes.js';
import type { BenchSettings } from './settings.js';
import type { Table } from './table.js';
import type { Target } from './targets.js';

export interface BenchContext {
  readonly settings: BenchSettings;
  /** Start children through this, so they are stopped on exit and on Ctrl-C. */
  readonly registry: ProcessRegistry;
  /** This run's scratch directory (logs, raw tool output); kept after the run. */
  readonly dir: string;
  /** The live targets, started on first call: a section that needs no database never pays for them. */
  targets(): Promise<readonly Target[]>;
  /** A progress line on stderr; stdout carries only the report. */
  progress(msg: string): void;
}

export interface SectionResult {
  readonly table: Table;
  /** Lines printed under the table (legend, goal, caveats). */
  readonly notes: readonly string[];
  /** Machine-readable rows for the JSON results. */
  readonly rows: readonly object[];
  /** Measurements that could not be taken; any of them makes the run exit non-zero. */
  readonly errors: readonly string[];
}

export interface Section {
  /** Stable id: the key in the JSON results and the name BENCH_SECTIONS selects. */
  readonly id: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<SectionResult>;
}
