/**
 * In-process micro-benchmarks of the per-statement work Gatehouse adds, with no servers: the shape
 * key, a policy decision for a shape already decided in the session (what every pgbench -S
 * statement pays with a policy), an uncached analysis + decision of a join (a statement seen for
 * the first time), the PostgreSQL parse behind it, and libpg-query's normalize for reference.
 *
 * Timing: a warm-up (also sizing the rounds to about ROUND_MS each), then ROUNDS rounds of N calls
 * timed with process.hrtime.bigint(); the report gives the median round's mean µs per call, so one
 * round disturbed by other work on the machine does not move the number.
 */
import { normalizeSync } from 'libpg-query';
import pino from 'pino';
import type { ResolvedConnection } from '../src/config/load.js';
import type { Identity } from '../src/identity/identity.js';
import { PolicyEngine } from '../src/policy/engine.js';
import { guardrailsFor } from '../src/policy/load.js';
import { PolicyStage } from '../src/policy/plugin.js';
import { parsePolicyFile } from '../src/policy/rules.js';
import type { Decision, SessionInfo, Statement } from '../src/session/types.js';
import { ALLOW } from '../src/session/types.js';
import { analyzePostgres, loadPostgresParser } from '../src/sql/pg-analyzer.js';
import { statementKey } from '../src/sql/statement-key.js';
import { RowRewriter } from '../src/engine/postgres/row-rewriter.js';
import { messages } from '../src/protocol/postgres/index.js';
import { compileMasker, PgType, type MaskSpec } from '../src/masking/index.js';
import { maskingTransform } from '../src/masking/stage.js';
import type { ResultColumn } from '../src/session/types.js';
import { BENCH_RULES, benchPolicyYaml, joinStatement, pgbenchSelect } from './policy-fixture.js';
import type { BenchContext, Section, SectionResult } from './section.js';
import type { Column } from './table.js';
import { BENCH_DATABASE, PG_SOCKET_DIR, PG_PORT } from './targets.js';

const ROUNDS = 5;
const ROUND_MS = 200;
const WARMUP_MS = 300;

type Verdict = 'PASS' | 'FAIL';

export interface MicroRow {
  readonly id: string;
  readonly title: string;
  readonly iterations_per_round: number;
  /** Mean µs per call of each round, in run order. */
  readonly rounds_us: readonly number[];
  /** Median of rounds_us. */
  readonly us_per_op: number;
  readonly ops_per_sec: number;
  readonly target_us: number | null;
  readonly verdict: Verdict | null;
}

/** Results land here so no call can be optimized away. */
const sink: unknown[] = new Array(8);

interface Timing {
  readonly iterations: number;
  readonly roundsUs: number[];
  readonly medianUs: number;
}

/** `fn(i)` gets a counter that never repeats within a benchmark, for varying literals or names. */
function time(fn: (i: number) => unknown): Timing {
  let i = 0;
  // Warm-up: let V8 optimize and caches fill; measure the rough cost to size the rounds.
  const w0 = process.hrtime.bigint();
  const warmupNs = BigInt(WARMUP_MS * 1e6);
  let warm = 0;
  while (process.hrtime.bigint() - w0 < warmupNs) {
    for (let k = 0; k < 16; k++) sink[i & 7] = fn(i++);
    warm += 16;
  }
  const perOpNs = Number(process.hrtime.bigint() - w0) / warm;
  const iterations = Math.max(20, Math.min(5_000_000, Math.ceil((ROUND_MS * 1e6) / perOpNs)));
  const roundsUs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < iterations; k++) sink[i & 7] = fn(i++);
    const t1 = process.hrtime.bigint();
    roundsUs.push(Number(t1 - t0) / iterations / 1000);
  }
  const sorted = [...roundsUs].sort((a, b) => a - b);
  return { iterations, roundsUs, medianUs: sorted[Math.floor(sorted.length / 2)]! };
}

/** The resolved connection Gatehouse would build for the benchmark's production connection. */
function benchConnection(): ResolvedConnection {
  return {
    name: 'bench',
    engine: 'postgres',
    environment: 'production',
    labels: {},
    guardrails: true,
    roles: [],
    upstream: { host: PG_SOCKET_DIR, port: PG_PORT, database: BENCH_DATABASE, user: 'postgres', tls: { mode: 'disable' }, connect_timeout: 10_000 },
    upstreamPassword: undefined,
    upstreamCa: undefined,
  };
}

function benchSession(n: number): SessionInfo {
  const identity: Identity = { id: 'user:bench', kind: 'human', name: 'bench', groups: [], attributes: {}, authMethod: 'scram-sha-256', credentialId: 'local:bench' };
  return {
    id: `bench-${n}`,
    identity,
    connection: benchConnection(),
    client: { address: '127.0.0.1', port: 50_000 + n, tls: false },
    applicationName: 'pgbench',
    txState: 'idle',
    serverParams: new Map([
      ['client_encoding', 'UTF8'],
      ['standard_conforming_strings', 'on'],
    ]),
    startedAt: Date.now(),
  };
}

/**
 * Masking one DataRow of the masking benchmark's table (id, email, phone, ssn as text) as the
 * relay does: 4,096 rows laid out as in a network chunk, one rewritten per call. `redact` gives the
 * SSN a shorter value, so each row is rebuilt in the arena; `partial` keeps every length, so the
 * row is masked where it lies.
 */
function maskRowBench(plan: 'redact' | 'partial'): (i: number) => unknown {
  const text = { typeId: PgType.text, typmod: -1, binary: false };
  const ssn: MaskSpec = plan === 'redact' ? { fn: 'redact' } : { fn: 'partial', keepFirst: 0, keepLast: 4 };
  const specs: MaskSpec[] = [{ fn: 'email' }, { fn: 'partial' }, ssn];
  const transform = maskingTransform([1, 2, 3], specs.map((m) => compileMasker(m, text, { inPlace: true })));
  const columns: ResultColumn[] = ['id', 'email', 'phone', 'ssn'].map((name, k) => ({ name, tableId: 0, columnId: k + 1, ...text }));
  const frames: Buffer[] = [];
  for (let g = 1; g <= 4096; g++) {
    const values = [String(g), `user${g}@example.com`, `+1 415-555-${String(g).padStart(4, '0')}`, `${String(g % 900).padStart(3, '1')}-${String(g % 100).padStart(2, '1')}-${String(g).padStart(4, '0')}`];
    frames.push(messages.dataRow(values));
  }
  const chunk = Buffer.concat(frames);
  const starts: number[] = [];
  for (let p = 0; p < chunk.length; p += 1 + chunk.readInt32BE(p + 1)) starts.push(p);
  starts.push(chunk.length);
  const rows = new RowRewriter();
  return (i) => rows.rewrite(transform, columns, chunk, starts[i & 4095]!, starts[(i & 4095) + 1]!);
}

const statement = (text: string): Statement => ({ text, protocol: 'simple', name: '', decision: ALLOW });

/** "allow (no rule matched)" or "allow; matched audit.x:audit". */
function describeDecision(d: Decision): string {
  const matched = d.matches ?? [];
  return `${d.action}${d.ruleId ? ` by ${d.ruleId}` : ''}; ${matched.length === 0 ? 'no rule matched' : `matched ${matched.map((m) => `${m.id}:${m.action}`).join(', ')}`}`;
}

interface MicroSpec {
  readonly id: string;
  readonly title: string;
  readonly targetUs: number | null;
  readonly fn: (i: number) => unknown;
}

const fmtUs = (v: number): string => (v < 10 ? v.toFixed(3) : v < 100 ? v.toFixed(2) : v.toFixed(1));
const fmtOps = (v: number): string => Math.round(v).toLocaleString('en-US');

export const microSection: Section = {
  id: 'micro',
  title: 'Micro-benchmarks: per-statement work in-process (no servers)',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const errors: string[] = [];
    await loadPostgresParser();

    const policyFile = '/bench/bench-policy.yaml';
    const engine = new PolicyEngine([{ file: policyFile, policy: parsePolicyFile(benchPolicyYaml(), policyFile) }]);
    const stage = new PolicyStage(engine, { logger: pino({ level: 'silent' }), guardrailsFor });

    // pgbench -S texts: one shape, many literals (as the simple protocol sends them).
    const selects = Array.from({ length: 4096 }, (_, k) => pgbenchSelect(1 + ((k * 7919) % 1_000_000)));
    const cachedSession = benchSession(1);
    const first = stage.decide(cachedSession, statement(selects[0]!));
    if (first.action !== 'allow' || (first.matches ?? []).length > 0) errors.push(`the bench policy does not simply allow pgbench's SELECT: ${describeDecision(first)}`);
    const uncachedSession = benchSession(2);
    const joinDecision = stage.decide(uncachedSession, statement(joinStatement(0)));
    const joinLength = joinStatement(0).length;

    // Variant numbers for the join start high so they never meet the check above or each other.
    let variant = 1_000_000;
    const specs: MicroSpec[] = [
      { id: 'shape-key', title: '(a) statementKey(pgbench SELECT)', targetUs: null, fn: (i) => statementKey(selects[i & 4095]!) },
      { id: 'decide-cached', title: '(b) stage.decide, cached shape (pgbench SELECT, new literal)', targetUs: 5, fn: (i) => stage.decide(cachedSession, statement(selects[i & 4095]!)) },
      { id: 'decide-uncached', title: `(c) stage.decide, new shape (${joinLength}-char join): analysis + decision`, targetUs: 300, fn: () => stage.decide(uncachedSession, statement(joinStatement(variant++))) },
      { id: 'analyze', title: `(d) analyzePostgres(${joinLength}-char join)`, targetUs: null, fn: () => analyzePostgres(joinStatement(variant++)) },
      { id: 'normalize', title: `(e) libpg-query normalizeSync(${joinLength}-char join), reference`, targetUs: null, fn: () => normalizeSync(joinStatement(variant++)) },
      { id: 'mask-row-rebuilt', title: '(f) mask one DataRow, 3 of 4 text columns, redact plan (rebuilt in the arena)', targetUs: null, fn: maskRowBench('redact') },
      { id: 'mask-row-in-place', title: '(g) mask one DataRow, 3 of 4 text columns, partial plan (in place)', targetUs: null, fn: maskRowBench('partial') },
    ];

    const rows: MicroRow[] = [];
    for (const spec of specs) {
      ctx.progress(`micro: ${spec.title}`);
      try {
        const t = time(spec.fn);
        const verdict: Verdict | null = spec.targetUs === null ? null : t.medianUs < spec.targetUs ? 'PASS' : 'FAIL';
        rows.push({ id: spec.id, title: spec.title, iterations_per_round: t.iterations, rounds_us: t.roundsUs, us_per_op: t.medianUs, ops_per_sec: 1e6 / t.medianUs, target_us: spec.targetUs, verdict });
        ctx.progress(`    ${fmtUs(t.medianUs)} µs/op (rounds: ${t.roundsUs.map(fmtUs).join(', ')})`);
      } catch (err) {
        errors.push(`${spec.id}: ${(err as Error).message}`);
      }
    }

    const columns: Column[] = [
      { header: 'benchmark' },
      { header: 'calls/round', align: 'right' },
      { header: 'µs/op', align: 'right' },
      { header: 'ops/s', align: 'right' },
      { header: 'rounds min–max µs', align: 'right' },
      { header: 'target' },
      { header: 'verdict' },
    ];
    const tableRows = rows.map((r) => [
      r.title,
      r.iterations_per_round.toLocaleString('en-US'),
      fmtUs(r.us_per_op),
      fmtOps(r.ops_per_sec),
      `${fmtUs(Math.min(...r.rounds_us))}–${fmtUs(Math.max(...r.rounds_us))}`,
      r.target_us === null ? '-' : `< ${r.target_us} µs`,
      r.verdict ?? '-',
    ]);
    const notes = [
      `µs/op: median of ${ROUNDS} rounds (each ~${ROUND_MS} ms after a ${WARMUP_MS} ms warm-up) of the mean time per call, process.hrtime.bigint(); node ${process.version}, one thread.`,
      `policy: built-in guardrails (${engine.rules.length - BENCH_RULES.length} rules) + the ${BENCH_RULES.length}-rule bench policy (${engine.rules.length} rules evaluated per uncached decision); session: production connection with guardrails, identity user:bench (human, no groups), UTF8, standard_conforming_strings on.`,
      `decisions: pgbench SELECT -> ${describeDecision(first)}; join -> ${describeDecision(joinDecision)}.`,
      `(b) varies the literal (aid) over 4,096 texts of one shape: shape key + the session's decision cache. (c)-(e) vary the table aliases on every call, so each call is a new shape that misses the facts cache and the session's decision cache.`,
      `join: ${joinStatement(0)}`,
      `(f), (g): the masking benchmark's rows (id, email, phone, ssn) through the relay's RowRewriter with the masking stage's row transform; plans as in the masking section.`,
    ];
    return { table: { columns, rows: tableRows }, notes, rows, errors };
  },
};
