/**
 * The demo upstream: an embedded PostgreSQL (PGlite, PostgreSQL compiled to WebAssembly) with
 * persistent storage, seeded once with the demo company database (./seed.ts) and served over TCP
 * with the PostgreSQL wire protocol, so the proxy connects to it like to any server.
 *
 * PGlite is one backend: one session, one transaction at a time. `@electric-sql/pglite-socket`
 * (0.2.x) multiplexes by single messages: it interleaves the extended-protocol messages of
 * different clients (Parse from one, Bind from another), passes every client's StartupMessage
 * to the backend, and serves one connection unless told otherwise. So this module has its own
 * bridge. Many TCP connections share the backend by taking turns:
 *
 * - A connection takes the turn when it has whole messages to run, and keeps it until the
 *   backend's output ends with ReadyForQuery 'I' (idle). So a transaction ('T' or 'E') or an
 *   extended-protocol batch not yet closed by Sync holds the backend, and every other connection
 *   waits (in arrival order) until COMMIT/ROLLBACK or Sync. An idle connection holds nothing.
 * - The handshake is ours: SSLRequest and GSSENCRequest get 'N', protocol 3.x gets trust
 *   authentication (AuthenticationOk, any user name), the ParameterStatus values PGlite reports,
 *   a made-up BackendKeyData and ReadyForQuery. A CancelRequest closes its socket: a WebAssembly
 *   backend cannot be interrupted. Newer minor protocol versions are negotiated down to 3.0.
 * - Named prepared statements are renamed per connection (`gh<conn>_<name>`) in Parse, Bind,
 *   Describe and Close, so two clients may both prepare "s1"; a connection's statements are
 *   closed when it disconnects, and an open transaction is rolled back.
 * - COPY ... FROM STDIN is answered with an error (0A000) instead of being run: PGlite 0.5 exits
 *   on it and is unusable afterwards. COPY TO STDOUT works.
 *
 * What connections still share, by design of a single backend (acceptable for a demo):
 * session settings (`SET`, `set_config`, `application_name` is only echoed, never applied), the
 * unnamed statement and portal between batches, temporary tables, SQL-level PREPARE, cursors
 * WITH HOLD, advisory locks, LISTEN (notifications go to whichever connection runs next). Every
 * connection runs as user `postgres` (superuser), whatever user it named; the startup
 * `options` (`-c name=value`) are ignored; the database must be `postgres` (else 3D000). A
 * connection idle inside a transaction, or stopping mid-batch without Sync, stalls all the others.
 *
 * The data directory holds `gatehouse-demo.pid` while served: PGlite itself would let a second
 * instance open the same directory and corrupt it.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { ConfigError, UpstreamUnavailable } from '../errors.js';
import {
  BackendCode,
  FrontendCode,
  MAX_STARTUP_PACKET,
  StartupCode,
  TxStatus,
  messages,
} from '../protocol/postgres/index.js';
import { seedSql } from './seed.js';

/** Options of `startDemoDatabase`. */
export interface DemoDatabaseOptions {
  /** Directory holding the PostgreSQL data files; created when missing. */
  dataDir: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 (the default) picks a free one, reported in `DemoDatabase.port`. */
  port?: number;
  /** Delete `dataDir` first, so the database is created and seeded afresh. */
  reset?: boolean;
  /** Progress and error lines (seeding, listening, a failed backend). */
  log?: (msg: string) => void;
}

/** A running demo database. */
export interface DemoDatabase {
  /** Address it listens on. */
  readonly host: string;
  /** Port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  /** User name to connect as; no password (trust). */
  readonly user: string;
  /** Database name to connect to. */
  readonly database: string;
  /** True when this start created and seeded the data, false when it reused `dataDir`. */
  readonly seeded: boolean;
  /** Close the listener and every connection, then PGlite, leaving `dataDir` consistent. */
  stop(): Promise<void>;
}

/** The role and database PGlite runs as (its defaults). */
const USER = 'postgres';
const DATABASE = 'postgres';
/** Marks a data directory in use: the pid of the process serving it. */
const LOCK_FILE = 'gatehouse-demo.pid';

/** ParameterStatus values sent at startup (GUC_REPORT settings), read from PGlite once. */
const REPORTED_SETTINGS = [
  'server_version',
  'server_encoding',
  'client_encoding',
  'DateStyle',
  'IntervalStyle',
  'TimeZone',
  'integer_datetimes',
  'standard_conforming_strings',
  'is_superuser',
  'session_authorization',
  'default_transaction_read_only',
  'in_hot_standby',
  'search_path',
  'scram_iterations',
] as const;

/** Largest frontend message accepted (the server's own limit for most messages is 1 GB). */
const MAX_MESSAGE = 256 * 1024 * 1024;

/** COPY ... FROM STDIN anywhere in a query string (a false positive only costs an error). */
const COPY_FROM_STDIN = /\bcopy\b[^;]*\bfrom\s+stdin\b/i;
/** Run in place of COPY FROM STDIN: the backend raises the error and keeps its protocol state. */
const COPY_REFUSAL =
  "DO $gatehouse$BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', " +
  "MESSAGE = 'COPY FROM STDIN is not supported by the demo database'; END$gatehouse$";

const EMPTY = Buffer.alloc(0);
const NUL = Buffer.from([0]);
/** Sync, sent on behalf of a client that left mid-batch. */
const SYNC = messages.SYNC;

/**
 * Open (creating and seeding on first use) the demo database in `opts.dataDir` and serve it on
 * TCP. Resolves once it accepts connections. Throws ConfigError for a bad port, a directory
 * another live process (or this one) is serving, or a `reset` of a directory that is not a
 * PostgreSQL data directory; UpstreamUnavailable when PGlite cannot start, seeding fails, or the
 * address cannot be bound.
 */
export async function startDemoDatabase(opts: DemoDatabaseOptions): Promise<DemoDatabase> {
  const log = opts.log ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`demo database: invalid port ${port}`);
  }
  const dataDir = resolve(opts.dataDir);
  await checkNotInUse(dataDir);
  if (opts.reset) await removeDataDir(dataDir);
  await mkdir(dataDir, { recursive: true });
  const lockPath = join(dataDir, LOCK_FILE);
  await writeFile(lockPath, `${process.pid}\n`);
  const unlock = (): Promise<void> => rm(lockPath, { force: true });

  let pg: PGlite;
  try {
    pg = await PGlite.create(dataDir);
  } catch (err) {
    await unlock();
    throw new UpstreamUnavailable(`demo database: PGlite could not open ${dataDir}: ${errorText(err)}`, { cause: err });
  }

  let seeded = false;
  let server: DemoServer;
  try {
    const present = await pg.query<{ present: boolean }>(
      `SELECT to_regclass('public.customers') IS NOT NULL AS present`,
    );
    if (!present.rows[0]?.present) {
      log(`demo database: seeding ${dataDir}`);
      await seed(pg);
      seeded = true;
    }
    server = new DemoServer(pg, await reportedSettings(pg), log, unlock);
    await server.listen(host, port);
  } catch (err) {
    await pg.close().catch(() => {});
    await unlock();
    if (err instanceof UpstreamUnavailable) throw err;
    throw new UpstreamUnavailable(`demo database: could not start: ${errorText(err)}`, { cause: err });
  }
  const addr = server.address;
  log(`demo database: listening on ${addr.address}:${addr.port}`);
  return {
    host: addr.address,
    port: addr.port,
    user: USER,
    database: DATABASE,
    seeded,
    stop: () => server.stop(),
  };
}

/**
 * Two PGlite instances on one directory corrupt it, and PGlite does not refuse (its
 * postmaster.pid is never checked). So a pid file of ours marks the directory in use.
 */
async function checkNotInUse(dataDir: string): Promise<void> {
  const text = await readFile(join(dataDir, LOCK_FILE), 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  if (pid > 0 && processAlive(pid)) {
    throw new ConfigError(`demo database: ${dataDir} is in use by process ${pid}${pid === process.pid ? ' (this one)' : ''}`);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `reset`: delete the directory, but only one that is missing, empty or a PostgreSQL data directory. */
async function removeDataDir(dataDir: string): Promise<void> {
  const entries = await readdir(dataDir).catch(() => [] as string[]);
  if (entries.length > 0 && !entries.includes('PG_VERSION')) {
    throw new ConfigError(`demo database: refusing to reset ${dataDir}: not a PostgreSQL data directory`);
  }
  await rm(dataDir, { recursive: true, force: true });
}

/** All seed statements in one transaction: a crash leaves no half-seeded database behind. */
async function seed(pg: PGlite): Promise<void> {
  await pg.exec('BEGIN');
  try {
    for (const sql of seedSql()) await pg.exec(sql);
    await pg.exec('COMMIT');
  } catch (err) {
    await pg.exec('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The ParameterStatus frames every connection receives at startup, built once. */
async function reportedSettings(pg: PGlite): Promise<Buffer> {
  const res = await pg.query<{ name: string; value: string | null }>(
    'SELECT name, current_setting(name, true) AS value FROM unnest($1::text[]) AS name',
    [[...REPORTED_SETTINGS]],
  );
  return Buffer.concat(
    res.rows.filter((r) => r.value !== null).map((r) => messages.parameterStatus(r.name, r.value!)),
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whose turn it is to use the backend. FIFO: `acquire` resolves true once the caller owns it,
 * or false if withdrawn while waiting.
 */
class Turn {
  #owner: object | null = null;
  readonly #waiting: { who: object; resolve: (ok: boolean) => void }[] = [];

  acquire(who: object): Promise<boolean> {
    if (this.#owner === null) {
      this.#owner = who;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#waiting.push({ who, resolve }));
  }

  release(who: object): void {
    if (this.#owner !== who) return;
    const next = this.#waiting.shift();
    this.#owner = next?.who ?? null;
    next?.resolve(true);
  }

  /** Stop waiting (the caller went away); no effect on an owner. */
  withdraw(who: object): void {
    const i = this.#waiting.findIndex((w) => w.who === who);
    if (i >= 0) this.#waiting.splice(i, 1)[0]!.resolve(false);
  }

  withdrawAll(): void {
    for (const w of this.#waiting.splice(0)) w.resolve(false);
  }
}

/** The TCP listener and the state its connections share. */
class DemoServer {
  readonly pg: PGlite;
  readonly turn = new Turn();
  /** ParameterStatus frames of the handshake, minus application_name (per connection). */
  readonly settings: Buffer;
  readonly log: (msg: string) => void;
  readonly #server: Server;
  readonly #connections = new Set<DemoConnection>();
  #nextId = 1;
  /** The backend call in progress, awaited by `stop`. */
  #inflight: Promise<unknown> | null = null;
  /** Set once PGlite failed (it is unusable afterwards); every later call gets this error. */
  #broken: string | null = null;
  #stopping: Promise<void> | null = null;
  /** Removes the data directory's in-use mark. */
  readonly #unlock: () => Promise<void>;

  constructor(pg: PGlite, settings: Buffer, log: (msg: string) => void, unlock: () => Promise<void>) {
    this.pg = pg;
    this.settings = settings;
    this.log = log;
    this.#unlock = unlock;
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.on('error', (err) => log(`demo database: listener error: ${err.message}`));
  }

  get stopping(): boolean {
    return this.#stopping !== null;
  }

  get broken(): string | null {
    return this.#broken;
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(new UpstreamUnavailable(`demo database: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
      };
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
  }

  #accept(socket: Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const conn = new DemoConnection(this, this.#nextId++, socket);
    this.#connections.add(conn);
    socket.once('close', () => this.#connections.delete(conn));
  }

  /**
   * Run frontend messages on the backend and return its output. The caller owns the turn.
   * Throws once PGlite has failed or the server is stopping.
   */
  async exec(bytes: Uint8Array): Promise<Uint8Array> {
    if (this.#broken !== null) throw new Error(this.#broken);
    if (this.#stopping !== null) throw new Error('the demo database is stopping');
    const run = this.pg.runExclusive(() => this.pg.execProtocolRaw(bytes));
    this.#inflight = run;
    try {
      return await run;
    } catch (err) {
      // PGlite exits (ExitStatus) on some internal failures and cannot be used afterwards.
      this.#broken = `the demo database backend failed: ${errorText(err)}`;
      this.log(`demo database: ${this.#broken}`);
      throw new Error(this.#broken);
    } finally {
      this.#inflight = null;
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of this.#connections) c.destroy();
    this.turn.withdrawAll();
    await closed;
    // A backend call cannot be interrupted: let the current one finish before closing.
    await this.#inflight?.catch(() => {});
    // A failed PGlite can spin on close; its data directory is past saving by then anyway.
    if (this.#broken === null) {
      try {
        await this.pg.close();
      } catch (err) {
        this.log(`demo database: closing PGlite failed: ${errorText(err)}`);
      }
    }
    await this.#unlock();
    this.log('demo database: stopped');
  }
}

const enum Phase {
  /** Waiting for the startup packet (possibly after SSLRequest/GSSENCRequest). */
  Startup,
  /** Relaying messages to the backend. */
  Ready,
  /** The socket is gone or going. */
  Closed,
}

/** One client connection: frames its messages and runs them on the backend in its turns. */
class DemoConnection {
  readonly #server: DemoServer;
  readonly #id: number;
  readonly #socket: Socket;
  /** Prefix of this connection's prepared statement names on the shared backend. */
  readonly #prefix: string;
  /** Bytes received and not yet run: the next frame starts at 0. */
  #buf: Buffer = EMPTY;
  #phase = Phase.Startup;
  /** True while this connection owns the backend's turn. */
  #holding = false;
  /** Every step (draining input, cleaning up) runs in order on this chain; steps never throw. */
  #chain: Promise<void> = Promise.resolve();
  /** Client-side names of the prepared statements this connection created. */
  readonly #statements = new Set<string>();

  constructor(server: DemoServer, id: number, socket: Socket) {
    this.#server = server;
    this.#id = id;
    this.#socket = socket;
    this.#prefix = `gh${id}_`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.#phase === Phase.Closed) return;
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#then(() => this.#drain());
    });
    socket.on('error', () => {}); // 'close' follows; a reset client is nothing to report
    socket.once('close', () => {
      this.#phase = Phase.Closed;
      this.#buf = EMPTY;
      this.#server.turn.withdraw(this);
      this.#then(() => this.#cleanup());
    });
  }

  destroy(): void {
    this.#phase = Phase.Closed;
    this.#socket.destroy();
  }

  #then(step: () => Promise<void> | void): void {
    this.#chain = this.#chain.then(step).catch((err: unknown) => {
      this.#server.log(`demo database: connection ${this.#id}: ${errorText(err)}`);
      this.destroy();
    });
  }

  /** Run every whole message received so far. */
  async #drain(): Promise<void> {
    while (this.#phase === Phase.Startup) {
      if (!this.#startup()) return;
    }
    while (this.#phase === Phase.Ready) {
      const batch = this.#takeBatch();
      if (batch === null) return;
      if (batch.bytes.length > 0) await this.#run(batch.bytes);
      if (batch.terminate) {
        this.#phase = Phase.Closed;
        this.#socket.end();
      }
    }
  }

  /** Handle one untagged packet of the handshake; false when more bytes are needed or it ended. */
  #startup(): boolean {
    const buf = this.#buf;
    if (buf.length < 8) return false;
    const length = buf.readInt32BE(0); // includes itself
    if (length < 8 || length > MAX_STARTUP_PACKET) {
      this.#fatal('08P01', 'invalid length of startup packet');
      return false;
    }
    if (buf.length < length) return false;
    const code = buf.readInt32BE(4);
    const packet = buf.subarray(0, length);
    this.#buf = buf.subarray(length);
    switch (code) {
      case StartupCode.SSLRequest:
      case StartupCode.GSSENCRequest:
        // No TLS or GSSAPI encryption; the client goes on in cleartext on the same socket.
        this.#socket.write(messages.SSL_REFUSE);
        return true;
      case StartupCode.CancelRequest:
        // A WebAssembly backend cannot be interrupted; the server closes without a reply.
        this.destroy();
        return false;
    }
    if (code >>> 16 !== 3) {
      this.#fatal('0A000', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0`);
      return false;
    }
    // Body: pairs of cstrings (name, value), ended by an empty name.
    const params = new Map<string, string>();
    for (let pos = 8; pos < length; ) {
      const nameEnd = packet.indexOf(0, pos);
      if (nameEnd < 0 || nameEnd === pos) break;
      const valueEnd = packet.indexOf(0, nameEnd + 1);
      if (valueEnd < 0) {
        this.#fatal('08P01', 'invalid startup packet layout: expected terminator as last byte');
        return false;
      }
      params.set(packet.toString('utf8', pos, nameEnd), packet.toString('utf8', nameEnd + 1, valueEnd));
      pos = valueEnd + 1;
    }
    const user = params.get('user');
    if (!user) {
      this.#fatal('28000', 'no PostgreSQL user name specified in startup packet');
      return false;
    }
    const database = params.get('database') || user;
    if (database !== DATABASE) {
      this.#fatal('3D000', `database "${database}" does not exist`, `The demo database is "${DATABASE}".`);
      return false;
    }
    if (this.#server.broken !== null) {
      this.#fatal('57P03', this.#server.broken);
      return false;
    }
    const out: Buffer[] = [];
    const unsupported = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
    if ((code & 0xffff) !== 0 || unsupported.length > 0) out.push(messages.negotiateProtocolVersion(0, unsupported));
    out.push(
      messages.AUTH_OK,
      this.#server.settings,
      messages.parameterStatus('application_name', params.get('application_name') ?? ''),
      messages.backendKeyData(this.#id, (this.#id * 2654435761) | 0), // made up: cancel is ignored
      messages.readyForQuery(TxStatus.Idle),
    );
    this.#socket.write(Buffer.concat(out));
    this.#phase = Phase.Ready;
    return true;
  }

  /**
   * Take every whole message buffered, up to a Terminate. Unchanged frames stay as one view of
   * the input; renamed or refused ones are rebuilt. Null when no whole message is buffered.
   */
  #takeBatch(): { bytes: Buffer; terminate: boolean } | null {
    const buf = this.#buf;
    const parts: Buffer[] = [];
    let runFrom = 0; // start of the current run of unchanged frames
    let pos = 0;
    let terminate = false;
    while (buf.length - pos >= 5) {
      const tag = buf[pos]!;
      const length = buf.readInt32BE(pos + 1); // includes itself, excludes the tag
      if (length < 4 || length > MAX_MESSAGE) {
        this.#fatal('08P01', `invalid message length ${length}`);
        return null;
      }
      const end = pos + 1 + length;
      if (end > buf.length) break;
      if (tag === FrontendCode.Terminate) {
        terminate = true;
        if (runFrom < pos) parts.push(buf.subarray(runFrom, pos));
        runFrom = pos = end;
        break;
      }
      const replaced = this.#rewrite(tag, buf.subarray(pos, end));
      if (replaced !== undefined) {
        if (runFrom < pos) parts.push(buf.subarray(runFrom, pos));
        if (replaced !== null) parts.push(replaced);
        runFrom = end;
      }
      pos = end;
    }
    if (pos === 0 && !terminate) return null;
    if (runFrom < pos) parts.push(buf.subarray(runFrom, pos));
    this.#buf = pos === buf.length ? EMPTY : buf.subarray(pos);
    return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts), terminate };
  }

  /**
   * A frame that must change before reaching the shared backend: a replacement, null to drop
   * it, undefined to pass it unchanged.
   */
  #rewrite(tag: number, frame: Buffer): Buffer | null | undefined {
    switch (tag) {
      case FrontendCode.Query: {
        // Q: query cstring
        if (!COPY_FROM_STDIN.test(frame.toString('utf8', 5, frame.length - 1))) return undefined;
        return messages.query(COPY_REFUSAL);
      }
      case FrontendCode.Parse: {
        // P: statement cstring, query cstring, int16 count, int32[count] parameter types
        const nameEnd = frame.indexOf(0, 5);
        const queryEnd = frame.indexOf(0, nameEnd + 1);
        if (nameEnd < 0 || queryEnd < 0) return undefined; // malformed: the backend reports it
        const refused = COPY_FROM_STDIN.test(frame.toString('utf8', nameEnd + 1, queryEnd));
        if (nameEnd === 5 && !refused) return undefined;
        const name = frame.toString('utf8', 5, nameEnd);
        if (name !== '') this.#statements.add(name);
        return reframe(tag, [
          this.#statementName(name),
          refused ? Buffer.from(COPY_REFUSAL) : frame.subarray(nameEnd + 1, queryEnd),
          NUL,
          frame.subarray(queryEnd + 1),
        ]);
      }
      case FrontendCode.Bind: {
        // B: portal cstring, statement cstring, then formats and values
        const portalEnd = frame.indexOf(0, 5);
        const nameEnd = frame.indexOf(0, portalEnd + 1);
        if (portalEnd < 0 || nameEnd < 0 || nameEnd === portalEnd + 1) return undefined;
        const name = frame.toString('utf8', portalEnd + 1, nameEnd);
        return reframe(tag, [frame.subarray(5, portalEnd + 1), this.#statementName(name), frame.subarray(nameEnd + 1)]);
      }
      case FrontendCode.Describe:
      case FrontendCode.Close: {
        // D / C: 'S' (statement) or 'P' (portal), name cstring. Portals are not renamed: they
        // end with their transaction, which holds the backend.
        if (frame.length < 7 || frame[5] !== 0x53 || frame[6] === 0) return undefined;
        const nameEnd = frame.indexOf(0, 6);
        if (nameEnd < 0) return undefined;
        const name = frame.toString('utf8', 6, nameEnd);
        if (tag === FrontendCode.Close) this.#statements.delete(name);
        return reframe(tag, [frame.subarray(5, 6), this.#statementName(name), frame.subarray(nameEnd + 1)]);
      }
      case FrontendCode.CopyData:
      case FrontendCode.CopyDone:
      case FrontendCode.CopyFail:
        // Only meaningful during COPY FROM STDIN, which is refused; PostgreSQL ignores them too.
        return null;
      default:
        return undefined;
    }
  }

  /** The backend's name for a client's statement name (cstring, NUL included). */
  #statementName(name: string): Buffer {
    return Buffer.from(name === '' ? '\0' : `${this.#prefix}${name}\0`);
  }

  /** Run messages in this connection's turn, send the output, give the turn up once idle. */
  async #run(bytes: Buffer): Promise<void> {
    const fresh = !this.#holding;
    if (!(await this.#take())) return;
    if (this.#phase === Phase.Closed) return; // gone while waiting; cleanup releases the turn
    let out: Uint8Array;
    try {
      out = await this.#server.exec(bytes);
    } catch (err) {
      this.#fatal('XX000', errorText(err));
      return;
    }
    if (out.length > 0 && !this.#socket.destroyed) this.#socket.write(out);
    // No output from an idle start (a lone Flush, dropped COPY messages): still idle.
    if (endsIdle(out) || (fresh && out.length === 0)) this.#give();
  }

  /** Own the turn (already owned: no wait). False when the connection or server went away. */
  async #take(): Promise<boolean> {
    if (this.#holding) return true;
    if (this.#server.stopping) return false;
    if (!(await this.#server.turn.acquire(this))) return false;
    this.#holding = true;
    return true;
  }

  #give(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.#server.turn.release(this);
  }

  /**
   * After the client left: end its unfinished batch, roll back its transaction and close its
   * prepared statements, so the next connection finds the backend idle.
   */
  async #cleanup(): Promise<void> {
    const server = this.#server;
    if (server.stopping || server.broken !== null || (!this.#holding && this.#statements.size === 0)) {
      this.#give();
      return;
    }
    if (!this.#holding && !(await this.#take())) return;
    try {
      // Sync ends a batch (and the skipping after an error); its ReadyForQuery says whether a
      // transaction is open.
      let out = await server.exec(SYNC);
      if (!endsIdle(out)) out = await server.exec(messages.query('ROLLBACK'));
      if (this.#statements.size > 0) {
        const frames: Buffer[] = [];
        for (const name of this.#statements) {
          frames.push(reframe(FrontendCode.Close, [Buffer.from('S'), this.#statementName(name)]));
        }
        frames.push(SYNC);
        this.#statements.clear();
        await server.exec(Buffer.concat(frames));
      }
    } catch {
      // exec already logged a failed backend
    } finally {
      this.#give();
    }
  }

  /** Send a FATAL ErrorResponse and close, as the server does for handshake failures. */
  #fatal(code: string, message: string, hint?: string): void {
    if (!this.#socket.destroyed) {
      this.#socket.end(messages.errorResponse(hint === undefined ? { severity: 'FATAL', code, message } : { severity: 'FATAL', code, message, hint }));
    }
    this.#phase = Phase.Closed;
    this.#buf = EMPTY;
  }
}

/** A frontend message from its tag and body parts; the length is computed. */
function reframe(tag: number, body: readonly Buffer[]): Buffer {
  let n = 0;
  for (const b of body) n += b.length;
  const out = Buffer.allocUnsafe(5 + n);
  out[0] = tag;
  out.writeInt32BE(4 + n, 1);
  let pos = 5;
  for (const b of body) pos += b.copy(out, pos);
  return out;
}

/**
 * Whether backend output ends with ReadyForQuery 'I': nothing left of a batch or transaction,
 * so another connection may run. Walks the frame headers (output is always whole frames).
 */
function endsIdle(out: Uint8Array): boolean {
  let last = -1;
  for (let pos = 0; pos + 5 <= out.length; ) {
    last = pos;
    const length = ((out[pos + 1]! << 24) | (out[pos + 2]! << 16) | (out[pos + 3]! << 8) | out[pos + 4]!) >>> 0;
    pos += 1 + length;
  }
  return last >= 0 && out[last] === BackendCode.ReadyForQuery && out[last + 5] === TxStatus.Idle && last + 6 === out.length;
}
