/**
 * Recording from short-lived processes (the CLI: tokens issued and revoked, retention run by
 * hand): each call appends at the writer's head under the store's lock, chained like the proxy's
 * events, and signs a checkpoint at once, so these events never sit in an unsigned tail.
 */
import type { AuditStore } from '../store/audit.js';
import { chainHash, GENESIS, signCheckpoint, type SigningKey } from './chain.js';
import { canonicalJson, eventColumns, type AuditEvent, type EventInput } from './event.js';

/** Append events as writer `node`; returns their sequence numbers. */
export async function recordDirect(store: AuditStore, node: string, key: SigningKey, inputs: readonly EventInput[], now = Date.now()): Promise<number[]> {
  const seqs: number[] = [];
  await store.appendAtHead(node, (head) => {
    let seq = head?.seq ?? 0;
    let prev = head ? head.hash : GENESIS;
    const rows: unknown[] = [];
    const hashes: string[] = [];
    seqs.length = 0;
    for (const input of inputs) {
      const event = { ...input, seq: ++seq, ts: input.ts ?? now, node } as AuditEvent;
      const body = canonicalJson(event);
      const c = eventColumns(event);
      rows.push(c.node, c.seq, c.ts, c.type, c.session, c.identity, c.on_behalf_of, c.connection, c.environment, c.kind, c.tables, c.decision, body);
      prev = chainHash(prev, body);
      hashes.push(prev);
      seqs.push(seq);
    }
    return { batch: { rows, count: inputs.length, hashes }, checkpoints: [signCheckpoint(key, node, seq, prev, Date.now())] };
  });
  return seqs;
}
