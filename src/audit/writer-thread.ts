/**
 * The audit writer thread: owns one writer's hash chain and its store connection. The proxy's
 * event loop numbers and encodes events and posts them here in batches; this thread chains,
 * signs checkpoints and commits each batch in one transaction, so the store's fsync never stalls
 * statement relaying. Messages (all plain data):
 *
 *   main -> thread  {op:'append', nums, strs, count, first, release}   a Batch (src/audit/compact.ts)
 *                   {op:'checkpoint'}                    sign the head now (shutdown)
 *                   {op:'close'}
 *   thread -> main  {op:'ready', seq} | {op:'init_failed', message}
 *                   {op:'committed', through} | {op:'failed', message, first}
 *                   {op:'checkpointed', seq} | {op:'closed'}
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ChainEncoder, GENESIS, loadSigningKey, signCheckpoint, type Checkpoint, type SigningKey } from './chain.js';
import { COLUMN_COUNT } from './event.js';
import { compactWriter, encodeFragment, expanded, FULL_EVENT, NUMS, templatize, writeCompact, type EncodedFragment, type Fragment } from './compact.js';
import { openAuditStore, type StoreSpec } from '../store/open.js';
import type { AuditStore } from '../store/audit.js';

export interface WriterThreadData {
  readonly node: string;
  readonly store: StoreSpec;
  readonly signingKey: string;
  readonly checkpointEvery: number;
  readonly checkpointIntervalMs: number;
  readonly busyTimeoutMs: number;
}

type Incoming = { op: 'append'; nums: Float64Array; strs: unknown[]; count: number; first: number; release?: number[] } | { op: 'frag'; id: number; f: Fragment } | { op: 'checkpoint' } | { op: 'close' };

const data = workerData as WriterThreadData;
const port = parentPort!;
const WIDTH = COLUMN_COUNT + 1;
const BODY = COLUMN_COUNT;

let store: (AuditStore & { closeAll(): Promise<void> }) | undefined;
let key: SigningKey;
/** The committed head of the chain. */
let headSeq = 0;
let headHash: string = GENESIS;
let checkpointSeq = 0;
let checkpointAt = Date.now();
let queue: Promise<void> = Promise.resolve();
/** Fragments of compact events, by id, encoded. */
const fragments = new Map<number, EncodedFragment>();
const compact = compactWriter(data.node);

function checkpointNow(seq: number, hash: string): Checkpoint {
  return signCheckpoint(key, data.node, seq, hash, Date.now());
}

async function append(nums: Float64Array, strs: unknown[], count: number, first: number, release: number[] | undefined): Promise<void> {
  if (first !== headSeq + 1) {
    port.postMessage({ op: 'failed', first, message: `batch starts at seq ${first}, expected ${headSeq + 1}` });
    return;
  }
  const out = expanded(count);
  const { rows, hashes, bodies, sets } = out;
  const encoder = new ChainEncoder(headHash);
  try {
    let s = 0;
    for (let i = 0; i < count; i++) {
      const o = i * NUMS;
      if (nums[o] !== FULL_EVENT) {
        s = writeCompact(encoder, compact, fragments, nums, o, strs, s, out, i);
      } else {
        const base = i * WIDTH;
        for (let c = 0; c < WIDTH; c++) rows[base + c] = strs[s++];
        hashes[i] = encoder.text(rows[base + BODY] as string, bodies, i);
        sets[i] = -1;
      }
    }
  } catch (err) {
    port.postMessage({ op: 'failed', first, message: (err as Error).message });
    return;
  }
  const templated = templatize(out, count, data.node, (i) => rows[i * WIDTH + 1] as number);
  const prev = hashes[count - 1] ?? headHash;
  const through = first + count - 1;
  const checkpoints: Checkpoint[] = [];
  const now = Date.now();
  if (through - checkpointSeq >= data.checkpointEvery || now - checkpointAt >= data.checkpointIntervalMs) checkpoints.push(checkpointNow(through, prev));
  try {
    await store!.append({ rows, count, hashes, bodies, sets, templated }, checkpoints);
  } catch (err) {
    port.postMessage({ op: 'failed', first, message: (err as Error).message });
    return;
  }
  headSeq = through;
  headHash = prev;
  if (release !== undefined) for (const id of release) fragments.delete(id);
  if (checkpoints.length > 0) {
    checkpointSeq = through;
    checkpointAt = now;
  }
  port.postMessage({ op: 'committed', through });
}

async function checkpoint(): Promise<void> {
  if (headSeq === checkpointSeq) return;
  const cp = checkpointNow(headSeq, headHash);
  try {
    await store!.append({ rows: [], count: 0, hashes: [] }, [cp]);
    checkpointSeq = cp.seq;
    checkpointAt = Date.now();
    port.postMessage({ op: 'checkpointed', seq: cp.seq });
  } catch (err) {
    // The next batch or tick tries again; the unsigned tail is still chained.
    port.postMessage({ op: 'checkpoint_failed', message: (err as Error).message });
  }
}

async function init(): Promise<void> {
  try {
    key = loadSigningKey(data.signingKey);
    store = await openAuditStore(data.store, data.busyTimeoutMs, (message) => port.postMessage({ op: 'store_warning', message }));
    const head = await store.head(data.node);
    if (head !== null) {
      headSeq = head.seq;
      headHash = head.hash;
    }
    const cps = await store.checkpoints(data.node);
    const last = cps[cps.length - 1];
    checkpointSeq = last?.seq ?? 0;
  } catch (err) {
    port.postMessage({ op: 'init_failed', message: (err as Error).message });
    return;
  }
  port.postMessage({ op: 'ready', seq: headSeq });
  // Sign the head every interval while events arrive (an idle writer has nothing new to sign).
  const tick = setInterval(() => {
    if (headSeq !== checkpointSeq && Date.now() - checkpointAt >= data.checkpointIntervalMs) queue = queue.then(checkpoint);
  }, Math.max(100, Math.min(data.checkpointIntervalMs, 1000)));
  port.on('message', (m: Incoming) => {
    switch (m.op) {
      case 'append':
        queue = queue.then(() => append(m.nums, m.strs, m.count, m.first, m.release));
        break;
      case 'frag':
        fragments.set(m.id, encodeFragment(m.f));
        break;
      case 'checkpoint':
        queue = queue.then(checkpoint);
        break;
      case 'close':
        clearInterval(tick);
        queue = queue.then(checkpoint).then(async () => {
          await store!.closeAll().catch(() => {});
          port.postMessage({ op: 'closed' });
          port.close();
        });
        break;
    }
  });
}

void init();
