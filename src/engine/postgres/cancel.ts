/**
 * Cancel keys. Clients get Gatehouse's own BackendKeyData; a CancelRequest carrying it is
 * mapped to the upstream backend's key and sent there on a fresh connection, as libpq does.
 * The worker index lives in the top bits of the pid so any worker can route a cancel to the
 * worker that owns the session.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
import { randomInt, timingSafeEqual } from 'node:crypto';
import { connect } from 'node:net';
import { messages } from '../../protocol/postgres/index.js';

export interface UpstreamKey {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly secret: number;
}

interface Entry {
  readonly secret: number;
  readonly upstream: UpstreamKey;
  /** Also told of the cancel (e.g. to stop a statement Gatehouse itself is holding). */
  readonly onCancel?: () => void;
}

const WORKER_SHIFT = 24;
const COUNTER_MASK = (1 << WORKER_SHIFT) - 1;

/** Which worker issued this key. */
export function workerOfPid(pid: number): number {
  return pid >>> WORKER_SHIFT;
}

export class CancelRegistry {
  readonly #entries = new Map<number, Entry>();
  readonly #worker: number;
  #counter = 0;

  constructor(workerIndex = 0) {
    if (workerIndex < 0 || workerIndex > 127) throw new RangeError('worker index must be 0..127');
    this.#worker = workerIndex;
  }

  /** Issue a key for a session; returns the pid/secret to hand to the client. */
  register(upstream: UpstreamKey, onCancel?: () => void): { pid: number; secret: number } {
    let pid: number;
    do {
      this.#counter = (this.#counter + 1) & COUNTER_MASK;
      pid = (this.#worker << WORKER_SHIFT) | this.#counter;
    } while (this.#entries.has(pid) || this.#counter === 0);
    const secret = randomInt(0, 2 ** 31);
    this.#entries.set(pid, { secret, upstream, onCancel });
    return { pid, secret };
  }

  release(pid: number): void {
    this.#entries.delete(pid);
  }

  /** The entry for a valid (pid, secret), or undefined. The secret is compared in constant time. */
  lookup(pid: number, secret: number): Entry | undefined {
    const e = this.#entries.get(pid);
    if (!e) return undefined;
    const a = Buffer.alloc(4);
    const b = Buffer.alloc(4);
    a.writeInt32BE(e.secret | 0);
    b.writeInt32BE(secret | 0);
    return timingSafeEqual(a, b) ? e : undefined;
  }
}

/** Send a CancelRequest to the upstream; best effort, as in libpq (the server never answers). */
export function sendUpstreamCancel(key: UpstreamKey): Promise<void> {
  return new Promise((resolve) => {
    const s = key.host.startsWith('/') ? connect({ path: `${key.host}/.s.PGSQL.${key.port}` }) : connect({ host: key.host, port: key.port });
    const done = (): void => {
      s.destroy();
      resolve();
    };
    s.setTimeout(5000, done);
    s.once('error', done);
    s.once('close', done);
    s.once('connect', () => {
      s.end(messages.cancelRequest(key.pid, key.secret));
    });
  });
}
