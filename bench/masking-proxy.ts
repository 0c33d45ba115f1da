/**
 * Masking on the wire: what a `mask` rule costs end to end, and that masked results stream.
 *
 * Two Gatehouse processes (`gatehouse serve`, one worker each, audit and statement log off) in
 * front of the same table, identical but for one policy rule: for the bench user it is
 * `action: mask` (email, phone, ssn) in one and `action: audit` (same condition, no effect on
 * rows) in the other, so both pay the same policy evaluation and only the row rewriting differs.
 *
 * 1. Latency: SELECT of all 10,000 rows x 4 columns (3 masked), simple protocol, text format, one
 *    pg client per target kept open, ROUNDS rounds whose order is rotated (each target takes each
 *    place in a round equally often); the median ms per target, and the ratio masked/unmasked
 *    taken within each round (queries milliseconds apart) with its median over the rounds and
 *    range (goal <= 1.25), as the throughput section does (bench/rounds.ts). Before each timed
 *    query this process collects its own garbage (npm run bench runs it with --expose-gc), so no
 *    query pays for the rows the previous ones left behind. PostgreSQL direct is timed alongside
 *    for reference.
 * 2. Streaming: psql through the masking proxy, output to /dev/null, 100,000, 1,000,000 and 2,000,000 rows
 *    (the table cross-joined with generate_series: every column keeps its table origin, so every
 *    row is masked), once with FETCH_COUNT=1000 (psql's cursor loop) and once as one query. The
 *    proxy's RSS is sampled from /proc every 20 ms; the peak growth over the RSS just before the
 *    stream must stay under 100 MB for 1M rows and must not grow with the row count (2M within
 *    25 MB of 1M), each the median of three streams.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startGatehouse, type StartedGatehouse } from './gatehouse.js';
import { runCommand } from './processes.js';
import { median, rotated, roundRatios, spread, type Spread } from './rounds.js';
import type { BenchContext, Section, SectionResult } from './section.js';
import type { Column } from './table.js';
import { BENCH_DATABASE, directTarget, libpqEnv, withClient, type PgEndpoint } from './targets.js';

const TABLE = 'gh_mask_people';
/**
 * V8's collector when this process runs with --expose-gc (npm run bench does). Parsing 10,000
 * rows leaves megabytes of garbage; collected inside whichever query came next, it moved one
 * query's time by up to 3x and, with fixed places in a round, one side's more than the other's.
 */
const collectGarbage = (globalThis as { gc?: () => void }).gc;
const ROWS = 10_000;
const ROUNDS = Number(process.env.BENCH_MASK_ROUNDS ?? 40);
const WARMUP = 3;
const RATIO_GOAL = 1.25;
const RSS_GOAL_MB = 100;
/**
 * How much more the 2M-row stream may take than the 1M one: a million more rows must not cost ~
 * their size. (Against 100k rows the test was unfair: a short stream does not fill V8's young
 * generation, a long one does, so 1M rows grew by 0-30 MB more than 100k whatever the code.)
 */
const RSS_SCALE_SLACK_MB = 25;
const SAMPLE_MS = 20;
/**
 * Streams per size and mode; the verdict takes the median peak growth. The peak includes garbage
 * V8 has not collected yet, and when the young generation fills up decides it: one 1M-row stream
 * grew by +0.1 MB in one run and +30 MB in another, the code unchanged.
 */
const STREAM_REPEATS = 3;

const SELECT_ALL = `SELECT id, email, phone, ssn FROM ${TABLE}`;
const streamSql = (copies: number): string => `SELECT p.id, p.email, p.phone, p.ssn FROM ${TABLE} p CROSS JOIN generate_series(1, ${copies}) g`;

/**
 * Two masking plans: `redact` gives every SSN one fixed-length value, so each row is rebuilt;
 * with `partial` every masked value keeps its length and is written over the frame in place.
 */
const PLANS = {
  rebuild: '{ email: email, phone: partial, national_id: redact }',
  inPlace: '{ email: email, phone: partial, national_id: { fn: partial, keep_last: 4 } }',
} as const;

const POLICY = (action: 'mask' | 'audit', plan: keyof typeof PLANS = 'rebuild'): string => `rules:
  - id: bench.mask-people
    when: identity.name == "bench"
    action: ${action}
${action === 'mask' ? `    mask: ${PLANS[plan]}\n` : ''}`;

const fmtMs = (v: number): string => v.toFixed(2);
const fmtRatio = (r: Spread): string => `${r.median.toFixed(3)} (${r.min.toFixed(2)}-${r.max.toFixed(2)})`;

/** The table: id + three text columns classified by name (email, phone, ssn). Rebuilt each run. */
async function prepareTable(progress: (msg: string) => void): Promise<void> {
  const direct = directTarget().endpoint;
  await withClient({ ...direct, database: 'postgres' }, async (c) => {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [BENCH_DATABASE]);
    if (r.rowCount === 0) {
      progress(`masking: creating database ${BENCH_DATABASE}`);
      await c.query(`CREATE DATABASE ${BENCH_DATABASE}`);
    }
  });
  await withClient(direct, async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await c.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, email text NOT NULL, phone text NOT NULL, ssn text NOT NULL)`);
    await c.query(
      `INSERT INTO ${TABLE} SELECT g, 'user' || g || '@example.com', '+1 415-555-' || lpad((g % 10000)::text, 4, '0'), lpad((g % 900)::text, 3, '1') || '-' || lpad((g % 100)::text, 2, '1') || '-' || lpad(g::text, 4, '0') FROM generate_series(1, ${ROWS}) g`,
    );
    await c.query(`ANALYZE ${TABLE}`);
  });
}

/** The pid of the `gatehouse serve` process started with this config file (one worker: it serves). */
/**
 * CPU time of a process's main thread, in ms, from /proc/<pid>/task/<pid>/schedstat (ns
 * resolution; the event loop is where masking runs). Unlike wall-clock time it does not move
 * with the other processes of a busy machine.
 */
function mainThreadCpuMs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

function gatehousePid(configFile: string): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes('serve') && cmd.includes(configFile)) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no gatehouse process found for ${configFile}`);
}

/** Resident set size in bytes (VmRSS), or NaN once the process is gone. */
function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function connect(e: PgEndpoint): Promise<pg.Client> {
  const c = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database, connectionTimeoutMillis: 5_000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function timeSelect(c: pg.Client): Promise<{ ms: number; rows: pg.QueryResult }> {
  const t0 = process.hrtime.bigint();
  const rows = await c.query(SELECT_ALL);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, rows };
}

interface StreamRow {
  readonly mode: string;
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_sec: number;
  readonly rss_before_mb: number;
  readonly rss_peak_growth_mb: number;
}

async function stream(ctx: BenchContext, masked: StartedGatehouse, pid: number, copies: number, fetchCount: boolean): Promise<StreamRow> {
  const env = { ...libpqEnv(masked.target.endpoint), ...(fetchCount ? { FETCH_COUNT: '1000' } : {}) };
  // Let the previous stream's garbage go before the baseline.
  await new Promise((r) => setTimeout(r, 500));
  const before = rssOf(pid);
  let peak = before;
  const timer = setInterval(() => {
    const v = rssOf(pid);
    if (v > peak) peak = v;
  }, SAMPLE_MS);
  const e = masked.target.endpoint;
  const t0 = process.hrtime.bigint();
  // -A -t: unaligned tuples only, so psql does no column-width pass of its own.
  const r = await runCommand(ctx.registry, 'psql', 'psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', e.host, '-p', String(e.port), '-U', e.user, '-d', e.database, '-o', '/dev/null', '-c', streamSql(copies)], { env });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  const after = rssOf(pid);
  if (after > peak) peak = after;
  if (r.code !== 0) throw new Error(`psql stream of ${copies * ROWS} rows failed (exit ${r.code}): ${r.stderr.trim()}`);
  const rows = copies * ROWS;
  return { mode: fetchCount ? 'psql FETCH_COUNT=1000 (cursor)' : 'psql, one query', rows, seconds, rows_per_sec: rows / seconds, rss_before_mb: before / (1 << 20), rss_peak_growth_mb: (peak - before) / (1 << 20) };
}

export const maskingSection: Section = {
  id: 'masking',
  title: 'Masking on the wire: SELECT of 10,000 rows masked vs unmasked, and RSS while streaming 1,000,000 masked rows',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const errors: string[] = [];
    const rows: object[] = [];
    await prepareTable(ctx.progress);
    const policyMask = join(ctx.dir, 'masking-policy-mask.yaml');
    const policyAudit = join(ctx.dir, 'masking-policy-audit.yaml');
    writeFileSync(policyMask, POLICY('mask'));
    const policyInPlace = join(ctx.dir, 'masking-policy-in-place.yaml');
    writeFileSync(policyInPlace, POLICY('mask', 'inPlace'));
    writeFileSync(policyAudit, POLICY('audit'));
    const common = { workers: 1, logStatements: false, logLevel: 'warn', upstream: ctx.settings.upstream, guardrails: true, audit: false } as const;
    ctx.progress('masking: starting three Gatehouse processes (mask rule with the redact plan, with the partial plan; audit rule)');
    const masked = await startGatehouse(ctx.registry, join(ctx.dir, 'gatehouse-masked'), { ...common, id: 'gatehouse+mask', policyFiles: [policyMask] });
    const inPlace = await startGatehouse(ctx.registry, join(ctx.dir, 'gatehouse-masked-in-place'), { ...common, id: 'gatehouse+mask-in-place', policyFiles: [policyInPlace] });
    const plain = await startGatehouse(ctx.registry, join(ctx.dir, 'gatehouse-unmasked'), { ...common, id: 'gatehouse', policyFiles: [policyAudit] });
    const pid = gatehousePid(masked.configFile);

    const targets = [
      { id: 'masked', client: await connect(masked.target.endpoint), ms: [] as number[] },
      { id: 'unmasked', client: await connect(plain.target.endpoint), ms: [] as number[] },
      { id: 'direct', client: await connect(directTarget().endpoint), ms: [] as number[] },
      { id: 'masked-in-place', client: await connect(inPlace.target.endpoint), ms: [] as number[] },
    ];
    let inPlaceRatio: Spread | null = null;
    let latency: { masked: number; unmasked: number; direct: number; ratio: Spread } | null = null;
    // Main-thread CPU ms per SELECT of each proxy (masked, unmasked, masked in place).
    const cpuPids = [pid, gatehousePid(plain.configFile), gatehousePid(inPlace.configFile)];
    let cpu: number[] | null = null;
    try {
      // Sanity: the masked target masks, the others do not.
      const m = await targets[0]!.client.query(`${SELECT_ALL} WHERE id = 1`);
      const u = await targets[1]!.client.query(`${SELECT_ALL} WHERE id = 1`);
      if (m.rows[0]?.email !== 'u****@example.com' || m.rows[0]?.ssn !== '********') errors.push(`masking: the masked target returned ${JSON.stringify(m.rows[0])}`);
      if (u.rows[0]?.email !== 'user1@example.com') errors.push(`masking: the unmasked target returned ${JSON.stringify(u.rows[0])}`);
      for (let i = 0; i < WARMUP; i++) for (const t of targets) await timeSelect(t.client);
      ctx.progress(`masking: ${ROUNDS} rounds of SELECT ${ROWS.toLocaleString('en-US')} rows, rotated order`);
      const cpu0 = cpuPids.map(mainThreadCpuMs);
      for (let r = 0; r < ROUNDS; r++) {
        // Rotated so drift on the machine, and whatever a place in the round brings, hits every target alike.
        for (const i of rotated([0, 1, 3, 2], r)) {
          const t = targets[i]!;
          collectGarbage?.();
          const { ms, rows: res } = await timeSelect(t.client);
          if (res.rowCount !== ROWS) errors.push(`masking: ${t.id} returned ${res.rowCount} rows`);
          t.ms.push(ms);
        }
      }
      cpu = cpuPids.map((p, i) => (mainThreadCpuMs(p) - cpu0[i]!) / ROUNDS);
      rows.push({ kind: 'proxy-cpu', rounds: ROUNDS, masked_ms: cpu[0], unmasked_ms: cpu[1], in_place_ms: cpu[2] });
      const [mm, um, dm] = targets.map((t) => median(t.ms)) as [number, number, number];
      // Ratios within each round: the two queries ran milliseconds apart, under the same load.
      const ratio = spread(roundRatios(targets[0]!.ms, targets[1]!.ms))!;
      inPlaceRatio = spread(roundRatios(targets[3]!.ms, targets[1]!.ms))!;
      latency = { masked: mm, unmasked: um, direct: dm, ratio };
      rows.push({ kind: 'select-in-place', rows: ROWS, rounds: ROUNDS, masked_ms: targets[3]!.ms, median_masked_ms: median(targets[3]!.ms), ratio: inPlaceRatio.median, ratio_min: inPlaceRatio.min, ratio_max: inPlaceRatio.max });
      rows.push({ kind: 'select', rows: ROWS, rounds: ROUNDS, masked_ms: targets[0]!.ms, unmasked_ms: targets[1]!.ms, direct_ms: targets[2]!.ms, median_masked_ms: mm, median_unmasked_ms: um, median_direct_ms: dm, ratio: ratio.median, ratio_min: ratio.min, ratio_max: ratio.max });
      ctx.progress(`    median masked ${fmtMs(mm)} ms, unmasked ${fmtMs(um)} ms, direct ${fmtMs(dm)} ms; ratio ${fmtRatio(ratio)}`);
    } catch (err) {
      errors.push(`masking: latency: ${(err as Error).message}`);
    } finally {
      for (const t of targets) await t.client.end().catch(() => undefined);
    }

    // Sanity: the streamed rows are masked (every column keeps its table origin through the join and the cursor).
    const e = masked.target.endpoint;
    const probe = await runCommand(ctx.registry, 'psql', 'psql', ['-X', '-A', '-t', '-h', e.host, '-p', String(e.port), '-U', e.user, '-d', e.database, '-c', `${streamSql(2)} WHERE p.id = 1`], {
      env: { ...libpqEnv(e), FETCH_COUNT: '1000' },
    });
    if (probe.stdout !== '1|u****@example.com|*************01|********\n'.repeat(2)) errors.push(`masking: the streamed rows are not masked as expected: ${JSON.stringify(probe.stdout)} ${probe.stderr.trim()}`);

    /** Per mode and size: the median stream (by peak growth), and the range of the growths. */
    const streams: Array<StreamRow & { growth: Spread }> = [];
    for (const fetchCount of [true, false]) {
      for (const copies of [10, 100, 200]) {
        ctx.progress(`masking: streaming ${(copies * ROWS).toLocaleString('en-US')} masked rows (${fetchCount ? 'FETCH_COUNT=1000' : 'one query'}), ${STREAM_REPEATS} times`);
        try {
          const runs: StreamRow[] = [];
          for (let i = 0; i < STREAM_REPEATS; i++) {
            const s = await stream(ctx, masked, pid, copies, fetchCount);
            runs.push(s);
            rows.push({ kind: 'stream', ...s });
            ctx.progress(`    ${s.seconds.toFixed(2)} s, ${Math.round(s.rows_per_sec).toLocaleString('en-US')} rows/s, RSS ${s.rss_before_mb.toFixed(1)} MB + peak ${s.rss_peak_growth_mb.toFixed(1)} MB`);
          }
          const byGrowth = [...runs].sort((a, b) => a.rss_peak_growth_mb - b.rss_peak_growth_mb);
          streams.push({ ...byGrowth[(byGrowth.length - 1) >> 1]!, growth: spread(runs.map((r) => r.rss_peak_growth_mb))! });
        } catch (err) {
          errors.push(`masking: ${(err as Error).message}`);
        }
      }
    }

    const columns: Column[] = [{ header: 'measurement' }, { header: 'rows', align: 'right' }, { header: 'masked', align: 'right' }, { header: 'unmasked', align: 'right' }, { header: 'direct', align: 'right' }, { header: 'ratio', align: 'right' }];
    const tableRows: string[][] = [];
    if (latency !== null) tableRows.push([`SELECT all rows, redact plan (rows rebuilt), median of ${ROUNDS} (ms)`, ROWS.toLocaleString('en-US'), fmtMs(latency.masked), fmtMs(latency.unmasked), fmtMs(latency.direct), fmtRatio(latency.ratio)]);
    if (latency !== null && inPlaceRatio !== null) tableRows.push([`SELECT all rows, partial plan (in place), median of ${ROUNDS} (ms)`, ROWS.toLocaleString('en-US'), fmtMs(median(targets[3]!.ms)), fmtMs(latency.unmasked), fmtMs(latency.direct), fmtRatio(inPlaceRatio)]);
    if (cpu !== null) {
      tableRows.push([`proxy main-thread CPU per SELECT, redact plan (ms)`, ROWS.toLocaleString('en-US'), fmtMs(cpu[0]!), fmtMs(cpu[1]!), '-', (cpu[0]! / cpu[1]!).toFixed(3)]);
      tableRows.push([`proxy main-thread CPU per SELECT, partial plan (ms)`, ROWS.toLocaleString('en-US'), fmtMs(cpu[2]!), fmtMs(cpu[1]!), '-', (cpu[2]! / cpu[1]!).toFixed(3)]);
    }
    for (const s of streams) tableRows.push([`${s.mode}: s / RSS growth (MB), median of ${STREAM_REPEATS}`, s.rows.toLocaleString('en-US'), `${s.seconds.toFixed(2)} s / +${s.rss_peak_growth_mb.toFixed(1)} (${s.growth.min.toFixed(1)}-${s.growth.max.toFixed(1)})`, '-', '-', '-']);
    const notes: string[] = [];
    if (latency !== null) notes.push(`goal: masked/unmasked <= ${RATIO_GOAL} for a SELECT of ${ROWS.toLocaleString('en-US')} rows with 3 masked text columns: redact plan ${latency.ratio.median <= RATIO_GOAL ? 'PASS' : 'FAIL'} (${fmtRatio(latency.ratio)}); partial plan ${inPlaceRatio !== null && inPlaceRatio.median <= RATIO_GOAL ? 'PASS' : 'FAIL'} (${inPlaceRatio === null ? '-' : fmtRatio(inPlaceRatio)}); each the median over the rounds of the ratio within a round, with its range. Plans: redact ${PLANS.rebuild}; partial ${PLANS.inPlace}.`);
    for (const mode of new Set(streams.map((s) => s.mode))) {
      const big = streams.find((s) => s.mode === mode && s.rows === 100 * ROWS);
      const bigger = streams.find((s) => s.mode === mode && s.rows === 200 * ROWS);
      if (big === undefined || bigger === undefined) continue;
      const ok = big.rss_peak_growth_mb < RSS_GOAL_MB && bigger.rss_peak_growth_mb <= big.rss_peak_growth_mb + RSS_SCALE_SLACK_MB;
      notes.push(
        `goal: ${mode}: proxy RSS growth < ${RSS_GOAL_MB} MB for 1,000,000 rows and not scaling with rows (2,000,000 rows within ${RSS_SCALE_SLACK_MB} MB of 1,000,000): ${ok ? 'PASS' : 'FAIL'} (+${big.rss_peak_growth_mb.toFixed(1)} MB, +${bigger.rss_peak_growth_mb.toFixed(1)} MB for 2,000,000).`,
      );
    }
    notes.push(
      `targets: three gatehouse serve processes, --workers 1, audit off, log.statements off, guardrails on, upstream ${ctx.settings.upstream}; the same rule "identity.name == bench" is action mask in two (the redact and partial plans) and action audit in the third. Client: node-postgres, simple protocol, text format, in this process (its parse time is in every figure); ${collectGarbage !== undefined ? 'its garbage collected before each timed query' : 'its garbage NOT collected before each query (run with node --expose-gc, as npm run bench does): ratios are noisier'}; the order of the four queries rotated each round. Direct: PostgreSQL over tcp, for reference.`,
      `streams: psql -A -t -o /dev/null through the masking proxy, ${STREAM_REPEATS} times per size and mode; RSS of the proxy process (VmRSS) sampled every ${SAMPLE_MS} ms; growth = peak minus the RSS 0.5 s after the previous stream (it includes V8 garbage not yet collected); the verdicts take the median growth. Every run's ms and growth are in results.json.`,
    );
    return { table: { columns, rows: tableRows }, notes, rows, errors };
  },
};
