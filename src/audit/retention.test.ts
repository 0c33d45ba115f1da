/**
 * The retention job against a real SQLite store: it deletes a writer's events through the highest
 * old-enough checkpoint below its last event, records the run, and the trail still verifies; it
 * never deletes a writer's last event or events no checkpoint covers; and it keeps the record of
 * another writer's cut alive when that record itself ages out.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import type { AuditStore } from '../store/audit.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { chainHash, GENESIS, keyId, type SigningKey } from './chain.js';
import { recordDirect } from './direct.js';
import { canonicalJson, eventColumns, type AuditEvent, type EventInput } from './event.js';
import { startRetention, type RetentionJob } from './retention.js';
import { verifyAudit } from './verify.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const KEY: SigningKey = { privateKey, publicKey, keyId: keyId(publicKey) };
const KEYS = new Map([[KEY.keyId, KEY.publicKey]]);

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 0, 31, 12);

const events = (n: number, ts: number, tag = 'x'): EventInput[] => Array.from({ length: n }, (_, i) => ({ type: 'statement', ts: ts + i, detail: { tag, i } }));

/** Append chained events with no checkpoint (an unsigned tail, as between a writer's checkpoints). */
async function appendUnsigned(store: AuditStore, node: string, inputs: readonly EventInput[]): Promise<void> {
  await store.appendAtHead(node, (head) => {
    let seq = head?.seq ?? 0;
    let prev = head ? head.hash : GENESIS;
    const rows: unknown[] = [];
    const hashes: string[] = [];
    for (const input of inputs) {
      const event = { ...input, seq: ++seq, ts: input.ts!, node } as AuditEvent;
      const body = canonicalJson(event);
      const c = eventColumns(event);
      rows.push(c.node, c.seq, c.ts, c.type, c.session, c.identity, c.on_behalf_of, c.connection, c.environment, c.kind, c.tables, c.decision, body);
      prev = chainHash(prev, body);
      hashes.push(prev);
    }
    return { batch: { rows, count: inputs.length, hashes }, checkpoints: [] };
  });
}

const seqs = async (store: AuditStore, node: string): Promise<number[]> => (await store.range(node, 0, 100_000)).map((e) => e.seq);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('audit retention', () => {
  let dir: string;
  let store: SqliteStore;
  let job: RetentionJob | undefined;
  /** Events the job asked to record, as the proxy's writer would get them. */
  let recorded: EventInput[];
  let now: number;

  const start = (keepMs: number): RetentionJob =>
    (job = startRetention(store.audit, { keepMs, intervalMs: 3_600_000, firstRunDelayMs: 3_600_000, record: (e) => void recorded.push(e), logger: pino({ level: 'silent' }), now: () => now }));
  /** Commit what the job recorded as writer `node` (what the proxy's audit writer does). */
  const commitRecorded = async (node = 'proxy'): Promise<void> => {
    if (recorded.length > 0) await recordDirect(store.audit, node, KEY, recorded.splice(0), now);
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-retention-'));
    store = new SqliteStore(join(dir, 'gatehouse.db'));
    recorded = [];
    now = NOW;
  });
  afterEach(async () => {
    job?.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deletes through the highest old checkpoint below the last event, records the run, and the trail still verifies', async () => {
    await recordDirect(store.audit, 'n1', KEY, events(10, NOW - 10 * DAY)); // checkpoint at 10
    await recordDirect(store.audit, 'n1', KEY, events(10, NOW - 5 * DAY)); // checkpoint at 20
    await recordDirect(store.audit, 'n1', KEY, events(5, NOW - 3_600_000)); // checkpoint at 25 (the last event)
    assert.equal((await verifyAudit(store.audit, KEYS)).ok, true);

    const results = await start(3 * DAY).runOnce();
    assert.deepEqual(results, [{ node: 'n1', through_seq: 20, deleted: 20, cutoff: NOW - 3 * DAY }]);
    assert.deepEqual(await seqs(store.audit, 'n1'), range(21, 25));
    assert.deepEqual(
      (await store.audit.checkpoints('n1')).map((c) => c.seq),
      [20, 25],
      'the checkpoint at 20 stays as the anchor',
    );
    assert.deepEqual(recorded, [{ type: 'audit.retention', detail: { node: 'n1', through_seq: 20, deleted: 20, cutoff: NOW - 3 * DAY } }]);

    // Until the run is recorded, the cut head is unexplained; once recorded, everything verifies.
    const before = await verifyAudit(store.audit, KEYS);
    assert.equal(before.ok, false);
    assert.match(before.problems[0]!.reason, /no recorded retention run/);
    await commitRecorded();
    const after = await verifyAudit(store.audit, KEYS);
    assert.deepEqual(after.problems, []);
    assert.equal(after.writers.find((w) => w.node === 'n1')!.first, 21);

    // A second run finds nothing more to delete.
    assert.deepEqual(await job!.runOnce(), []);
  });

  it('deletes nothing when every old checkpoint is at the last event, or none is old enough', async () => {
    await recordDirect(store.audit, 'only-last', KEY, events(10, NOW - 30 * DAY)); // old, but its checkpoint is its last event
    await recordDirect(store.audit, 'young', KEY, events(5, NOW - DAY));
    await recordDirect(store.audit, 'young', KEY, events(5, NOW - 3_600_000));
    assert.deepEqual(await start(7 * DAY).runOnce(), []);
    assert.deepEqual(await seqs(store.audit, 'only-last'), range(1, 10));
    assert.deepEqual(await seqs(store.audit, 'young'), range(1, 10));
    assert.deepEqual(recorded, []);
  });

  it('never deletes events after the last checkpoint below the head, however old', async () => {
    await recordDirect(store.audit, 'n2', KEY, events(10, NOW - 40 * DAY)); // checkpoint at 10
    await appendUnsigned(store.audit, 'n2', events(10, NOW - 30 * DAY)); // 11..20, not signed
    const results = await start(DAY).runOnce();
    assert.deepEqual(results.map((r) => [r.node, r.through_seq, r.deleted]), [['n2', 10, 10]]);
    assert.deepEqual(await seqs(store.audit, 'n2'), range(11, 20), 'the old but unsigned events stay');
    await commitRecorded();
    const v = await verifyAudit(store.audit, KEYS);
    assert.deepEqual(v.problems, []);
  });

  it('re-records another writer\'s cut before deleting the only record of it, so that writer still verifies', async () => {
    // A writer that stopped long ago: cut once, never again.
    await recordDirect(store.audit, 'old-node', KEY, events(10, NOW - 60 * DAY));
    await recordDirect(store.audit, 'old-node', KEY, events(1, NOW - 59 * DAY));
    start(30 * DAY);
    assert.deepEqual((await job!.runOnce()).map((r) => [r.node, r.through_seq]), [['old-node', 10]]);
    await commitRecorded(); // proxy#1 records the cut of old-node
    await recordDirect(store.audit, 'proxy', KEY, events(3, NOW + 1000)); // the proxy goes on: checkpoint at 4
    assert.deepEqual((await verifyAudit(store.audit, KEYS)).problems, []);

    // Forty days later the proxy's own early events age out, and with them that record.
    now = NOW + 40 * DAY;
    const results = await job!.runOnce();
    assert.deepEqual(results.map((r) => [r.node, r.through_seq]), [['proxy', 1]]);
    assert.deepEqual(recorded.map((e) => e.detail), [
      { node: 'old-node', through_seq: 10, carried: true, cutoff: now - 30 * DAY },
      { node: 'proxy', through_seq: 1, deleted: 1, cutoff: now - 30 * DAY },
    ]);
    await commitRecorded();
    const v = await verifyAudit(store.audit, KEYS);
    assert.deepEqual(v.problems, [], 'old-node is still explained after its first record was deleted');
  });

  it('runs on its timer', async () => {
    await recordDirect(store.audit, 't', KEY, events(3, NOW - 10 * DAY));
    await recordDirect(store.audit, 't', KEY, events(1, NOW));
    job = startRetention(store.audit, { keepMs: DAY, intervalMs: 60_000, firstRunDelayMs: 10, record: (e) => void recorded.push(e), logger: pino({ level: 'silent' }), now: () => now });
    const deadline = Date.now() + 5000;
    while (recorded.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(recorded.length, 1);
    assert.deepEqual(await seqs(store.audit, 't'), [4]);
  });
});
