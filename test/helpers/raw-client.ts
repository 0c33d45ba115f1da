/**
 * A tiny PostgreSQL protocol 3.0 client for tests: it sends arbitrary frontend frames (whole,
 * packed several per write, or split into small writes) and collects the backend messages it
 * receives, parsed only into tag + body, so a test can compare exactly what a client sees
 * through the proxy with what it sees directly from PostgreSQL.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { connect, type Socket } from 'node:net';
import { ScramClient } from '../../src/identity/scram.js';
import { BufferWriter } from '../../src/protocol/postgres/buffer-writer.js';
import { messages } from '../../src/protocol/postgres/index.js';

/** One backend message as received: `type` is the tag letter, `body` excludes tag and length. */
export interface BackendMessage {
  readonly type: string;
  readonly body: Buffer;
  /** The whole frame: tag, length, body. */
  readonly raw: Buffer;
}

export interface RawConnectOptions {
  host?: string;
  port: number;
  user: string;
  database: string;
  /** For SCRAM-SHA-256 (the proxy); not needed for trust (PostgreSQL directly). */
  password?: string;
  /** Extra startup parameters (application_name, ...). */
  params?: Record<string, string>;
  /** Write every handshake frame this many bytes at a time (default: whole). */
  handshakeChunk?: number;
  /**
   * Frames sent before ReadyForQuery: in the same write as the last authentication message
   * (SCRAM), or as the startup packet when no password is given (trust). Their answers stay
   * queued after `connect` resolves.
   */
  early?: Buffer[];
}

const w = new BufferWriter(1024);

function frame(fn: (w: BufferWriter) => unknown): Buffer {
  try {
    fn(w);
    return w.flush();
  } catch (err) {
    w.reset();
    throw err;
  }
}

/** A parameter value: text (string), binary (Buffer) or NULL. */
export type ParamValue = string | Buffer | null;

/** Format codes (0 text, 1 binary: a Buffer), then each value: int32 length (-1 = NULL), bytes. */
function writeValues(w: BufferWriter, values: ParamValue[]): void {
  w.int16(values.length);
  for (const v of values) w.int16(Buffer.isBuffer(v) ? 1 : 0);
  w.int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else {
      const b = Buffer.isBuffer(v) ? v : Buffer.from(v);
      w.int32(b.length).bytes(b);
    }
  }
}

/** Frontend frame builders (each returns one whole frame). */
export const fe = {
  query: (text: string): Buffer => messages.query(text),
  /** Parse: statement name, text, parameter type OIDs (0 = unspecified). */
  parse: (name: string, text: string, types: number[] = []): Buffer =>
    frame((w) => {
      w.begin(0x50 /* 'P' */).cstring(name).cstring(text).int16(types.length);
      for (const t of types) w.int32(t);
      w.close();
    }),
  /** Bind: parameter format follows the value (Buffer = binary), result formats as given. */
  bind: (portal: string, statement: string, values: ParamValue[] = [], resultFormats: number[] = []): Buffer =>
    frame((w) => {
      w.begin(0x42 /* 'B' */).cstring(portal).cstring(statement);
      writeValues(w, values);
      w.int16(resultFormats.length);
      for (const f of resultFormats) w.int16(f);
      w.close();
    }),
  /** Describe a statement ('S') or a portal ('P'). */
  describe: (kind: 'S' | 'P', name: string): Buffer => frame((w) => w.begin(0x44 /* 'D' */).byte(kind.charCodeAt(0)).cstring(name).close()),
  /** Execute a portal; maxRows 0 = all. */
  execute: (portal = '', maxRows = 0): Buffer => frame((w) => w.begin(0x45 /* 'E' */).cstring(portal).int32(maxRows).close()),
  /** Close a statement ('S') or a portal ('P'). */
  close: (kind: 'S' | 'P', name: string): Buffer => frame((w) => w.begin(0x43 /* 'C' */).byte(kind.charCodeAt(0)).cstring(name).close()),
  sync: (): Buffer => messages.SYNC,
  flush: (): Buffer => frame((w) => w.begin(0x48 /* 'H' */).close()),
  terminate: (): Buffer => messages.TERMINATE,
  /** FunctionCall (fast path): function OID, text arguments, text result. */
  functionCall: (oid: number, args: ParamValue[]): Buffer =>
    frame((w) => {
      w.begin(0x46 /* 'F' */).int32(oid);
      writeValues(w, args);
      w.int16(0); // result format: text
      w.close();
    }),
  copyData: (data: string | Buffer): Buffer => frame((w) => w.begin(0x64 /* 'd' */).bytes(Buffer.isBuffer(data) ? data : Buffer.from(data)).close()),
  copyDone: (): Buffer => frame((w) => w.begin(0x63 /* 'c' */).close()),
  copyFail: (reason: string): Buffer => frame((w) => w.begin(0x66 /* 'f' */).cstring(reason).close()),
};

/** Parse/Bind/Execute of one statement with text parameters, no Sync. */
export function pbe(text: string, values: ParamValue[] = [], resultFormats: number[] = []): Buffer[] {
  return [fe.parse('', text), fe.bind('', '', values, resultFormats), fe.execute('', 0)];
}

// ---- decoding helpers ------------------------------------------------------------------------

function cstrings(body: Buffer, from: number): string[] {
  const out: string[] = [];
  let at = from;
  while (at < body.length && body[at] !== 0) {
    const nul = body.indexOf(0, at);
    out.push(body.toString('utf8', at, nul));
    at = nul + 1;
  }
  return out;
}

/** Fields of an ErrorResponse / NoticeResponse by their one-letter code. */
export function errorFields(m: BackendMessage): Record<string, string> {
  const f: Record<string, string> = {};
  for (const s of cstrings(m.body, 0)) f[s[0]!] = s.slice(1);
  return f;
}

/** Column values of a DataRow (text; null for NULL). */
export function dataRow(m: BackendMessage): Array<string | null> {
  return dataRowRaw(m).map((b) => (b === null ? null : b.toString('utf8')));
}

/** Column values of a DataRow as bytes (null for NULL). */
export function dataRowRaw(m: BackendMessage): Array<Buffer | null> {
  const n = m.body.readInt16BE(0);
  const out: Array<Buffer | null> = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const len = m.body.readInt32BE(at);
    at += 4;
    if (len < 0) out.push(null);
    else {
      out.push(m.body.subarray(at, at + len));
      at += len;
    }
  }
  return out;
}

/** Columns of a RowDescription: name, type OID and format code. */
export function rowDescription(m: BackendMessage): Array<{ name: string; typeId: number; format: number }> {
  const n = m.body.readInt16BE(0);
  const out = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const nul = m.body.indexOf(0, at);
    const name = m.body.toString('utf8', at, nul);
    at = nul + 1;
    const typeId = m.body.readUInt32BE(at + 6);
    const format = m.body.readInt16BE(at + 16);
    at += 18;
    out.push({ name, typeId, format });
  }
  return out;
}

/**
 * A short readable form of a message, for sequence assertions: `C:SELECT 1`, `Z:I`, `E:42P01`,
 * `D:["1","a"]`, `S:application_name=x`, others just their tag letter.
 */
export function summary(m: BackendMessage): string {
  switch (m.type) {
    case 'C':
      return `C:${m.body.toString('utf8', 0, m.body.length - 1)}`;
    case 'Z':
      return `Z:${String.fromCharCode(m.body[0]!)}`;
    case 'E':
    case 'N':
      return `${m.type}:${errorFields(m).C}`;
    case 'D':
      return `D:${JSON.stringify(dataRow(m).map((v) => (v !== null && v.length > 40 ? `<${v.length} bytes>` : v)))}`;
    case 'S':
      return `S:${cstrings(m.body, 0).join('=')}`;
    case 'T':
      return `T:${rowDescription(m).map((c) => c.name).join(',')}`;
    case 'A':
      return `A:${cstrings(m.body, 4).join(':')}`;
    default:
      return m.type;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class RawClient {
  readonly socket: Socket;
  /** ParameterStatus values received during startup. */
  readonly parameters = new Map<string, string>();
  /** BackendKeyData of the session (the proxy's own key when through the proxy). */
  backendKey: { pid: number; secret: number } | null = null;
  /** Resolves when the socket closed; `error` set if it closed with one. */
  readonly closed: Promise<void>;
  error: Error | null = null;
  ended = false;

  #buf: Buffer = Buffer.alloc(0);
  readonly #queue: BackendMessage[] = [];
  #wake: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      this.ended = true;
      this.#notify();
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.ended = true;
        this.#notify();
        resolve();
      });
    });
    socket.on('error', (err) => {
      this.error = err;
      this.#notify();
    });
  }

  /** Connect and authenticate (SCRAM-SHA-256 or trust); resolves after the first ReadyForQuery. */
  static async connect(o: RawConnectOptions): Promise<RawClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: o.host ?? '127.0.0.1', port: o.port });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
    });
    const c = new RawClient(socket);
    const send = (b: Buffer): Promise<void> => (o.handshakeChunk ? c.writeSplit([b], o.handshakeChunk) : (c.write(b), Promise.resolve()));
    const early = o.early ?? [];
    const startup = messages.startupMessage({ user: o.user, database: o.database, client_encoding: 'UTF8', ...o.params });
    await send(o.password === undefined ? Buffer.concat([startup, ...early]) : startup);
    let scram: ScramClient | null = null;
    for (;;) {
      const m = await c.next();
      switch (m.type) {
        case 'R': {
          const code = m.body.readInt32BE(0);
          if (code === 0) break; // AuthenticationOk
          if (code === 10) {
            // AuthenticationSASL: mechanisms follow; we speak SCRAM-SHA-256 only.
            if (o.password === undefined) throw new Error('server asks for SCRAM but no password was given');
            scram = new ScramClient(o.password);
            await send(messages.saslInitialResponse('SCRAM-SHA-256', scram.first()));
          } else if (code === 11) {
            await send(Buffer.concat([messages.saslResponse(scram!.final(m.body.toString('utf8', 4))), ...early]));
          } else if (code === 12) {
            scram!.verify(m.body.toString('utf8', 4));
          } else {
            throw new Error(`unsupported authentication request ${code}`);
          }
          break;
        }
        case 'S': {
          const [k, v] = cstrings(m.body, 0);
          c.parameters.set(k!, v ?? '');
          break;
        }
        case 'K':
          c.backendKey = { pid: m.body.readInt32BE(0), secret: m.body.readInt32BE(4) };
          break;
        case 'E':
          socket.destroy();
          throw new Error(`connection refused: ${errorFields(m).M} (${errorFields(m).C})`);
        case 'Z':
          return c;
        default:
          break; // NoticeResponse, NegotiateProtocolVersion
      }
    }
  }

  #onData(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let at = 0;
    while (this.#buf.length - at >= 5) {
      const len = this.#buf.readInt32BE(at + 1);
      if (this.#buf.length - at < 1 + len) break;
      const raw = Buffer.from(this.#buf.subarray(at, at + 1 + len));
      this.#queue.push({ type: String.fromCharCode(raw[0]!), body: raw.subarray(5), raw });
      at += 1 + len;
    }
    this.#buf = this.#buf.subarray(at);
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Send frames in one write. */
  write(...frames: Array<Buffer | Buffer[]>): void {
    this.socket.write(Buffer.concat(frames.flat()));
  }

  /**
   * Send frames `size` bytes per write. After each write the event loop turns once (the
   * check phase follows the poll phase), so a reader in this process, the proxy, receives
   * each piece as its own chunk.
   */
  async writeSplit(frames: Buffer[], size = 1): Promise<void> {
    const all = Buffer.concat(frames);
    for (let at = 0; at < all.length; at += size) {
      await new Promise<void>((resolve, reject) => this.socket.write(all.subarray(at, at + size), (err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** The next message, waiting up to `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<BackendMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#queue.shift();
      if (m) return m;
      if (this.ended) throw new Error('connection closed while waiting for a message');
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a backend message after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Messages up to and including the one for which `until` is true. */
  async collect(until: (m: BackendMessage) => boolean, timeoutMs = 10_000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (until(m)) return out;
    }
  }

  /** Messages up to and including the `n`th ReadyForQuery. */
  async untilReady(n = 1, timeoutMs = 10_000): Promise<BackendMessage[]> {
    let seen = 0;
    return this.collect((m) => m.type === 'Z' && ++seen === n, timeoutMs);
  }

  /** Messages received within `ms` (expecting none, typically). */
  async drainFor(ms: number): Promise<BackendMessage[]> {
    await sleep(ms);
    return this.#queue.splice(0);
  }

  /** Send Terminate and wait for the server to close the connection (destroyed after `ms`). */
  async terminate(ms = 3000): Promise<void> {
    if (!this.socket.destroyed) this.socket.end(fe.terminate());
    const timer = setTimeout(() => this.socket.destroy(), ms);
    await this.closed;
    clearTimeout(timer);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
