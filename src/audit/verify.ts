/**
 * `gatehouse audit verify`: recompute every writer's chain from the stored (or exported) events,
 * check every checkpoint's signature and hash, and name the first broken sequence number.
 *
 * What is detected, per writer:
 *   - a modified event: its body no longer hashes to its stored hash, or is not canonical, or its
 *     indexed columns disagree with its body;
 *   - a deleted event: a gap in the sequence;
 *   - an inserted or reordered event: the sequence or the chain breaks at that point;
 *   - a rewritten stretch with recomputed hashes: the next signed checkpoint no longer matches;
 *   - a cut tail: a checkpoint covers events that are gone;
 *   - a cut head: the first event is not seq 1 and no signed checkpoint plus recorded retention
 *     run explains it.
 * Events after the last checkpoint are chained but not yet signed: reported as the unsigned tail
 * (a failure with `requireSignedTail`).
 */
import type { KeyObject } from 'node:crypto';
import type { StoredEvent } from '../store/audit.js';
import { chainHash, checkCheckpoint, GENESIS, type Checkpoint } from './chain.js';
import { canonicalJson, eventColumns, type AuditEvent } from './event.js';

/** Where verify reads from: the store, or an export file. */
export interface VerifySource {
  nodes(): Promise<string[]>;
  range(node: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  checkpoints(node: string): Promise<Checkpoint[]>;
}

export interface Problem {
  readonly node: string;
  /** The first broken sequence number. */
  readonly seq: number;
  readonly reason: string;
}

export interface WriterReport {
  readonly node: string;
  first: number;
  last: number;
  events: number;
  checkpoints: number;
  /** Highest seq covered by a valid checkpoint (0 if none). */
  signedThrough: number;
  /** Events after the last checkpoint. */
  unsignedTail: number;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly writers: WriterReport[];
  readonly problems: Problem[];
}

const PAGE = 5000;
const COLUMNS = ['node', 'seq', 'ts', 'type', 'session', 'identity', 'on_behalf_of', 'connection', 'environment', 'kind', 'tables', 'decision'] as const;

/** Verify every writer. `keys` maps key ids to trusted public keys. */
export async function verifyAudit(source: VerifySource, keys: ReadonlyMap<string, KeyObject>, opts: { requireSignedTail?: boolean } = {}): Promise<VerifyResult> {
  const writers: WriterReport[] = [];
  const problems: Problem[] = [];
  /** Retention runs recorded in the chains: "node:through_seq". */
  const retentions = new Set<string>();
  /** Heads that must be explained by a retention run: node -> anchor seq. */
  const anchors = new Map<string, number>();

  for (const node of await source.nodes()) {
    const report: WriterReport = { node, first: 0, last: 0, events: 0, checkpoints: 0, signedThrough: 0, unsignedTail: 0 };
    writers.push(report);
    const problem = await verifyWriter(source, node, keys, report, retentions, anchors);
    if (problem !== null) problems.push(problem);
    else if (opts.requireSignedTail && report.unsignedTail > 0) {
      problems.push({ node, seq: report.signedThrough + 1, reason: `${report.unsignedTail} event(s) after the last checkpoint are not signed (seq ${report.signedThrough + 1}..${report.last})` });
    }
  }
  for (const [node, seq] of anchors) {
    if (!retentions.has(`${node}:${seq}`)) {
      problems.push({ node, seq: 1, reason: `events 1..${seq} are missing and no recorded retention run deleted them` });
    }
  }
  return { ok: problems.length === 0, writers, problems };
}

async function verifyWriter(
  source: VerifySource,
  node: string,
  keys: ReadonlyMap<string, KeyObject>,
  report: WriterReport,
  retentions: Set<string>,
  anchors: Map<string, number>,
): Promise<Problem | null> {
  const fail = (seq: number, reason: string): Problem => ({ node, seq, reason });
  const checkpoints = await source.checkpoints(node);
  report.checkpoints = checkpoints.length;
  for (const c of checkpoints) {
    const key = keys.get(c.key_id);
    if (key === undefined) return fail(c.seq, `the checkpoint at seq ${c.seq} is signed by key ${c.key_id}, which is not a trusted public key`);
    if (!checkCheckpoint(c, key)) return fail(c.seq, `the signature of the checkpoint at seq ${c.seq} is not valid (the checkpoint was modified)`);
  }
  const bySeq = new Map(checkpoints.map((c) => [c.seq, c]));

  let prev = GENESIS;
  let expected = 1;
  let lastSigned = 0;
  let afterSeq = 0;
  let firstPage = true;
  for (;;) {
    const rows = await source.range(node, afterSeq, PAGE);
    if (rows.length === 0) break;
    if (firstPage) {
      firstPage = false;
      const first = rows[0]!.seq;
      report.first = first;
      if (first > 1) {
        // The head was deleted: legitimately only by retention, which keeps the checkpoint there.
        const anchor = bySeq.get(first - 1);
        if (anchor === undefined) return fail(1, `events 1..${first - 1} are missing (no signed checkpoint at seq ${first - 1} anchors the rest of the chain)`);
        anchors.set(node, first - 1);
        prev = anchor.hash;
        expected = first;
        lastSigned = first - 1;
      }
    }
    for (const row of rows) {
      if (row.seq !== expected) {
        if (row.seq > expected) return fail(expected, row.seq === expected + 1 ? `event ${expected} is missing (deleted)` : `events ${expected}..${row.seq - 1} are missing (deleted)`);
        return fail(row.seq, `event ${row.seq} appears twice or out of order`);
      }
      let event: AuditEvent;
      let cols: Record<string, unknown>;
      try {
        event = JSON.parse(row.body) as AuditEvent;
        if (event === null || typeof event !== 'object' || Array.isArray(event)) return fail(row.seq, `event ${row.seq} is not an audit event (modified)`);
        if (canonicalJson(event) !== row.body) return fail(row.seq, `event ${row.seq} is not in canonical form (modified)`);
        cols = eventColumns(event) as unknown as Record<string, unknown>;
      } catch {
        return fail(row.seq, `event ${row.seq} is not a valid audit event (modified)`);
      }
      if (event.seq !== row.seq || event.node !== node) return fail(row.seq, `event ${row.seq} claims to be ${event.node}#${event.seq} (moved or inserted)`);
      const stored = row as unknown as Record<string, unknown>;
      for (const c of COLUMNS) {
        if (cols[c] !== stored[c]) return fail(row.seq, `event ${row.seq}: stored ${c} "${String(stored[c])}" differs from the signed event's "${String(cols[c])}" (modified)`);
      }
      const hex = chainHash(prev, row.body);
      if (hex !== row.hash) return fail(row.seq, `event ${row.seq} does not match its chain hash (modified, inserted or reordered)`);
      const cp = bySeq.get(row.seq);
      if (cp !== undefined && cp.hash !== hex) {
        return fail(lastSigned + 1, `events ${lastSigned + 1}..${row.seq} do not match the signed checkpoint at seq ${row.seq} (rewritten with recomputed hashes)`);
      }
      if (cp !== undefined) lastSigned = row.seq;
      if (event.type === 'audit.retention') {
        const d = event.detail as { node?: unknown; through_seq?: unknown } | undefined;
        if (typeof d?.node === 'string' && typeof d.through_seq === 'number') retentions.add(`${d.node}:${d.through_seq}`);
      }
      prev = hex;
      expected++;
      report.events++;
      report.last = row.seq;
    }
    afterSeq = rows[rows.length - 1]!.seq;
  }
  const lastCheckpoint = checkpoints[checkpoints.length - 1];
  if (lastCheckpoint !== undefined && lastCheckpoint.seq > report.last) {
    return fail(report.last + 1, `events ${report.last + 1}..${lastCheckpoint.seq} were cut (the checkpoint at seq ${lastCheckpoint.seq} covers them)`);
  }
  report.signedThrough = lastSigned;
  report.unsignedTail = report.last - lastSigned;
  return null;
}
