/**
 * The retention job (`audit.retention.keep`): deletes each writer's old events by whole signed
 * stretches, so the rest of the chain stays verifiable.
 *
 * Per writer it picks the highest checkpoint C that is below the writer's last event and whose
 * event C is older than now - keep, deletes events 1..C (and the checkpoints before C; the one at
 * C stays and anchors the remaining chain: event C+1 chains from its hash), and records an
 * `audit.retention` event {node, through_seq: C, deleted, cutoff}. `gatehouse audit verify`
 * accepts a head that starts after 1 only with both the checkpoint at first-1 and that recorded
 * event. So the job never deletes a writer's last event (C is below it) nor events that no
 * checkpoint covers.
 *
 * The retention events themselves live in some writer's chain and age like any other event. When
 * a run is about to delete the only surviving record of another writer's current cut (a writer
 * that stopped, so it is never cut again), it records that cut again first ("carried": true).
 */
import type { Logger } from 'pino';
import type { AuditStore } from '../store/audit.js';
import type { EventInput } from './event.js';

export interface RetentionOptions {
  /** Events older than this are deleted (by whole signed stretches). */
  readonly keepMs: number;
  /** Time between runs. */
  readonly intervalMs: number;
  /** Records the job's `audit.retention` events (the node's audit writer). */
  readonly record: (e: EventInput) => void;
  readonly logger: Logger;
  /** Clock (tests). */
  readonly now?: () => number;
  /** Delay before the first run. */
  readonly firstRunDelayMs?: number;
}

/** What one run deleted from one writer. */
export interface RetentionResult {
  readonly node: string;
  /** Events 1..through_seq are gone; the checkpoint at through_seq anchors the rest. */
  readonly through_seq: number;
  readonly deleted: number;
  /** Epoch milliseconds: events at or after this were kept. */
  readonly cutoff: number;
}

export interface RetentionJob {
  /** Run once now (tests, CLI); resolves with what was deleted. Runs never overlap. */
  runOnce(): Promise<RetentionResult[]>;
  /** Stop the timer (a run in progress finishes). */
  stop(): void;
}

const DEFAULT_FIRST_RUN_DELAY_MS = 5000;
/** Most retention events examined when looking for cuts to carry forward. */
const MAX_RETENTION_EVENTS = 100_000;

interface RecordedCut {
  /** Writer whose chain holds the retention event; null for one recorded in this run. */
  readonly holder: string | null;
  readonly seq: number;
}

export function startRetention(store: AuditStore, opts: RetentionOptions): RetentionJob {
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  let running: Promise<RetentionResult[]> | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const runOnce = (): Promise<RetentionResult[]> => {
    running ??= run(store, opts, now()).finally(() => (running = null));
    return running;
  };

  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      runOnce()
        .then((results) => {
          for (const r of results) log.info({ event: 'audit_retention', ...r }, `audit retention deleted ${r.deleted} event(s) of writer ${r.node} through seq ${r.through_seq}`);
        })
        .catch((err: Error) => log.warn({ event: 'audit_retention_failed', reason: err.message }, `audit retention failed: ${err.message}; retrying at the next run`))
        .finally(() => schedule(opts.intervalMs));
    }, ms);
    timer.unref();
  };
  schedule(opts.firstRunDelayMs ?? Math.min(DEFAULT_FIRST_RUN_DELAY_MS, opts.intervalMs));

  return {
    runOnce,
    stop: () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

async function run(store: AuditStore, opts: RetentionOptions, now: number): Promise<RetentionResult[]> {
  const cutoff = now - opts.keepMs;
  const results: RetentionResult[] = [];
  const nodes = await store.nodes();
  const cuts = await recordedCuts(store);
  /** Each writer's first stored seq, and the current anchor (first - 1) of writers whose head was cut. */
  const firsts = new Map<string, number>();
  const anchors = new Map<string, number>();
  for (const node of nodes) {
    const first = (await store.range(node, 0, 1))[0]?.seq;
    if (first === undefined) continue;
    firsts.set(node, first);
    if (first > 1) anchors.set(node, first - 1);
  }

  for (const node of nodes) {
    const head = await store.head(node);
    const first = firsts.get(node);
    if (head === null || first === undefined) continue;
    const through = await choose(store, node, first, head.seq, cutoff);
    if (through === null) continue;

    // Before the stretch goes, re-record other writers' cuts whose only record is inside it.
    for (const [key, records] of cuts) {
      const sep = key.lastIndexOf(':');
      const other = key.slice(0, sep);
      const seq = Number(key.slice(sep + 1));
      if (other === node || anchors.get(other) !== seq) continue;
      if (records.some((r) => r.holder !== node || r.seq > through)) continue;
      opts.record({ type: 'audit.retention', detail: { node: other, through_seq: seq, carried: true, cutoff } });
      records.push({ holder: null, seq: 0 });
    }

    const deleted = await store.deleteThrough(node, through);
    opts.record({ type: 'audit.retention', detail: { node, through_seq: through, deleted, cutoff } });
    anchors.set(node, through);
    const key = `${node}:${through}`;
    cuts.set(key, [...(cuts.get(key) ?? []), { holder: null, seq: 0 }]);
    for (const records of cuts.values()) {
      // Records inside the deleted stretch are gone.
      for (let i = records.length - 1; i >= 0; i--) if (records[i]!.holder === node && records[i]!.seq <= through) records.splice(i, 1);
    }
    results.push({ node, through_seq: through, deleted, cutoff });
  }
  return results;
}

/**
 * The highest checkpoint C with first <= C < last whose event C is older than the cutoff, or null.
 * Event timestamps rise with seq (one writer, one clock), so this is a binary search over the
 * checkpoints; the chosen event's timestamp is always checked.
 */
async function choose(store: AuditStore, node: string, first: number, last: number, cutoff: number): Promise<number | null> {
  const seqs = (await store.checkpoints(node)).map((c) => c.seq).filter((s) => s >= first && s < last);
  const tsAt = async (seq: number): Promise<number | null> => {
    const e = (await store.range(node, seq - 1, 1))[0];
    return e !== undefined && e.seq === seq ? e.ts : null;
  };
  let lo = 0;
  let hi = seqs.length - 1;
  let found: number | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const ts = await tsAt(seqs[mid]!);
    if (ts !== null && ts < cutoff) {
      found = seqs[mid]!;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** Every recorded cut still in the store: "node:through_seq" -> where it is recorded. */
async function recordedCuts(store: AuditStore): Promise<Map<string, RecordedCut[]>> {
  const cuts = new Map<string, RecordedCut[]>();
  for (const e of await store.search({ type: 'audit.retention' }, MAX_RETENTION_EVENTS, 'asc')) {
    let detail: { node?: unknown; through_seq?: unknown } | undefined;
    try {
      detail = (JSON.parse(e.body) as { detail?: { node?: unknown; through_seq?: unknown } }).detail;
    } catch {
      continue;
    }
    if (typeof detail?.node !== 'string' || typeof detail.through_seq !== 'number') continue;
    const key = `${detail.node}:${detail.through_seq}`;
    cuts.set(key, [...(cuts.get(key) ?? []), { holder: e.node, seq: e.seq }]);
  }
  return cuts;
}
