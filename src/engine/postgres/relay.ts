/**
 * One proxied PostgreSQL session after the handshake: two FrameScanners (client -> upstream and
 * upstream -> client) and the bookkeeping that maps wire messages to the pipeline's statement
 * events: a Query or a Parse is decided before it is forwarded; every Query and Execute is an
 * execution that completes at CommandComplete / EmptyQueryResponse / PortalSuspended /
 * ErrorResponse (or ReadyForQuery for a Query); RowDescription opens a result that a row
 * transform may rewrite.
 *
 * Refusals keep the server's own semantics: a denied Query or Parse is replaced by one that the
 * server rejects at parse time with a token only Gatehouse knows, and the server's error is
 * rewritten into the refusal. So the refusal arrives exactly where the server would report an
 * error, the server itself skips to the next Sync, and the transaction state (implicit
 * transaction rolled back, explicit one failed) is the server's, never emulated.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { AccessDenied, GatehouseError, ProtocolViolation, ShuttingDown, UpstreamLost } from '../../errors.js';
import {
  BackendCode,
  BufferReader,
  BufferWriter,
  commandRows,
  DROP,
  errorCode,
  FORWARD,
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
import { permits, type Decision, type Execution, type ResultColumn, type RowTransform, type SessionInfo, type Statement } from '../../session/types.js';

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

/** Largest frame accepted when only passed through (PostgreSQL's own MaxAllocSize). */
const MAX_FRAME = 0x3fffffff;

/** A per-process token: statements carrying it fail to parse; errors naming it are ours. */
const DENY_TOKEN = `gatehouse_refused_${randomBytes(6).toString('hex')}`;

interface PendingExecution extends Execution {
  /** Index of the Sync/Query segment it belongs to. */
  readonly segment: number;
  /** true for a simple Query (completes at ReadyForQuery). */
  readonly simple: boolean;
  /** DataRows seen (used when the command tag has no row count). */
  dataRows: number;
}

interface PendingRefusal {
  readonly marker: Buffer;
  readonly segment: number;
  readonly error: Buffer;
  readonly sqlstate: string;
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

const UNNAMED_STATEMENT: Statement = { text: '', protocol: 'extended', name: '', decision: { action: 'allow' } };

export class PgRelay {
  readonly session: SessionInfo;
  readonly #pipeline: Pipeline;
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #log: Logger;
  readonly #onBytes: ((c: number, u: number) => void) | undefined;
  readonly #onClose: (reason: string) => void;
  readonly #fromClient: FrameScanner;
  readonly #fromUpstream: FrameScanner;
  readonly #reader = new BufferReader();

  /** Prepared statements and portals by name, as the server holds them. */
  readonly #statements = new Map<string, Statement>();
  readonly #portals = new Map<string, Statement>();
  /** Executions in the order the server will answer them. */
  readonly #executions: PendingExecution[] = [];
  readonly #refusals: PendingRefusal[] = [];
  #refusalSeq = 0;
  /** Segments (Query or Sync) sent upstream, and answered by ReadyForQuery. */
  #segmentsSent = 0;
  #segmentsDone = 0;
  /** Row transform of the current result, if any. */
  #transform: RowTransform | null = null;
  #columns: ResultColumn[] = [];
  #closed = false;
  #terminating = false;
  #draining = false;
  /** Reasons the client socket is paused: 1 = decision pending, 2 = upstream backpressure. */
  #clientPause = 0;
  #upstreamPaused = false;
  /** The upstream already told the client why it is closing (FATAL ErrorResponse relayed). */
  #upstreamSentFatal = false;

  constructor(opts: RelayOptions) {
    this.session = opts.session;
    this.#pipeline = opts.pipeline;
    this.#client = opts.client;
    this.#upstream = opts.upstream;
    this.#log = opts.logger;
    this.#onBytes = opts.onBytes;
    this.#onClose = opts.onClose;

    const limits = { maxFrame: MAX_FRAME, maxHeld: opts.maxMessageBytes };
    this.#fromClient = new FrameScanner(this.#clientHandler, limits);
    for (const t of [FrontendCode.Query, FrontendCode.Parse, FrontendCode.Bind, FrontendCode.Execute, FrontendCode.Close, FrontendCode.Sync, FrontendCode.Terminate, FrontendCode.FunctionCall]) {
      this.#fromClient.held[t] = 1;
    }
    this.#fromUpstream = new FrameScanner(this.#upstreamHandler, limits);
    for (const t of [
      BackendCode.CommandComplete,
      BackendCode.ErrorResponse,
      BackendCode.ReadyForQuery,
      BackendCode.ParameterStatus,
      BackendCode.EmptyQueryResponse,
      BackendCode.PortalSuspended,
    ]) {
      this.#fromUpstream.held[t] = 1;
    }
    if (this.#pipeline.result) this.#fromUpstream.held[BackendCode.RowDescription] = 1;
  }

  /** Start relaying; `clientBytes`/`upstreamBytes` arrived during the handshake. */
  start(clientBytes: Buffer, upstreamBytes: Buffer): void {
    const c = this.#client;
    const u = this.#upstream;
    c.on('data', this.#onClientData);
    u.on('data', this.#onUpstreamData);
    c.on('error', (err) => this.#close(`client error: ${err.message}`));
    u.on('error', (err) => this.#upstreamGone(err.message));
    c.on('close', () => this.#close('client disconnected'));
    u.on('close', () => this.#upstreamGone('upstream closed the connection'));
    c.on('drain', this.#onClientDrain);
    u.on('drain', this.#onUpstreamDrain);
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
    if (this.#fromUpstream.atBoundary) this.#client.write(messages.errorResponse({ severity: 'FATAL', code: error.sqlstate, message: error.message }));
    this.#close(error.message);
  }

  get idle(): boolean {
    return this.#executions.length === 0 && this.#segmentsDone === this.#segmentsSent && this.session.txState === 'idle' && !this.#fromClient.paused;
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

  readonly #clientHandler: FrameHandler = {
    onFrame: (tag, frame, start, end) => this.#onClientFrame(tag, frame, start, end),
    onPassed: () => {},
    emit: (chunk) => {
      if (!this.#upstream.write(chunk) && (this.#clientPause & 2) === 0) {
        this.#clientPause |= 2;
        this.#client.pause();
      }
    },
  };

  readonly #onUpstreamDrain = (): void => {
    if ((this.#clientPause & 2) === 0) return;
    this.#clientPause &= ~2;
    if (this.#clientPause === 0) this.#client.resume();
  };

  #cstringAt(frame: Buffer, at: number, end: number): [string, number] {
    if (at >= end) throw new ProtocolError('message is shorter than its contents require');
    if (frame[at] === 0) return ['', at + 1];
    const nul = frame.indexOf(0, at);
    if (nul < 0 || nul >= end) throw new ProtocolError('string is not NUL-terminated');
    return [frame.toString('utf8', at, nul), nul + 1];
  }

  #onClientFrame(tag: number, frame: Buffer, start: number, end: number): FrameVerdict {
    const body = start + 5;
    switch (tag) {
      case FrontendCode.Query: {
        const [text] = this.#cstringAt(frame, body, end);
        return this.#submit({ text, protocol: 'simple', name: '', decision: { action: 'allow' } }, frame, start, end);
      }
      case FrontendCode.Parse: {
        const [name, at] = this.#cstringAt(frame, body, end);
        const [text] = this.#cstringAt(frame, at, end);
        return this.#submit({ text, protocol: 'extended', name, decision: { action: 'allow' } }, frame, start, end);
      }
      case FrontendCode.Bind: {
        const [portal, at] = this.#cstringAt(frame, body, end);
        const [name] = this.#cstringAt(frame, at, end);
        this.#portals.set(portal, this.#statements.get(name) ?? UNNAMED_STATEMENT);
        return FORWARD;
      }
      case FrontendCode.Execute: {
        const [portal] = this.#cstringAt(frame, body, end);
        this.#executions.push(this.#execution(this.#portals.get(portal) ?? UNNAMED_STATEMENT, false));
        return FORWARD;
      }
      case FrontendCode.Close: {
        const kind = frame[body];
        const [name] = this.#cstringAt(frame, body + 1, end);
        if (kind === 0x53 /* 'S' */) this.#statements.delete(name);
        else this.#portals.delete(name);
        return FORWARD;
      }
      case FrontendCode.Sync:
        this.#segmentsSent++;
        return FORWARD;
      case FrontendCode.FunctionCall: {
        // Fastpath call (libpq large objects): answered by FunctionCallResponse + ReadyForQuery,
        // so it is a segment of its own; decided like any statement so it cannot bypass policy.
        if (end - body < 4) throw new ProtocolError('message is shorter than its contents require');
        const oid = frame.readUInt32BE(body);
        return this.#submit({ text: `-- fastpath function call, function oid ${oid}`, protocol: 'fastpath', name: '', decision: { action: 'allow' } }, frame, start, end);
      }
      case FrontendCode.Terminate:
        this.#terminating = true;
        return FORWARD;
      default:
        return FORWARD;
    }
  }

  #execution(statement: Statement, simple: boolean): PendingExecution {
    return {
      statement,
      startedAt: performance.now(),
      rows: 0,
      command: '',
      sqlstate: undefined,
      durationMs: 0,
      segment: this.#segmentsSent,
      simple,
      dataRows: 0,
    };
  }

  /** Decide on a Query or Parse, then forward it or its refusal. */
  #submit(statement: Statement, frame: Buffer, start: number, end: number): FrameVerdict {
    const decide = this.#pipeline.decide;
    if (decide === null) return this.#apply(statement, statement.decision, null);
    let d: Decision | Promise<Decision>;
    try {
      d = decide(this.session, statement);
    } catch (err) {
      d = this.#internalDenial(err);
    }
    if (!(d instanceof Promise)) return this.#apply(statement, d, null);
    // Asynchronous decision: hold the client stream (and the socket) until it settles.
    const view = frame.subarray(start, end);
    this.#clientPause |= 1;
    this.#client.pause();
    d.catch((err: unknown) => this.#internalDenial(err)).then((decision) => {
      if (this.#closed) return;
      const out = this.#apply(statement, decision, view);
      this.#clientPause &= ~1;
      if (this.#clientPause === 0) this.#client.resume();
      try {
        this.#fromClient.resume(out === FORWARD ? view : out === DROP || out === PAUSE ? null : out);
      } catch (err) {
        this.#protocolError(err);
      }
    });
    return PAUSE;
  }

  #internalDenial(err: unknown): Decision {
    this.#log.error({ err, session: this.session.id }, 'statement pipeline failed; refusing the statement');
    return { action: 'deny', ruleId: 'gatehouse.internal-error', message: 'Gatehouse could not evaluate this statement', sqlstate: 'XX000' };
  }

  #apply(statement: Statement, decision: Decision, view: Buffer | null): FrameVerdict {
    statement.decision = decision;
    // Query and FunctionCall are answered up to ReadyForQuery; Parse only up to ParseComplete.
    const simple = statement.protocol !== 'extended';
    if (permits(decision)) {
      if (simple) {
        this.#executions.push(this.#execution(statement, true));
        this.#segmentsSent++;
      } else {
        this.#statements.set(statement.name, statement);
      }
      return view ?? FORWARD;
    }
    // Refused: send a statement that fails at parse time carrying our marker.
    const seq = ++this.#refusalSeq;
    const marker = `${DENY_TOKEN}_${seq}`;
    const refusal = new AccessDenied(`${decision.message ?? 'refused by policy'} (rule ${decision.ruleId ?? 'default'})`);
    this.#refusals.push({
      marker: Buffer.from(marker),
      segment: this.#segmentsSent,
      sqlstate: decision.sqlstate ?? refusal.sqlstate,
      error: messages.errorResponse({
        severity: 'ERROR',
        code: decision.sqlstate ?? refusal.sqlstate,
        message: refusal.message,
        detail: `Refused by Gatehouse rule "${decision.ruleId ?? 'default'}".`,
      }),
    });
    if (simple) {
      this.#executions.push(this.#execution(statement, true));
      this.#segmentsSent++;
      return messages.query(marker);
    }
    // Kept for labelling its executions; the server will not have it.
    this.#statements.set(statement.name, statement);
    return messages.parse(statement.name, marker);
  }

  // ---- upstream -> client -------------------------------------------------------------------

  readonly #onUpstreamData = (chunk: Buffer): void => {
    this.#onBytes?.(0, chunk.length);
    try {
      this.#fromUpstream.push(chunk);
    } catch (err) {
      this.#log.error({ err, session: this.session.id }, 'upstream sent an invalid message; closing the session');
      this.terminate(new UpstreamLost('upstream sent an invalid message'));
    }
  };

  readonly #upstreamHandler: FrameHandler = {
    onFrame: (tag, frame, start, end) => this.#onUpstreamFrame(tag, frame, start, end),
    onPassed: (tag) => {
      if (tag === BackendCode.DataRow) {
        const head = this.#executions[0];
        if (head !== undefined) head.dataRows++;
      }
    },
    emit: (chunk) => {
      if (!this.#client.write(chunk) && !this.#upstreamPaused) {
        this.#upstreamPaused = true;
        this.#upstream.pause();
      }
    },
  };

  readonly #onClientDrain = (): void => {
    if (!this.#upstreamPaused) return;
    this.#upstreamPaused = false;
    this.#upstream.resume();
  };

  /** The execution the server is answering now, if it belongs to the current segment. */
  #current(): PendingExecution | undefined {
    const head = this.#executions[0];
    return head !== undefined && head.segment === this.#segmentsDone ? head : undefined;
  }

  #complete(exec: PendingExecution): void {
    this.#executions.shift();
    exec.durationMs = performance.now() - exec.startedAt;
    if (exec.rows === 0 && exec.dataRows > 0) exec.rows = exec.dataRows;
    this.#endResult();
    const complete = this.#pipeline.complete;
    if (complete !== null) {
      try {
        complete(this.session, exec);
      } catch (err) {
        this.#log.error({ err, session: this.session.id }, 'statement completion hook failed');
      }
    }
  }

  #endResult(): void {
    if (this.#transform !== null) {
      this.#transform = null;
      this.#fromUpstream.held[BackendCode.DataRow] = 0;
    }
  }

  #onUpstreamFrame(tag: number, frame: Buffer, start: number, end: number): FrameVerdict {
    const body = start + 5;
    switch (tag) {
      case BackendCode.CommandComplete: {
        const exec = this.#current();
        if (exec !== undefined) {
          const n = commandRows(frame, body, end);
          if (n >= 0) exec.rows += n;
          exec.command = frame.toString('utf8', body, end - 1);
          if (!exec.simple) this.#complete(exec);
          else this.#endResult();
        }
        return FORWARD;
      }
      case BackendCode.EmptyQueryResponse:
      case BackendCode.PortalSuspended: {
        const exec = this.#current();
        if (exec !== undefined && !exec.simple) this.#complete(exec);
        return FORWARD;
      }
      case BackendCode.ErrorResponse:
        return this.#onError(frame, start, end);
      case BackendCode.ReadyForQuery: {
        const status = frame[body];
        this.session.txState = status === TxStatus.InTransaction ? 'transaction' : status === TxStatus.Failed ? 'failed' : 'idle';
        // Executions of this segment not answered were skipped by the server after an error.
        for (let head = this.#current(); head !== undefined; head = this.#current()) {
          if (head.simple) this.#complete(head);
          else this.#executions.shift();
        }
        this.#segmentsDone++;
        while (this.#refusals.length > 0 && this.#refusals[0]!.segment < this.#segmentsDone) this.#refusals.shift();
        if (this.#draining) setImmediate(() => this.#closeIfIdle());
        return FORWARD;
      }
      case BackendCode.ParameterStatus: {
        this.#reader.setBuffer(frame, body, end);
        const name = this.#reader.cstring();
        const value = this.#reader.cstring();
        this.session.serverParams.set(name, value);
        if (name === 'application_name') this.session.applicationName = value;
        return FORWARD;
      }
      case BackendCode.RowDescription:
        return this.#onRowDescription(frame, body, end);
      case BackendCode.DataRow:
        return this.#onDataRow(frame, start, end);
      default:
        return FORWARD;
    }
  }

  #onError(frame: Buffer, start: number, end: number): FrameVerdict {
    let out: FrameVerdict = FORWARD;
    let sqlstate: string | undefined;
    if (this.#refusals.length > 0) {
      for (let i = 0; i < this.#refusals.length; i++) {
        const r = this.#refusals[i]!;
        const at = frame.indexOf(r.marker, start);
        if (at >= 0 && at < end) {
          this.#refusals.splice(i, 1);
          out = r.error;
          sqlstate = r.sqlstate;
          break;
        }
      }
    }
    sqlstate ??= errorCode(frame, start + 5, end);
    if (out === FORWARD && isFatal(frame, start + 5, end)) this.#upstreamSentFatal = true;
    const exec = this.#current();
    if (exec !== undefined) {
      exec.sqlstate = sqlstate;
      if (!exec.simple) this.#complete(exec);
      else this.#endResult();
    }
    return out;
  }

  #onRowDescription(frame: Buffer, body: number, end: number): FrameVerdict {
    const result = this.#pipeline.result;
    const exec = this.#executions[0];
    if (result === null || exec === undefined) return FORWARD;
    const r = this.#reader.setBuffer(frame, body, end);
    const n = r.int16();
    const columns: ResultColumn[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const name = r.cstring();
      const tableId = r.uint32();
      const columnId = r.int16();
      const typeId = r.uint32();
      r.int16(); // type size
      r.int32(); // type modifier
      const binary = r.int16() === 1;
      columns[i] = { name, tableId, columnId, typeId, binary };
    }
    this.#columns = columns;
    this.#transform = result(this.session, exec, columns);
    this.#fromUpstream.held[BackendCode.DataRow] = this.#transform === null ? 0 : 1;
    return FORWARD;
  }

  readonly #rowWriter = new BufferWriter(1024);

  #onDataRow(frame: Buffer, start: number, end: number): FrameVerdict {
    const head = this.#executions[0];
    if (head !== undefined) head.dataRows++;
    const transform = this.#transform;
    if (transform === null) return FORWARD;
    const r = this.#reader.setBuffer(frame, start + 5, end);
    const n = r.int16();
    const values: Array<Buffer | null> = new Array(n);
    for (let i = 0; i < n; i++) {
      const len = r.int32();
      values[i] = len < 0 ? null : r.bytes(len);
    }
    const out = transform(values, this.#columns);
    const w = this.#rowWriter;
    w.begin(BackendCode.DataRow).int16(out.length);
    for (const v of out) {
      if (v === null) w.int32(-1);
      else w.int32(v.length).bytes(v);
    }
    return w.close().flush();
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
    this.#client.end();
    this.#upstream.end(messages.TERMINATE);
    setTimeout(() => {
      this.#client.destroy();
      this.#upstream.destroy();
    }, 1000).unref();
    this.#onClose(reason);
  }
}
