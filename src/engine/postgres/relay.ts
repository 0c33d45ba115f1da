/**
 * One proxied PostgreSQL session after the handshake: two FrameScanners (client -> upstream and
 * upstream -> client) and the bookkeeping that maps wire messages to the pipeline's statement
 * events.
 *
 * Response accounting: every message forwarded upstream that the server answers pushes an
 * expectation (Parse -> ParseComplete, Bind -> BindComplete, Describe -> description, Execute ->
 * completion, Close -> CloseComplete, Sync/Query/FunctionCall -> ReadyForQuery). Server messages
 * are matched to the head expectation, so Gatehouse always knows which client message a response
 * answers, can inject messages of its own (their responses are dropped) and knows when the
 * server has answered everything ("quiet"). After an error in the extended protocol the server
 * skips to the next Sync; so do the expectations.
 *
 * Refusals keep the server's own semantics: a denied Query, Parse or FunctionCall is replaced by
 * a statement the server rejects at parse time, and that error is rewritten into the refusal. So
 * the refusal arrives exactly where the server would report an error, the server itself skips to
 * the next Sync, and the transaction state (implicit transaction rolled back, explicit one
 * failed) is the server's, never emulated.
 *
 * Affected-rows circuit breaker: an UPDATE/DELETE/MERGE under a row cap runs inside a transaction
 * (autocommit) or a savepoint (client transaction) that Gatehouse opens; when its command tag
 * reports more rows than the cap, Gatehouse rolls back and refuses, so nothing changed and a
 * client transaction stays usable.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { RepeatDecoder } from '../../bytes.js';
import { AccessDenied, GatehouseError, ProtocolViolation, ShuttingDown, UpstreamLost } from '../../errors.js';
import {
  BackendCode,
  BufferReader,
  BufferWriter,
  commandRows,
  DROP,
  errorCode,
  FORWARD,
  rewriteErrorText,
  FrameScanner,
  FrontendCode,
  PAUSE,
  ProtocolError,
  TxStatus,
  messages,
  type FrameHandler,
  type FrameVerdict,
} from '../../protocol/postgres/index.js';
import type { Pipeline } from '../../session/pipeline.js';
import { ALLOW, permits, type Decision, type Execution, type ResultColumn, type RowTransform, type SessionInfo, type Statement } from '../../session/types.js';
import { RowRewriter } from './row-rewriter.js';
import { readInto, SocketWriter } from './socket-io.js';

/** Largest frame accepted when only passed through (PostgreSQL's own MaxAllocSize). */
const MAX_FRAME = 0x3fffffff;

/** A per-process token: statements carrying it fail to parse; errors naming it are ours. */
const DENY_TOKEN = `gatehouse_refused_${randomBytes(6).toString('hex')}`;

/** An Execute of a portal no client can have made (its name carries the deny token). */
const REFUSED_EXECUTE = new BufferWriter().begin(FrontendCode.Execute).cstring(`${DENY_TOKEN}_portal`).int32(0).close().flush();

/**
 * The verdict for a DataRow rewritten into the relay's arena: a marker the upstream handler's
 * `emit` knows, so a row costs no Buffer of its own (the range is the row rewriter's rowFrom/rowTo).
 */
const ARENA_ROW = Buffer.alloc(0);

/** Savepoint name used by the row-cap breaker inside client transactions. */
const CAP_SAVEPOINT = 'gatehouse_row_cap';

/** Whether an ErrorResponse body has severity FATAL or PANIC ('V' field, never localized). */
function isFatal(frame: Buffer, start: number, end: number): boolean {
  let p = start;
  while (p < end && frame[p] !== 0) {
    const type = frame[p]!;
    const nul = frame.indexOf(0, p + 1);
    if (nul < 0 || nul >= end) return false;
    if (type === 0x56 /* 'V' */) return frame.toString('latin1', p + 1, nul) !== 'ERROR';
    p = nul + 1;
  }
  return false;
}

/** What a forwarded message expects from the server. */
const enum Exp {
  Parse = 1,
  Bind,
  Describe,
  Execute,
  Close,
  Sync,
  /** A simple Query: answered up to its ReadyForQuery. */
  Query,
  /** A FunctionCall: FunctionCallResponse then ReadyForQuery. */
  Call,
}

interface PendingExecution extends Execution {
  /** DataRows seen (used when the command tag has no row count). */
  dataRows: number;
}

interface Expectation {
  readonly kind: Exp;
  /** Sent by Gatehouse: its responses are dropped (errors are still shown). */
  readonly injected: boolean;
  readonly exec: PendingExecution | null;
  /** A substituted (refused) message: its ErrorResponse becomes this refusal. */
  readonly refusal: Buffer | null;
  /** The ReadyForQuery of this injected message goes to the client (breaker finalizer). */
  readonly forwardReady: boolean;
  /** Row cap of this Execute/Query, if any. */
  readonly cap: CapRun | null;
  /** Rows of this Execute/Query go through the pipeline's result phase (masking). */
  readonly result: ResultState | null;
  /** Describe of a portal: its name (the description is kept for the portal's Executes). */
  readonly describes: string | null;
}

/** The result phase of one Execute/Query: columns and the row transform chosen for them. */
interface ResultState {
  /** Execute: the portal whose description gives the columns; null for a simple Query. */
  readonly portal: string | null;
  /** Columns of the current result set (a Query's RowDescription, or the portal's description). */
  columns: ResultColumn[] | null;
  /** The transform for the current result set; undefined until chosen at its first DataRow. */
  transform: RowTransform | null | undefined;
}

/** One run of the affected-rows breaker. */
interface CapRun {
  readonly limit: number;
  readonly ruleId: string;
  readonly refusal: Buffer;
  /** autocommit: Gatehouse opened a transaction; savepoint: inside the client's transaction. */
  readonly mode: 'autocommit' | 'savepoint';
  tripped: boolean;
  errored: boolean;
}

export interface RelayOptions {
  readonly session: SessionInfo;
  readonly pipeline: Pipeline;
  readonly client: Socket;
  readonly upstream: Socket;
  readonly maxMessageBytes: number;
  readonly logger: Logger;
  /** Bytes counters for metrics, bumped per chunk. */
  readonly onBytes?: (fromClient: number, fromUpstream: number) => void;
  readonly onClose: (reason: string) => void;
}

const UNNAMED_STATEMENT: Statement = { text: '', protocol: 'extended', name: '', decision: ALLOW };

function expectation(kind: Exp, exec: PendingExecution | null = null, injected = false): Expectation {
  return { kind, injected, exec, refusal: null, forwardReady: false, cap: null, result: null, describes: null };
}

/** The expectations of a client's Parse, Bind, Describe, Close and Sync: no state of their own, so shared. */
const EXPECT_PARSE = Object.freeze(expectation(Exp.Parse));
const EXPECT_BIND = Object.freeze(expectation(Exp.Bind));
const EXPECT_DESCRIBE = Object.freeze(expectation(Exp.Describe));
const EXPECT_CLOSE = Object.freeze(expectation(Exp.Close));
const EXPECT_SYNC = Object.freeze(expectation(Exp.Sync));

/** Whether a statement's result rows are rewritten (a masking decision). */
const rewritesRows = (s: Statement): boolean => s.decision.masks !== undefined;

/**
 * Bytes read at a time from a client (each session keeps one such buffer, and one of
 * READ_BUFFER_BYTES for its upstream, whose results are larger): statements are small, and a
 * large COPY FROM STDIN only takes more reads.
 */
const CLIENT_READ_BYTES = 16 * 1024;

/** Tags of the upstream frames the relay inspects in pass-through. */
const UPSTREAM_HELD = [
  BackendCode.ParseComplete,
  BackendCode.BindComplete,
  BackendCode.CloseComplete,
  BackendCode.NoData,
  BackendCode.ParameterDescription,
  BackendCode.RowDescription,
  BackendCode.CommandComplete,
  BackendCode.EmptyQueryResponse,
  BackendCode.PortalSuspended,
  BackendCode.ErrorResponse,
  BackendCode.ReadyForQuery,
  BackendCode.ParameterStatus,
  BackendCode.FunctionCallResponse,
];

export class PgRelay {
  readonly session: SessionInfo;
  readonly #pipeline: Pipeline;
  /** Replaced in `start` by the wrappers that read straight into the relay's buffers. */
  #client: Socket;
  #upstream: Socket;
  /** Every write of the relay goes through these (replaced in `start` with the sockets). */
  #toClient: SocketWriter;
  #toUpstream: SocketWriter;
  readonly #log: Logger;
  readonly #onBytes: ((c: number, u: number) => void) | undefined;
  readonly #onClose: (reason: string) => void;
  readonly #fromClient: FrameScanner;
  readonly #fromUpstream: FrameScanner;
  readonly #reader = new BufferReader();

  /** Prepared statements and portals by name, as the server holds them. */
  readonly #statements = new Map<string, Statement>();
  readonly #portals = new Map<string, Statement>();
  /** What the server still owes, in order. */
  #expect: Expectation[] = [];
  /** Transaction state as of the last message the server answered (tags and ReadyForQuery). */
  #txNow: 'I' | 'T' | 'E' = 'I';
  /** The server reported an error in the current extended-protocol segment (skipping to Sync). */
  #segmentFailed = false;
  /** Portal descriptions (Describe P answers), for the result phase of their Executes. */
  readonly #portalColumns = new Map<string, ResultColumn[]>();
  /** Portals the client asked to describe since their Bind (the answer may still be on its way). */
  readonly #describedPortals = new Set<string>();
  #closed = false;
  #terminating = false;
  #draining = false;
  /** Reasons the client socket is paused: 1 = decision or breaker pending, 2 = upstream backpressure. */
  #clientPause = 0;
  /** Reasons the upstream socket is paused: 1 = client backpressure, 2 = a row transform is being chosen. */
  #upstreamPause = 0;
  /** The upstream already told the client why it is closing (FATAL ErrorResponse relayed). */
  #upstreamSentFatal = false;
  /** Run when the server has answered everything sent so far. */
  #onQuiet: (() => void) | null = null;
  /** Breaker: drop the rest of the current simple query's responses up to its ReadyForQuery. */
  #dropUntilReady = false;
  /** Breaker (extended): the client's messages until Sync are skipped, as after a server error. */
  #skipUntilSync = false;
  /** Breaker (extended, autocommit): finish Gatehouse's transaction at the client's next Sync. */
  #finishAtSync: 'commit' | 'rollback' | null = null;
  /** The client stream is held until the breaker's finalizer is answered. */
  #holdUntilReady = false;

  constructor(opts: RelayOptions) {
    this.session = opts.session;
    this.#pipeline = opts.pipeline;
    this.#client = opts.client;
    this.#upstream = opts.upstream;
    this.#toClient = new SocketWriter(opts.client, this.#onClientDrain);
    this.#toUpstream = new SocketWriter(opts.upstream, this.#onUpstreamDrain);
    this.#log = opts.logger;
    this.#onBytes = opts.onBytes;
    this.#onClose = opts.onClose;

    const limits = { maxFrame: MAX_FRAME, maxHeld: opts.maxMessageBytes };
    this.#fromClient = new FrameScanner(this.#clientHandler, limits);
    // Every message the server answers is held (to account for it); CopyData and Flush pass.
    for (const t of [
      FrontendCode.Query,
      FrontendCode.Parse,
      FrontendCode.Bind,
      FrontendCode.Describe,
      FrontendCode.Execute,
      FrontendCode.Close,
      FrontendCode.Sync,
      FrontendCode.Terminate,
      FrontendCode.FunctionCall,
    ]) {
      this.#fromClient.held[t] = 1;
    }
    this.#fromUpstream = new FrameScanner(this.#upstreamHandler, limits);
    for (const t of UPSTREAM_HELD) this.#fromUpstream.held[t] = 1;
  }

  /** Start relaying; `clientBytes`/`upstreamBytes` arrived during the handshake. */
  start(clientBytes: Buffer, upstreamBytes: Buffer): void {
    // A chunk read is still referenced after its turn while its frames wait (a paused stream, a
    // decision or breaker pending) or a write of it is queued: its buffer then is not read into again.
    const [client, upstream] = [this.#client, this.#upstream];
    const c = (this.#client = readInto(client, this.#onClientData, () => this.#clientPause !== 0 || this.#fromClient.paused || this.#toUpstream.busy, CLIENT_READ_BYTES));
    const u = (this.#upstream = readInto(upstream, this.#onUpstreamData, () => this.#upstreamPause !== 0 || this.#fromUpstream.paused || this.#toClient.busy));
    // A socket that kept its wrapper (TLS, a write still queued) keeps its writer and its one drain listener.
    if (c !== client) this.#toClient = new SocketWriter(c, this.#onClientDrain);
    if (u !== upstream) this.#toUpstream = new SocketWriter(u, this.#onUpstreamDrain);
    c.on('error', (err) => this.#close(`client error: ${err.message}`));
    u.on('error', (err) => this.#upstreamGone(err.message));
    c.on('close', () => this.#close('client disconnected'));
    u.on('close', () => this.#upstreamGone('upstream closed the connection'));
    if (upstreamBytes.length > 0) this.#onUpstreamData(upstreamBytes);
    if (clientBytes.length > 0) this.#onClientData(clientBytes);
  }

  /** Finish in-flight work, then close with 57P01 (SIGTERM). */
  drain(): void {
    this.#draining = true;
    this.#closeIfIdle();
  }

  /** Close now, telling the client why. */
  terminate(error: GatehouseError): void {
    if (this.#closed) return;
    this.#flushOut();
    this.#releaseHeld();
    if (this.#fromUpstream.atBoundary) this.#toClient.write(messages.errorResponse({ severity: 'FATAL', code: error.sqlstate, message: error.message }));
    this.#close(error.message);
  }

  /**
   * Send the client a NoticeResponse now if no server message is half forwarded, else as soon as
   * one is complete (asynchronous messages may come between any two messages).
   */
  notice(n: { readonly message: string; readonly detail?: string; readonly hint?: string }): void {
    const frame = messages.noticeResponse({ severity: 'NOTICE', code: '00000', message: n.message, detail: n.detail, hint: n.hint });
    const send = (): void => {
      if (this.#closed) return;
      if (!this.#fromUpstream.atBoundary) return void setImmediate(send);
      this.#flushOut();
      this.#writeClient(frame);
    };
    send();
  }

  get idle(): boolean {
    return this.#expect.length === 0 && this.session.txState === 'idle' && !this.#fromClient.paused;
  }

  // ---- client -> upstream -------------------------------------------------------------------

  readonly #onClientData = (chunk: Buffer): void => {
    this.#onBytes?.(chunk.length, 0);
    try {
      this.#fromClient.push(chunk);
    } catch (err) {
      this.#protocolError(err);
    }
  };

  #writeUpstream(chunk: Buffer): void {
    if (!this.#toUpstream.write(chunk) && (this.#clientPause & 2) === 0) {
      this.#clientPause |= 2;
      this.#client.pause();
    }
  }

  readonly #clientHandler: FrameHandler = {
    onFrame: (tag, frame, start, end) => this.#onClientFrame(tag, frame, start, end),
    onPassed: () => {},
    emit: (chunk) => this.#writeUpstream(chunk),
  };

  readonly #onUpstreamDrain = (): void => {
    if ((this.#clientPause & 2) === 0) return;
    this.#clientPause &= ~2;
    if (this.#clientPause === 0) this.#client.resume();
  };

  /** Where the string the last #cstringAt read ends (past its NUL). */
  #after = 0;

  /** The NUL-terminated string at frame[at] (through `repeats` when it tends to repeat); `#after` is set past it. */
  #cstringAt(frame: Buffer, at: number, end: number, repeats?: RepeatDecoder): string {
    if (at >= end) throw new ProtocolError('message is shorter than its contents require');
    if (frame[at] === 0) {
      this.#after = at + 1;
      return '';
    }
    const nul = frame.indexOf(0, at);
    if (nul < 0 || nul >= end) throw new ProtocolError('string is not NUL-terminated');
    this.#after = nul + 1;
    return repeats !== undefined ? repeats.decode(frame, at, nul) : frame.toString('utf8', at, nul);
  }

  #onClientFrame(tag: number, frame: Buffer, start: number, end: number): FrameVerdict {
    const body = start + 5;
    if (this.#skipUntilSync && tag !== FrontendCode.Sync && tag !== FrontendCode.Terminate) return DROP;
    switch (tag) {
      case FrontendCode.Query: {
        const text = this.#cstringAt(frame, body, end, this.#queryTexts);
        return this.#submit({ text, protocol: 'simple', name: '', decision: ALLOW }, frame, start, end);
      }
      case FrontendCode.Parse: {
        const name = this.#cstringAt(frame, body, end);
        const text = this.#cstringAt(frame, this.#after, end, this.#queryTexts);
        return this.#submit({ text, protocol: 'extended', name, decision: ALLOW }, frame, start, end);
      }
      case FrontendCode.FunctionCall: {
        // Fastpath call (libpq large objects): decided like any statement so it cannot bypass policy.
        if (end - body < 4) throw new ProtocolError('message is shorter than its contents require');
        const oid = frame.readUInt32BE(body);
        return this.#submit({ text: `-- fastpath function call, function oid ${oid}`, protocol: 'fastpath', name: '', decision: ALLOW }, frame, start, end);
      }
      case FrontendCode.Bind: {
        const portal = this.#cstringAt(frame, body, end);
        const name = this.#cstringAt(frame, this.#after, end, this.#bound);
        this.#portals.set(portal, this.#statements.get(name) ?? UNNAMED_STATEMENT);
        this.#portalColumns.delete(portal); // described anew after each Bind
        this.#describedPortals.delete(portal);
        this.#expect.push(EXPECT_BIND);
        return FORWARD;
      }
      case FrontendCode.Execute: {
        const portal = this.#cstringAt(frame, body, end);
        const statement = this.#portals.get(portal) ?? UNNAMED_STATEMENT;
        const admit = this.#pipeline.admit;
        if (admit !== null && permits(statement.decision)) {
          let wait: Promise<Decision | undefined> | undefined;
          try {
            wait = admit(this.session, statement);
          } catch (err) {
            wait = Promise.resolve(this.#internalDenial(err));
          }
          if (wait !== undefined) return this.#executeWhenAdmitted(statement, frame.subarray(start, end), portal, wait);
        }
        return this.#execute(statement, frame, start, end, portal);
      }
      case FrontendCode.Describe: {
        const kind = frame[body];
        const name = this.#cstringAt(frame, body + 1, end);
        // Keep the answer only for a portal whose rows go through the result phase (decided now,
        // in client order: the portal may be bound again before the answer arrives).
        const keep = kind === 0x50 /* 'P' */ && this.#describesRows(name);
        if (keep) this.#describedPortals.add(name);
        this.#expect.push(keep ? { ...expectation(Exp.Describe), describes: name } : EXPECT_DESCRIBE);
        return FORWARD;
      }
      case FrontendCode.Close: {
        const kind = frame[body];
        const name = this.#cstringAt(frame, body + 1, end);
        if (kind === 0x53 /* 'S' */) this.#statements.delete(name);
        else {
          this.#portals.delete(name);
          this.#portalColumns.delete(name);
          this.#describedPortals.delete(name);
        }
        this.#expect.push(EXPECT_CLOSE);
        return FORWARD;
      }
      case FrontendCode.Sync:
        this.#skipUntilSync = false;
        this.#expect.push(EXPECT_SYNC);
        if (this.#finishAtSync !== null) {
          // Breaker (extended, autocommit): hold the client until Gatehouse's transaction is finished.
          this.#holdUntilReady = true;
          const sync = frame.subarray(start, end);
          queueMicrotask(() => this.#writeUpstream(sync)); // after the frames before it are emitted
          this.#pauseClient();
          return PAUSE;
        }
        return FORWARD;
      case FrontendCode.Terminate:
        this.#terminating = true;
        return FORWARD;
      default:
        return FORWARD;
    }
  }

  /** Forward an admitted Execute (under the breaker when capped). */
  #execute(statement: Statement, frame: Buffer, start: number, end: number, portal: string): FrameVerdict {
    if (statement.decision.rowCap !== undefined) return this.#cappedExecute(statement, frame.subarray(start, end), portal);
    const describe = this.#describeFor(statement, portal);
    this.#expect.push(this.#expectRows(Exp.Execute, this.#execution(statement), portal));
    return describe === null ? FORWARD : Buffer.concat([describe, frame.subarray(start, end)]);
  }

  /**
   * The result phase needs the columns of a portal the client executes without describing it
   * (drivers that cache descriptions): Gatehouse asks for them itself, just before the Execute,
   * and keeps the answer from the client.
   */
  #describeFor(statement: Statement, portal: string): Buffer | null {
    if (this.#pipeline.result === null || !rewritesRows(statement) || this.#portalColumns.has(portal) || this.#describedPortals.has(portal)) return null;
    this.#describedPortals.add(portal);
    this.#expect.push({ ...expectation(Exp.Describe, null, true), describes: portal });
    return Buffer.from(DESCRIBE_WRITER.begin(FrontendCode.Describe).byte(0x50 /* 'P' */).cstring(portal).close().flush());
  }

  /**
   * Hold an Execute until the pipeline admits it (e.g. its audit record is durable). A refusal
   * replaces it with an Execute of a portal that cannot exist, whose error becomes the refusal:
   * the server then skips to Sync as it would after any failed Execute.
   */
  #executeWhenAdmitted(statement: Statement, view: Buffer, portal: string, wait: Promise<Decision | undefined>): FrameVerdict {
    this.#pauseClient();
    wait
      .catch((err: unknown) => this.#internalDenial(err))
      .then((refusal) => {
        if (this.#closed) return;
        let out: FrameVerdict;
        if (refusal === undefined || permits(refusal)) out = this.#execute(statement, view, 0, view.length, portal);
        else {
          const refused: Statement = { ...statement, decision: refusal };
          const exec = this.#execution(refused);
          exec.refusedBy = refusal.ruleId ?? 'default';
          this.#expect.push({ ...expectation(Exp.Execute, exec), refusal: this.#refusalFor(refusal) });
          out = REFUSED_EXECUTE;
        }
        if (out !== PAUSE) this.#resumeClient(out === FORWARD ? view : out === DROP ? null : out);
      });
    return PAUSE;
  }

  #execution(statement: Statement): PendingExecution {
    return { statement, startedAt: performance.now(), rows: 0, command: '', sqlstate: undefined, refusedBy: undefined, durationMs: 0, dataRows: 0 };
  }

  #pauseClient(): void {
    this.#clientPause |= 1;
    this.#client.pause();
  }

  /** Continue the client stream after PAUSE; `out` replaces the held frame. */
  #resumeClient(out: Buffer | null): void {
    this.#clientPause &= ~1;
    if (this.#clientPause === 0) this.#client.resume();
    try {
      this.#fromClient.resume(out);
    } catch (err) {
      this.#protocolError(err);
    }
  }

  /** Decide on a Query, Parse or FunctionCall, then forward it or its refusal. */
  #submit(statement: Statement, frame: Buffer, start: number, end: number): FrameVerdict {
    const decide = this.#pipeline.decide;
    if (decide === null) return this.#apply(statement, statement.decision, frame, start, end, false);
    let d: Decision | Promise<Decision>;
    try {
      d = decide(this.session, statement);
    } catch (err) {
      d = this.#internalDenial(err);
    }
    if (!(d instanceof Promise)) return this.#apply(statement, d, frame, start, end, false);
    // Asynchronous decision: hold the client stream (and the socket) until it settles.
    const view = frame.subarray(start, end);
    this.#pauseClient();
    d.catch((err: unknown) => this.#internalDenial(err)).then((decision) => {
      if (this.#closed) return;
      const out = this.#apply(statement, decision, view, 0, view.length, true);
      if (out !== PAUSE) this.#resumeClient(out === FORWARD ? view : out === DROP ? null : out);
    });
    return PAUSE;
  }

  #internalDenial(err: unknown): Decision {
    this.#log.error({ err, session: this.session.id }, 'statement pipeline failed; refusing the statement');
    return { action: 'deny', ruleId: 'gatehouse.internal-error', message: 'Gatehouse could not evaluate this statement', sqlstate: 'XX000' };
  }

  #refusalFor(decision: Decision): Buffer {
    const refusal = new AccessDenied(`${decision.message ?? 'refused by policy'} (rule ${decision.ruleId ?? 'default'})`);
    return messages.errorResponse({
      severity: 'ERROR',
      code: decision.sqlstate ?? refusal.sqlstate,
      message: refusal.message,
      detail: `Refused by Gatehouse rule "${decision.ruleId ?? 'default'}".`,
      hint: decision.hint,
    });
  }

  /**
   * Forward an allowed statement (`view` is its frame) or its refusal. `paused` tells whether the
   * client stream is already paused (asynchronous decision). Returns the scanner verdict.
   */
  #apply(statement: Statement, decision: Decision, frame: Buffer, start: number, end: number, paused: boolean): FrameVerdict {
    statement.decision = decision;
    const kind = statement.protocol === 'simple' ? Exp.Query : statement.protocol === 'fastpath' ? Exp.Call : Exp.Parse;
    if (permits(decision)) {
      if (kind === Exp.Parse) {
        this.#statements.set(statement.name, statement);
        this.#expect.push(EXPECT_PARSE);
        return FORWARD;
      }
      if (kind === Exp.Query && decision.rowCap !== undefined) return this.#cappedQuery(statement, frame.subarray(start, end), paused);
      this.#expect.push(this.#expectRows(kind, this.#execution(statement), null));
      return FORWARD;
    }
    // Refused: send a statement that fails at parse time, and rewrite its error.
    const marker = `${DENY_TOKEN}_${statement.protocol}`;
    // Every refusal is an execution of its own (logged, counted, audited), Parse included.
    const exec = this.#execution(statement);
    exec.refusedBy = decision.ruleId ?? 'default';
    const e: Expectation = { ...expectation(kind, exec), refusal: this.#refusalFor(decision) };
    this.#expect.push(e);
    if (kind !== Exp.Parse) return messages.query(marker);
    // Kept for labelling its executions; the server will not have it.
    this.#statements.set(statement.name, statement);
    return messages.parse(statement.name, marker);
  }

  // ---- affected-rows circuit breaker --------------------------------------------------------

  /** Run `fn` once the server has answered everything sent so far (asking it to flush). */
  #whenQuiet(fn: () => void): void {
    // Deferred: called from onFrame, before the scanner has emitted the frames preceding this one
    // and registered the PAUSE; a microtask runs after both.
    queueMicrotask(() => {
      if (this.#closed) return;
      if (this.#expect.length === 0) return fn();
      this.#onQuiet = fn;
      this.#writeUpstream(FLUSH);
    });
  }

  #cappedQuery(statement: Statement, view: Buffer, paused: boolean): FrameVerdict {
    const cap = statement.decision.rowCap!;
    if (!paused) this.#pauseClient();
    this.#whenQuiet(() => {
      const exec = this.#execution(statement);
      if (this.#txNow === 'E') {
        // The server will refuse it anyway (transaction aborted): no breaker needed.
        this.#expect.push(this.#expectRows(Exp.Query, exec, null));
        this.#writeUpstream(view);
        return this.#resumeClient(null);
      }
      const mode = this.#txNow === 'T' ? 'savepoint' : 'autocommit';
      const run: CapRun = { limit: cap.limit, ruleId: cap.ruleId, refusal: this.#refusalFor({ action: 'deny', ruleId: cap.ruleId, message: cap.message }), mode, tripped: false, errored: false };
      this.#expect.push(expectation(Exp.Query, null, true));
      this.#writeUpstream(messages.query(mode === 'autocommit' ? 'BEGIN' : `SAVEPOINT ${CAP_SAVEPOINT}`));
      this.#expect.push(this.#expectRows(Exp.Query, exec, null, { cap: run }));
      this.#writeUpstream(view);
      // The client stream stays held until the finalizer's ReadyForQuery.
    });
    return PAUSE;
  }

  #cappedExecute(statement: Statement, view: Buffer, portal: string): FrameVerdict {
    const cap = statement.decision.rowCap!;
    this.#pauseClient();
    this.#whenQuiet(() => {
      const exec = this.#execution(statement);
      if (this.#segmentFailed || this.#txNow === 'E') {
        const describe = this.#describeFor(statement, portal);
        if (describe !== null) this.#writeUpstream(describe);
        this.#expect.push(this.#expectRows(Exp.Execute, exec, portal));
        this.#writeUpstream(view);
        return this.#resumeClient(null);
      }
      const mode = this.#txNow === 'T' ? 'savepoint' : 'autocommit';
      const run: CapRun = { limit: cap.limit, ruleId: cap.ruleId, refusal: this.#refusalFor({ action: 'deny', ruleId: cap.ruleId, message: cap.message }), mode, tripped: false, errored: false };
      this.#inject(mode === 'autocommit' ? 'BEGIN' : `SAVEPOINT ${CAP_SAVEPOINT}`);
      const describe = this.#describeFor(statement, portal);
      if (describe !== null) this.#writeUpstream(describe);
      this.#expect.push(this.#expectRows(Exp.Execute, exec, portal, { cap: run }));
      this.#writeUpstream(view);
      this.#writeUpstream(FLUSH);
    });
    return PAUSE;
  }

  /** Send one utility statement through the extended protocol on Gatehouse's own named objects. */
  #inject(sql: string): void {
    const w = INJECT_WRITER;
    w.begin(FrontendCode.Parse).cstring(INJECT_NAME).cstring(sql).int16(0).close();
    w.begin(FrontendCode.Bind).cstring(INJECT_NAME).cstring(INJECT_NAME).int16(0).int16(0).int16(0).close();
    w.begin(FrontendCode.Execute).cstring(INJECT_NAME).int32(0).close();
    // Named portals live until the transaction ends: close both objects right away.
    w.begin(FrontendCode.Close).byte(0x50 /* 'P' */).cstring(INJECT_NAME).close();
    w.begin(FrontendCode.Close).byte(0x53 /* 'S' */).cstring(INJECT_NAME).close();
    for (const k of [Exp.Parse, Exp.Bind, Exp.Execute, Exp.Close, Exp.Close]) this.#expect.push(expectation(k, null, true));
    this.#writeUpstream(w.flush());
  }

  /** A capped Execute completed (CommandComplete, PortalSuspended or error). */
  #capDone(run: CapRun, rows: number, suspended: boolean): Buffer | null {
    let out: Buffer | null = null;
    if (!run.errored && (rows > run.limit || suspended)) {
      run.tripped = true;
      out = run.refusal;
      this.#skipUntilSync = true;
      if (run.mode === 'savepoint' && this.#finishAtSync === null) {
        // The client's own transaction: undo just this statement and keep it usable.
        this.#inject(`ROLLBACK TO SAVEPOINT ${CAP_SAVEPOINT}`);
        this.#inject(`RELEASE SAVEPOINT ${CAP_SAVEPOINT}`);
      } else {
        // Gatehouse's transaction (possibly opened by an earlier capped statement of this Sync
        // batch): roll back the whole batch, as the server does with an implicit transaction.
        this.#finishAtSync = 'rollback';
      }
    } else if (run.errored) {
      if (run.mode === 'autocommit' || this.#finishAtSync !== null) this.#finishAtSync = 'rollback';
    } else if (run.mode === 'savepoint') {
      this.#inject(`RELEASE SAVEPOINT ${CAP_SAVEPOINT}`);
    } else if (this.#finishAtSync === null) {
      this.#finishAtSync = 'commit';
    }
    this.#resumeClient(null);
    return out;
  }

  /** The ReadyForQuery of a capped simple Query: finish the transaction or savepoint. */
  #capFinishQuery(run: CapRun, status: number): boolean {
    let sql: string | null = null;
    if (run.mode === 'autocommit') {
      if (status !== TxStatus.Idle) sql = run.tripped || status === TxStatus.Failed ? 'ROLLBACK' : 'COMMIT';
    } else if (run.tripped) sql = `ROLLBACK TO SAVEPOINT ${CAP_SAVEPOINT}; RELEASE SAVEPOINT ${CAP_SAVEPOINT}`;
    else if (status === TxStatus.InTransaction) sql = `RELEASE SAVEPOINT ${CAP_SAVEPOINT}`;
    if (sql === null) return false;
    this.#expect.push({ ...expectation(Exp.Query, null, true), forwardReady: true });
    this.#holdUntilReady = true;
    this.#writeUpstream(messages.query(sql));
    return true;
  }

  // ---- upstream -> client -------------------------------------------------------------------

  readonly #onUpstreamData = (chunk: Buffer): void => {
    this.#onBytes?.(0, chunk.length);
    this.#scanning = true;
    try {
      this.#fromUpstream.push(chunk);
    } catch (err) {
      this.#log.error({ err, session: this.session.id }, 'upstream sent an invalid message; closing the session');
      this.terminate(new UpstreamLost('upstream sent an invalid message'));
    } finally {
      this.#flushOut();
      this.#scanning = false;
      this.#releaseHeld();
    }
  };

  readonly #upstreamHandler: FrameHandler = {
    onFrame: (tag, frame, start, end) => {
      const v = this.#onUpstreamFrame(tag, frame, start, end);
      if (this.#onQuiet !== null && this.#expect.length === 0) {
        const fn = this.#onQuiet;
        this.#onQuiet = null;
        fn();
      }
      return v;
    },
    onPassed: (tag) => {
      if (tag === BackendCode.DataRow) {
        const exec = this.#expect[0]?.exec;
        if (exec) exec.dataRows++;
      }
    },
    emit: (chunk) => {
      // A rewritten row (ARENA_ROW: the row rewriter's arena[rowFrom, rowTo)). Rows follow each
      // other in the arena: join them into one write, by offsets, without a Buffer per row.
      if (chunk === ARENA_ROW) {
        const rows = this.#rows;
        if (this.#outArena === rows.arena && rows.rowFrom === this.#outEnd) {
          this.#outEnd = rows.rowTo;
          return;
        }
        this.#flushOut();
        this.#outArena = rows.arena;
        this.#outStart = rows.rowFrom;
        this.#outEnd = rows.rowTo;
        return;
      }
      this.#flushOut();
      this.#writeClient(chunk);
    },
  };

  /** Rewritten rows waiting to be joined with the next ones: #outArena[#outStart, #outEnd) (written at the end of each chunk). */
  #outArena: Buffer | null = null;
  #outStart = 0;
  #outEnd = 0;

  #flushOut(): void {
    const a = this.#outArena;
    if (a === null) return;
    this.#outArena = null;
    this.#writeClient(a.subarray(this.#outStart, this.#outEnd));
  }

  /**
   * While an upstream chunk is scanned (`#scanning`), its output is gathered and written at the
   * end of the chunk in one system call. Most chunks (a whole result of a short query) leave as
   * one view (`#heldOut`), written as is; more outputs (rewritten rows, a replaced message) are
   * gathered in `#moreOut` and leave in one writev instead of a write each
   * (bench/masking-proxy.ts: 10,000 masked rows 57 -> 19 ms).
   */
  #scanning = false;
  #heldOut: Buffer | null = null;
  #moreOut: Buffer[] | null = null;

  #writeClient(chunk: Buffer): void {
    if (!this.#scanning) return this.#send(chunk);
    if (this.#heldOut === null) this.#heldOut = chunk;
    else if (this.#moreOut === null) this.#moreOut = [this.#heldOut, chunk];
    else this.#moreOut.push(chunk);
  }

  /** Write the held output now. */
  #releaseHeld(): void {
    const held = this.#heldOut;
    if (held === null) return;
    this.#heldOut = null;
    const more = this.#moreOut;
    if (more === null) return this.#send(held);
    this.#moreOut = null;
    if (!this.#toClient.writev(more) && (this.#upstreamPause & 1) === 0) this.#pauseUpstream(1);
  }

  #send(chunk: Buffer): void {
    if (!this.#toClient.write(chunk) && (this.#upstreamPause & 1) === 0) this.#pauseUpstream(1);
  }

  readonly #onClientDrain = (): void => this.#resumeUpstream(1);

  #pauseUpstream(reason: number): void {
    if (this.#upstreamPause === 0) this.#upstream.pause();
    this.#upstreamPause |= reason;
  }

  #resumeUpstream(reason: number): void {
    if ((this.#upstreamPause & reason) === 0) return;
    this.#upstreamPause &= ~reason;
    if (this.#upstreamPause === 0) this.#upstream.resume();
  }

  #complete(exec: PendingExecution): void {
    exec.durationMs = performance.now() - exec.startedAt;
    if (exec.rows === 0 && exec.dataRows > 0) exec.rows = exec.dataRows;
    const complete = this.#pipeline.complete;
    if (complete !== null) {
      try {
        complete(this.session, exec);
      } catch (err) {
        this.#log.error({ err, session: this.session.id }, 'statement completion hook failed');
      }
    }
  }

  /** A result set ended (CommandComplete, error): the next one gets its own columns and transform. */
  #endResult(head: Expectation | undefined): void {
    const r = head?.result;
    if (r !== null && r !== undefined) {
      if (r.portal === null) r.columns = null;
      r.transform = undefined;
    }
  }

  /** DataRows are inspected only while an Execute/Query whose rows are rewritten is outstanding. */
  #refreshRowHold(): void {
    if (this.#dropUntilReady || this.#fromUpstream.held[BackendCode.DataRow] === 0) return;
    this.#fromUpstream.held[BackendCode.DataRow] = this.#expect.some((e) => e.result !== null) ? 1 : 0;
  }

  /** An Execute/Query expectation, with result-phase state when its rows are rewritten. */
  #expectRows(kind: Exp, exec: PendingExecution, portal: string | null, extra?: Partial<Expectation>): Expectation {
    const e: Expectation = extra === undefined ? expectation(kind, exec) : { ...expectation(kind, exec), ...extra };
    if (this.#pipeline.result === null || !rewritesRows(exec.statement)) return e;
    this.#fromUpstream.held[BackendCode.DataRow] = 1;
    return { ...e, result: { portal, columns: null, transform: undefined } };
  }
  #setDropping(on: boolean): void {
    this.#dropUntilReady = on;
    if (on) this.#fromUpstream.held.fill(1);
    else {
      this.#fromUpstream.held.fill(0);
      for (const t of UPSTREAM_HELD) this.#fromUpstream.held[t] = 1;
      this.#fromUpstream.held[BackendCode.DataRow] = this.#expect.some((e) => e.result !== null) ? 1 : 0;
    }
  }

  /** Track the transaction state from command tags, between ReadyForQuery messages. */
  #trackTag(frame: Buffer, body: number, end: number): void {
    if (startsWith(frame, body, end, 'BEGIN') || startsWith(frame, body, end, 'START TRANSACTION')) this.#txNow = 'T';
    // "ROLLBACK" is also the tag of ROLLBACK TO SAVEPOINT, so only COMMIT is taken as an end here;
    // ReadyForQuery corrects the state at every Sync.
    else if (startsWith(frame, body, end, 'COMMIT')) this.#txNow = 'I';
  }

  /** Command tags: most statements of a session repeat theirs ("SELECT 1"). */
  readonly #tags = new RepeatDecoder();
  /** Names of the statements Bind refers to: a driver binds the same prepared statement again and again. */
  readonly #bound = new RepeatDecoder();
  /**
   * Statement texts (Query, Parse): a driver that parses the same text for every execution gets
   * the same string back, which the policy stage recognizes without computing its shape again.
   */
  readonly #queryTexts = new RepeatDecoder();

  #onUpstreamFrame(tag: number, frame: Buffer, start: number, end: number): FrameVerdict {
    const body = start + 5;
    const head = this.#expect[0];
    if (this.#dropUntilReady && tag !== BackendCode.ReadyForQuery) {
      // Breaker tripped in a simple query: the rest of its results are not the client's.
      if (tag === BackendCode.NoticeResponse || tag === BackendCode.NotificationResponse || tag === BackendCode.ParameterStatus) return FORWARD;
      return DROP;
    }
    switch (tag) {
      case BackendCode.ParseComplete:
      case BackendCode.BindComplete:
      case BackendCode.CloseComplete:
      case BackendCode.NoData:
        if (head === undefined) return FORWARD;
        this.#expect.shift();
        if (head.describes !== null) this.#portalColumns.set(head.describes, []);
        return head.injected ? DROP : FORWARD;
      case BackendCode.ParameterDescription:
        return head?.injected ? DROP : FORWARD;
      case BackendCode.RowDescription:
        if (head === undefined) return FORWARD;
        if (head.kind === Exp.Describe) {
          this.#expect.shift();
          if (head.describes !== null) this.#portalColumns.set(head.describes, this.#parseColumns(frame, body, end));
          return head.injected ? DROP : FORWARD;
        }
        if (head.injected) return DROP;
        if (head.result !== null) {
          // A simple Query's result set: its columns; the transform is chosen at its first row.
          head.result.columns = this.#parseColumns(frame, body, end);
          head.result.transform = undefined;
        }
        return FORWARD;
      case BackendCode.CommandComplete: {
        this.#trackTag(frame, body, end);
        if (head === undefined) return FORWARD;
        const exec = head.exec;
        if (head.injected) {
          if (head.kind === Exp.Execute) this.#expect.shift();
          return DROP;
        }
        let out: FrameVerdict = FORWARD;
        if (exec !== null) {
          const n = commandRows(frame, body, end);
          if (n >= 0) exec.rows += n;
          exec.command = this.#tags.decode(frame, body, end - 1);
          const cap = head.cap;
          if (cap !== null && n > cap.limit && isCappedTag(frame[body]!)) {
            if (head.kind === Exp.Query) {
              cap.tripped = true;
              exec.sqlstate = '42501';
              exec.refusedBy = cap.ruleId;
              this.#setDropping(true);
              out = cap.refusal;
            }
          }
          if (head.kind === Exp.Execute) {
            this.#expect.shift();
            if (cap !== null) {
              const r = this.#capDone(cap, isCappedTag(frame[body]!) ? n : 0, false);
              if (r !== null) {
                exec.sqlstate = '42501';
                exec.refusedBy = cap.ruleId;
                out = r;
              }
            }
            this.#complete(exec);
          } else this.#endResult(head);
        } else if (head.kind === Exp.Execute) this.#expect.shift();
        return out;
      }
      case BackendCode.EmptyQueryResponse:
      case BackendCode.PortalSuspended: {
        if (head === undefined || head.kind !== Exp.Execute) return FORWARD;
        this.#expect.shift();
        if (head.injected) return DROP;
        let out: FrameVerdict = FORWARD;
        if (head.cap !== null && tag === BackendCode.PortalSuspended) {
          const r = this.#capDone(head.cap, 0, true);
          if (r !== null) {
            out = r;
            if (head.exec !== null) {
              head.exec.sqlstate = '42501';
              head.exec.refusedBy = head.cap.ruleId;
            }
          }
        }
        if (head.exec !== null) this.#complete(head.exec);
        return out;
      }
      case BackendCode.ErrorResponse:
        return this.#onError(head, frame, start, end);
      case BackendCode.FunctionCallResponse:
        return head?.injected ? DROP : FORWARD;
      case BackendCode.ReadyForQuery:
        return this.#onReady(head, frame[body]!);
      case BackendCode.ParameterStatus: {
        this.#reader.setBuffer(frame, body, end);
        const name = this.#reader.cstring();
        const value = this.#reader.cstring();
        this.session.serverParams.set(name, value);
        if (name === 'application_name') this.session.applicationName = value;
        return FORWARD;
      }
      case BackendCode.DataRow:
        return this.#onDataRow(head, frame, start, end);
      default:
        return FORWARD;
    }
  }

  #onError(head: Expectation | undefined, frame: Buffer, start: number, end: number): FrameVerdict {
    if (this.#txNow === 'T') this.#txNow = 'E';
    if (head === undefined) {
      if (isFatal(frame, start + 5, end)) this.#upstreamSentFatal = true;
      return FORWARD;
    }
    let out: FrameVerdict = FORWARD;
    let sqlstate: string | undefined;
    if (head.refusal !== null) {
      out = head.refusal;
      sqlstate = head.exec?.statement.decision.sqlstate ?? '42501';
    } else {
      if (isFatal(frame, start + 5, end)) this.#upstreamSentFatal = true;
      // A masked statement's error may quote a value (a failed cast): its texts are scrubbed too.
      const st = head.exec?.statement;
      const scrub = this.#pipeline.scrub;
      if (st !== undefined && scrub !== null && rewritesRows(st)) {
        const rewritten = rewriteErrorText(frame, start, end, (text) => scrub(this.session, st, text));
        if (rewritten !== null) out = rewritten;
      }
    }
    sqlstate ??= errorCode(frame, start + 5, end);
    const exec = head.exec;
    if (exec !== null) exec.sqlstate = sqlstate;
    if (head.cap !== null) head.cap.errored = true;
    if (head.kind === Exp.Query || head.kind === Exp.Call) {
      this.#endResult(head);
      return out;
    }
    // Extended protocol: the server now skips everything up to the next Sync.
    this.#segmentFailed = true;
    while (this.#expect.length > 0 && this.#expect[0]!.kind !== Exp.Sync) {
      const e = this.#expect.shift()!;
      if (e === head && e.exec !== null) this.#complete(e.exec);
      if (e.cap !== null) this.#capDone(e.cap, 0, false);
      if (e.forwardReady) this.#releaseHold();
    }
    return out;
  }

  #onReady(head: Expectation | undefined, status: number): FrameVerdict {
    this.#txNow = status === TxStatus.InTransaction ? 'T' : status === TxStatus.Failed ? 'E' : 'I';
    this.#segmentFailed = false;
    if (head === undefined) return FORWARD;
    this.#expect.shift();
    if (head.exec !== null) this.#complete(head.exec);
    let out: FrameVerdict = FORWARD;
    if (head.injected) {
      out = head.forwardReady ? FORWARD : DROP;
      if (head.forwardReady) this.#releaseHold();
    } else if (head.cap !== null) {
      // A capped simple query: finish Gatehouse's transaction/savepoint before the client hears back.
      if (this.#dropUntilReady) this.#setDropping(false);
      if (this.#capFinishQuery(head.cap, status)) out = DROP;
      else this.#releaseHold();
    } else if (head.kind === Exp.Sync && this.#finishAtSync !== null) {
      const finish = this.#finishAtSync;
      this.#finishAtSync = null;
      if (status === TxStatus.Idle) this.#releaseHold();
      else {
        out = DROP;
        this.#expect.push({ ...expectation(Exp.Query, null, true), forwardReady: true });
        this.#writeUpstream(messages.query(finish === 'commit' && status === TxStatus.InTransaction ? 'COMMIT' : 'ROLLBACK'));
      }
    }
    if (out !== DROP) this.#setTxState(status);
    this.#refreshRowHold();
    if (this.#draining) setImmediate(() => this.#closeIfIdle());
    return out;
  }

  #setTxState(status: number): void {
    this.session.txState = status === TxStatus.InTransaction ? 'transaction' : status === TxStatus.Failed ? 'failed' : 'idle';
  }

  /** The breaker's finalizer answered: let the client stream continue. */
  #releaseHold(): void {
    if (!this.#holdUntilReady && (this.#clientPause & 1) === 0) return;
    this.#holdUntilReady = false;
    if (this.#fromClient.paused) this.#resumeClient(null);
  }

  /** Whether a portal's description is needed: its rows go through the result phase. */
  #describesRows(portal: string): boolean {
    if (this.#pipeline.result === null) return false;
    const st = this.#portals.get(portal);
    return st !== undefined && rewritesRows(st);
  }

  #parseColumns(frame: Buffer, body: number, end: number): ResultColumn[] {
    const r = this.#reader.setBuffer(frame, body, end);
    const n = r.int16();
    const columns: ResultColumn[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const name = r.cstring();
      const tableId = r.uint32();
      const columnId = r.int16();
      const typeId = r.uint32();
      r.int16(); // type size
      const typmod = r.int32();
      const binary = r.int16() === 1;
      columns[i] = { name, tableId, columnId, typeId, typmod, binary };
    }
    return columns;
  }

  /** Rewrites masked DataRows (into its arena, or in place). */
  readonly #rows = new RowRewriter();

  #onDataRow(head: Expectation | undefined, frame: Buffer, start: number, end: number): FrameVerdict {
    if (head?.exec) head.exec.dataRows++;
    const r = head?.result;
    // Held because another outstanding Execute rewrites its rows; this one passes unchanged.
    if (r === null || r === undefined) return FORWARD;
    let t = r.transform;
    if (t === undefined) {
      const chosen = this.#chooseTransform(head!, r);
      if (chosen instanceof Promise) {
        // The transform needs data first (e.g. catalog lookups): rows wait, in order.
        const held = Buffer.from(frame.subarray(start, end));
        this.#pauseUpstream(2);
        void chosen.then((transform) => {
          if (this.#closed) return;
          r.transform = transform;
          this.#resumeUpstream(2);
          try {
            const out = transform !== null && this.#rows.rewrite(transform, r.columns!, held, 0, held.length) ? ARENA_ROW : FORWARD;
            this.#fromUpstream.resume(out === FORWARD ? held : out);
            this.#flushOut();
          } catch (err) {
            this.#log.error({ err, session: this.session.id }, 'upstream sent an invalid message; closing the session');
            this.terminate(new UpstreamLost('upstream sent an invalid message'));
          }
        });
        return PAUSE;
      }
      r.transform = t = chosen;
    }
    if (t === null) return FORWARD;
    return this.#rows.rewrite(t, r.columns!, frame, start, end) ? ARENA_ROW : FORWARD;
  }

  /** Ask the pipeline for the transform of a result set; failures fail closed (every value NULL). */
  #chooseTransform(head: Expectation, r: ResultState): RowTransform | null | Promise<RowTransform | null> {
    const columns = r.columns ?? (r.portal !== null ? this.#portalColumns.get(r.portal) : undefined);
    if (columns === undefined || head.exec === null) {
      this.#log.error({ session: this.session.id }, 'result columns unknown for rows that must be rewritten; sending NULLs');
      return NULL_ROW;
    }
    r.columns = columns;
    const failed = (err: unknown): RowTransform => {
      this.#log.error({ err, session: this.session.id }, 'result phase failed; sending NULLs');
      return NULL_ROW;
    };
    try {
      const t = this.#pipeline.result!(this.session, head.exec, columns);
      return t instanceof Promise ? t.catch(failed) : t;
    } catch (err) {
      return failed(err);
    }
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  #closeIfIdle(): void {
    if (this.#closed || !this.#draining || !this.idle || !this.#fromClient.atBoundary) return;
    this.terminate(new ShuttingDown('terminating connection due to administrator command'));
  }

  #protocolError(err: unknown): void {
    const message = err instanceof ProtocolError || err instanceof GatehouseError ? err.message : 'invalid message';
    if (!(err instanceof ProtocolError)) this.#log.error({ err, session: this.session.id }, 'relay failed');
    this.terminate(new ProtocolViolation(message));
  }

  #upstreamGone(reason: string): void {
    if (this.#closed) return;
    if (this.#terminating) return this.#close('client terminated');
    if (this.#upstreamSentFatal) return this.#close(`upstream ended the session: ${reason}`);
    this.#log.warn({ session: this.session.id, connection: this.session.connection.name, reason }, 'upstream connection lost');
    this.terminate(new UpstreamLost(`connection to the database of connection "${this.session.connection.name}" was lost: ${reason}`));
  }

  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#toClient.end();
    this.#toUpstream.end(messages.TERMINATE);
    setTimeout(() => {
      this.#client.destroy();
      this.#upstream.destroy();
    }, 1000).unref();
    this.#onClose(reason);
  }
}

/** Whether frame[at, end) starts with the ASCII `text`. */
function startsWith(frame: Buffer, at: number, end: number, text: string): boolean {
  if (end - at < text.length) return false;
  for (let i = 0; i < text.length; i++) if (frame[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Command tags the row cap applies to: UPDATE n, DELETE n, MERGE n, INSERT 0 n (upserts). */
function isCappedTag(first: number): boolean {
  return first === 0x55 /* U */ || first === 0x44 /* D */ || first === 0x4d /* M */ || first === 0x49 /* I */;
}

const FLUSH = Buffer.from([FrontendCode.Flush, 0, 0, 0, 4]);
const INJECT_NAME = 'gatehouse_breaker';
const INJECT_WRITER = new BufferWriter(256);
const DESCRIBE_WRITER = new BufferWriter(128);

/** Fail-closed transform: every value NULL (used when the result phase cannot run). */
const NULL_ROW: RowTransform = (values) => values.fill(null);
