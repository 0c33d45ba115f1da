/**
 * Wire fuzz through a live proxy: garbage first packets, garbage after a real SCRAM login,
 * truncated messages, oversized length headers. Each connection must get an ErrorResponse and/or
 * be closed, never hang; the proxy must survive, leak no connections, and a normal session that
 * stays open throughout must keep working. Deterministic: a fixed seed drives every choice.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { ScramClient } from '../src/identity/scram.js';
import { HandshakeReader } from '../src/protocol/postgres/handshake-reader.js';
import * as messages from '../src/protocol/postgres/messages.js';
import { createTestDatabase } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';

const SEED = 0x5eed_2024;
/**
 * Short, so silent connections in (a) are closed soon; long enough for the valid logins of (b),
 * 16 at a time, on a loaded machine (at 1500 ms one of them once timed out during a full run).
 */
const HANDSHAKE_TIMEOUT_MS = 5000;
/** How long a connection may take to be closed once it must be (timer, error or client FIN). */
const CLOSE_WITHIN_MS = HANDSHAKE_TIMEOUT_MS + 2500;

/** mulberry32: a tiny seeded PRNG, so every run sends the same bytes. */
function prng(seed: number): { int(lo: number, hi: number): number; bytes(n: number): Buffer; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return {
    int,
    bytes: (n) => Buffer.from(Array.from({ length: n }, () => int(0, 255))),
    pick: (xs) => xs[int(0, xs.length - 1)]!,
    chance: (p) => next() < p,
  };
}

function frame(tag: string | number, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = typeof tag === 'string' ? tag.charCodeAt(0) : tag;
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

function header(tag: string | number, length: number): Buffer {
  const out = Buffer.alloc(5);
  out[0] = typeof tag === 'string' ? tag.charCodeAt(0) : tag;
  out.writeInt32BE(length | 0, 1);
  return out;
}

function untagged(length: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(4 + body.length);
  out.writeInt32BE(length | 0, 0);
  body.copy(out, 4);
  return out;
}

/** A raw client connection that records everything the proxy sends and when it closes. */
class Conn {
  readonly reader = new HandshakeReader();
  readonly received: Buffer[] = [];
  closed = false;
  #wake: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.received.push(d);
      this.reader.push(d);
      this.#notify();
    });
    socket.on('error', () => {}); // ECONNRESET is a fine way to be closed
    socket.on('close', () => {
      this.closed = true;
      this.#notify();
    });
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new Conn(s));
      });
    });
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Wait until `take` gives a value, the socket closes (null) or `ms` pass (null). */
  async until<T>(take: () => T | null, ms: number): Promise<T | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = take();
      if (v !== null) return v;
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Next backend message, or throw if none arrives. */
  async message(ms = 5000): Promise<{ tag: string; body: Buffer }> {
    const m = await this.until(() => this.reader.next(1 << 20), ms);
    if (!m) throw new Error(`no message from the proxy (closed=${this.closed}) after ${Buffer.concat(this.received).toString('latin1')}`);
    return { tag: String.fromCharCode(m.tag), body: m.body };
  }

  async waitClosed(ms: number): Promise<boolean> {
    await this.until(() => null, ms);
    return this.closed;
  }

  write(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Startup + SCRAM-SHA-256 as alice, up to ReadyForQuery; the reader is empty afterwards. */
async function login(port: number): Promise<Conn> {
  const c = await Conn.open(port);
  c.write(messages.startupMessage({ user: 'alice', database: 'dev', application_name: 'fuzz' }));
  const sasl = await c.message();
  assert.equal(sasl.tag, 'R');
  assert.equal(sasl.body.readInt32BE(0), 10, 'AuthenticationSASL');
  const scram = new ScramClient('alice-pw');
  c.write(messages.saslInitialResponse('SCRAM-SHA-256', scram.first()));
  const cont = await c.message();
  assert.equal(cont.body.readInt32BE(0), 11, 'AuthenticationSASLContinue');
  c.write(messages.saslResponse(scram.final(cont.body.subarray(4).toString())));
  const fin = await c.message();
  assert.equal(fin.body.readInt32BE(0), 12, 'AuthenticationSASLFinal');
  scram.verify(fin.body.subarray(4).toString());
  for (let m = await c.message(); m.tag !== 'Z'; m = await c.message()) {
    assert.ok(['R', 'S', 'K'].includes(m.tag), `unexpected ${m.tag} during startup`);
  }
  c.reader.takeRest();
  c.received.length = 0;
  return c;
}

interface Outcome {
  /** Backend messages received (whole frames). */
  frames: Array<{ tag: string; body: Buffer }>;
  /** Fields of every ErrorResponse. */
  errors: Array<Map<string, string>>;
  /** Bytes after the last whole frame (must be 0: the proxy writes whole frames). */
  trailing: number;
  closedBy: 'proxy' | 'after-fin' | 'hang';
}

function parseFrames(buf: Buffer): Pick<Outcome, 'frames' | 'errors' | 'trailing'> {
  const frames: Outcome['frames'] = [];
  const errors: Outcome['errors'] = [];
  let p = 0;
  while (buf.length - p >= 5) {
    const len = buf.readInt32BE(p + 1);
    if (len < 4 || p + 1 + len > buf.length) break;
    const tag = String.fromCharCode(buf[p]!);
    const body = buf.subarray(p + 5, p + 1 + len);
    frames.push({ tag, body });
    if (tag === 'E') {
      const f = new Map<string, string>();
      let q = 0;
      while (q < body.length && body[q] !== 0) {
        const nul = body.indexOf(0, q + 1);
        if (nul < 0) break;
        f.set(String.fromCharCode(body[q]!), body.toString('utf8', q + 1, nul));
        q = nul + 1;
      }
      errors.push(f);
    }
    p += 1 + len;
  }
  return { frames, errors, trailing: buf.length - p };
}

/**
 * After the fuzz bytes: wait `graceMs` for the proxy to close on its own; otherwise half-close
 * like a client that gave up, and the proxy must then close within CLOSE_WITHIN_MS.
 */
async function settle(c: Conn, graceMs: number, finIfOpen = true): Promise<Outcome> {
  let closedBy: Outcome['closedBy'] = 'proxy';
  if (!(await c.waitClosed(graceMs))) {
    if (finIfOpen) c.socket.end();
    closedBy = (await c.waitClosed(CLOSE_WITHIN_MS)) ? 'after-fin' : 'hang';
  }
  c.destroy();
  return { ...parseFrames(Buffer.concat(c.received)), closedBy };
}

const KNOWN_STATES = new Set(['08P01', '28000', '28P01', '3D000', '08001', '08006', '57P01', '53300']);

function assertSane(o: Outcome, what: string): void {
  assert.notEqual(o.closedBy, 'hang', `${what}: connection left open`);
  assert.equal(o.trailing, 0, `${what}: the proxy sent a partial frame`);
}

/** Run `jobs` with at most `width` in flight. */
async function pool<T>(jobs: Array<() => Promise<T>>, width: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

describe('wire fuzz through a live proxy', { timeout: 60_000 }, () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  let normal: pg.Client;
  const rnd = prng(SEED);
  const stats: Record<string, number> = {};
  const count = (k: string): void => void (stats[k] = (stats[k] ?? 0) + 1);

  const stillWorks = async (): Promise<void> => {
    const r = await normal.query('select $1::int + 1 as n, current_setting($2) as app', [41, 'application_name']);
    assert.equal(r.rows[0].n, 42);
  };

  before(async () => {
    db = await createTestDatabase('gh_fuzz');
    proxy = await startProxy({
      database: db.name,
      listenerYaml: `    host: 127.0.0.1\n    port: 0\n    handshake_timeout: ${HANDSHAKE_TIMEOUT_MS}ms`,
      logStatements: false,
    });
    normal = await proxy.client({ application_name: 'normal' });
    await normal.query('create table t (id int primary key, v text)');
    await normal.query("insert into t select g, 'v' || g from generate_series(1, 10) g");
    await stillWorks();
  });

  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  it('(a) garbage as the first packet: 70 connections', async () => {
    const jobs = Array.from({ length: 70 }, (_, i) => {
      // Pure noise, or a plausible untagged packet with a bad or random protocol code.
      const kind = rnd.pick(['noise', 'noise', 'startup-noise', 'code-noise', 'ssl-plus-data', 'cancel', 'incomplete', 'silent-after-startup'] as const);
      let bytes: Buffer;
      switch (kind) {
        case 'noise':
          bytes = rnd.bytes(rnd.int(1, 120));
          break;
        case 'startup-noise': {
          const body = Buffer.concat([untagged(196608).subarray(0, 4), rnd.bytes(rnd.int(0, 60))]);
          bytes = untagged(4 + body.length, body);
          break;
        }
        case 'code-noise': {
          const body = rnd.bytes(rnd.int(4, 40));
          bytes = untagged(4 + body.length, body);
          break;
        }
        case 'ssl-plus-data':
          bytes = Buffer.concat([messages.SSL_REQUEST, rnd.bytes(rnd.int(1, 20))]);
          break;
        case 'cancel':
          bytes = messages.cancelRequest(rnd.int(0, 0x7fffffff), rnd.int(0, 0x7fffffff));
          break;
        case 'incomplete':
          // A plausible length, then fewer bytes than it announces: only the timer or a FIN ends it.
          bytes = Buffer.concat([untagged(rnd.int(40, 10000)), rnd.bytes(rnd.int(0, 30))]);
          break;
        case 'silent-after-startup':
          // A valid startup, then no answer to the SASL request.
          bytes = messages.startupMessage({ user: rnd.pick(['alice', 'nobody']), database: 'dev' });
          break;
      }
      const keepOpen = i % 2 === 0; // half rely on the proxy (error or handshake timeout), half send FIN
      return async () => {
        const c = await Conn.open(proxy.port);
        c.write(bytes);
        if (!keepOpen) c.socket.end();
        const o = await settle(c, CLOSE_WITHIN_MS, false);
        assertSane(o, `(a) ${kind} ${bytes.toString('hex')}`);
        count(`a:${kind}:${keepOpen ? 'open' : 'fin'}:${o.errors.length > 0 ? o.errors[0]!.get('C') : 'closed'}`);
        for (const e of o.errors) {
          assert.equal(e.get('S'), 'FATAL');
          assert.ok(KNOWN_STATES.has(e.get('C')!), `SQLSTATE ${e.get('C')}`);
        }
        const length = bytes.length >= 4 ? bytes.readInt32BE(0) : 8;
        if (length < 8 || length > 10000) {
          assert.equal(o.errors[0]?.get('C'), '08P01', `(a) invalid length ${length} gets a protocol_violation (${bytes.toString('hex')})`);
        }
        if (kind === 'ssl-plus-data') {
          // 'N' (no TLS) then the refusal of the smuggled bytes, or the refusal alone.
          assert.equal(o.errors[0]?.get('C'), '08P01', `(a) SSLRequest followed by data is refused (${bytes.toString('hex')})`);
        }
      };
    });
    await pool(jobs, 70);
    await stillWorks();
  });

  it('(b) random bytes and garbage frames after a valid SCRAM login: 80 connections', async () => {
    const tags = ['Q', 'P', 'B', 'E', 'C', 'S', 'D', 'H', 'd', 'c', 'f', 'p', 'X', 0x00, 0x7f, 0xff] as const;
    const jobs = Array.from({ length: 80 }, () => {
      const kind = rnd.pick(['bytes', 'frames', 'frames', 'bad-length'] as const);
      const writes: Buffer[] = [];
      if (kind === 'bytes') {
        for (let n = rnd.int(1, 3); n > 0; n--) writes.push(rnd.bytes(rnd.int(1, 200)));
      } else if (kind === 'frames') {
        const fs: Buffer[] = [];
        for (let n = rnd.int(1, 6); n > 0; n--) fs.push(frame(rnd.pick(tags), rnd.bytes(rnd.int(0, 40))));
        const all = Buffer.concat(fs);
        const cut = rnd.int(0, all.length);
        writes.push(all.subarray(0, cut), all.subarray(cut));
      } else {
        writes.push(frame('Q', 'select 1\0'), header(rnd.pick(tags), rnd.pick([0, 1, 2, 3, -1, -5, -0x80000000])), rnd.bytes(8));
      }
      return async () => {
        const c = await login(proxy.port);
        for (const w of writes) {
          if (w.length > 0) c.write(w);
          await new Promise((r) => setImmediate(r));
        }
        // An invalid length must make the proxy close on its own: give it the full allowance
        // before a FIN would let it off; the other kinds may stay open, so 300 ms is enough.
        const o = await settle(c, kind === 'bad-length' ? CLOSE_WITHIN_MS : 300);
        assertSane(o, `(b) ${kind} ${Buffer.concat(writes).toString('hex')}`);
        count(`b:${kind}:${o.closedBy}:${o.errors.map((e) => e.get('C')).join('+') || 'no-error'}`);
        for (const f of o.frames) assert.ok(/^[123ACDEGHIKNRSTVWZcdnstv]$/.test(f.tag), `(b) backend message type ${JSON.stringify(f.tag)}`);
        if (kind === 'bad-length') {
          const fatal = o.errors.find((e) => e.get('S') === 'FATAL');
          assert.equal(fatal?.get('C'), '08P01', `(b) an invalid frame length is a FATAL protocol_violation: ${JSON.stringify(o.errors.map((e) => Object.fromEntries(e)))}`);
          assert.equal(o.closedBy, 'proxy');
        }
      };
    });
    await pool(jobs, 16);
    await stillWorks();
  });

  it('(c) truncated messages, then close: 30 connections', async () => {
    const startup = messages.startupMessage({ user: 'alice', database: 'dev' });
    const query = messages.query('select * from t where id = 3');
    const parse = messages.parse('s1', 'select v from t where id = $1');
    const jobs = Array.from({ length: 30 }, (_, i) => {
      const kind = (['startup', 'sasl-initial', 'sasl-response', 'query', 'parse', 'header'] as const)[i % 6]!;
      // Drawn now, not inside the job, so the sequence does not depend on scheduling.
      const r = rnd.int(0, 1 << 30);
      /** A proper prefix of `m`: at least one byte, never all of it. */
      const prefix = (m: Buffer): Buffer => m.subarray(0, 1 + (r % (m.length - 1)));
      return async () => {
        let c: Conn;
        if (kind === 'startup') {
          c = await Conn.open(proxy.port);
          c.write(prefix(startup));
        } else if (kind === 'sasl-initial' || kind === 'sasl-response') {
          c = await Conn.open(proxy.port);
          c.write(startup);
          await c.message();
          const scram = new ScramClient('alice-pw');
          const initial = messages.saslInitialResponse('SCRAM-SHA-256', scram.first());
          if (kind === 'sasl-initial') {
            c.write(prefix(initial));
          } else {
            c.write(initial);
            const cont = await c.message();
            const response = messages.saslResponse(scram.final(cont.body.subarray(4).toString()));
            c.write(prefix(response));
          }
        } else {
          c = await login(proxy.port);
          const m = kind === 'query' ? query : kind === 'parse' ? parse : query.subarray(0, 5);
          c.write(prefix(m));
        }
        // Nothing must come back for a partial message: the proxy waits, then sees the FIN.
        await new Promise((r) => setTimeout(r, 50));
        c.socket.end();
        const o = await settle(c, 0, false);
        assertSane(o, `(c) ${kind}`);
        count(`c:${kind}:${o.closedBy}`);
        if (kind === 'query' || kind === 'parse' || kind === 'header') assert.equal(o.frames.length, 0, `(c) ${kind}: no reply to a partial message`);
      };
    });
    await pool(jobs, 10);
    await stillWorks();
  });

  it('(d) oversized length headers: 20 connections', async () => {
    const cases: Array<[string, (c: Conn) => Promise<void> | void, boolean]> = [
      ['startup 0x7fffffff', (c) => c.write(untagged(0x7fffffff)), false],
      ['startup 10001', (c) => c.write(untagged(10001)), false],
      [
        'SASL 0x7fffffff',
        async (c) => {
          c.write(messages.startupMessage({ user: 'alice', database: 'dev' }));
          await c.message();
          c.write(header('p', 0x7fffffff));
        },
        false,
      ],
      [
        'SASL 65537',
        async (c) => {
          c.write(messages.startupMessage({ user: 'alice', database: 'dev' }));
          await c.message();
          c.write(header('p', 65537));
        },
        false,
      ],
      ['Query 0x7fffffff', (c) => c.write(header('Q', 0x7fffffff)), true],
      ['Query over max_message_bytes', (c) => c.write(header('Q', 64 * 1024 * 1024 + 1)), true],
      ['CopyData 0x7fffffff', (c) => c.write(header('d', 0x7fffffff)), true],
      ['Parse 0x7fffffff after a valid query', (c) => c.write(Buffer.concat([messages.query('select 1'), header('P', 0x7fffffff)])), true],
      ['Sync 0x40000000', (c) => c.write(header('S', 0x40000000)), true],
      ['unknown tag 0x7fffffff', (c) => c.write(header(0xff, 0x7fffffff)), true],
    ];
    const jobs = Array.from({ length: 20 }, (_, i) => {
      const [name, send, afterLogin] = cases[i % cases.length]!;
      return async () => {
        const c = afterLogin ? await login(proxy.port) : await Conn.open(proxy.port);
        await send(c);
        const o = await settle(c, CLOSE_WITHIN_MS, false);
        assertSane(o, `(d) ${name}`);
        count(`d:${name}`);
        const fatal = o.errors.find((e) => e.get('S') === 'FATAL');
        assert.equal(fatal?.get('C'), '08P01', `(d) ${name}: FATAL protocol_violation, got ${JSON.stringify(o.errors.map((e) => Object.fromEntries(e)))}`);
        assert.equal(o.closedBy, 'proxy', `(d) ${name}: closed by the proxy`);
      };
    });
    await pool(jobs, 10);
    await stillWorks();
  });

  it('the proxy survived: no leaked connections, and new sessions work', async (t) => {
    t.diagnostic(JSON.stringify(stats));
    await waitFor(() => proxy.node.engine.connectionCount === 1, 5000, `connection count back to 1 (is ${proxy.node.engine.connectionCount})`);
    await stillWorks();
    const fresh = await proxy.client({ user: 'bob' });
    const r = await fresh.query('select count(*)::int as n from t');
    assert.equal(r.rows[0].n, 10);
    const c = await login(proxy.port);
    c.write(messages.query('select 7'));
    const seen: string[] = [];
    for (let m = await c.message(); ; m = await c.message()) {
      seen.push(m.tag);
      if (m.tag === 'Z') break;
    }
    assert.deepEqual(seen, ['T', 'D', 'C', 'Z']);
    c.write(messages.TERMINATE);
    assert.ok(await c.waitClosed(3000));
  });
});
