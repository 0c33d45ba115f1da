/**
 * The pipeline stage that writes one structured log line per executed statement.
 *
 * Written for speed: at tens of thousands of statements per second pino's generic object
 * serialization was ~14% of the proxy's CPU (profiled under pgbench -S). The line is encoded by
 * hand, straight into the log's batch buffer (LineSink): the line head once per second; per
 * session, its fields and the statement text encoded together once while the session runs the
 * same text (a driver's repeated statement; texts come from the relay's RepeatDecoder, so a
 * repeat is the same string), and the fields after the duration once while they repeat (rows,
 * command tag, decision); other texts copied as they are while they are plain ASCII, numbers
 * digit by digit. So no string is built, joined or encoded again per line (in-process, a simple
 * query's line ~640 -> ~380 ns, a named prepared statement's ~515 -> ~290 ns; under pgbench
 * -M extended a repeated line is four copies and two numbers). Its fields are the same as a
 * pino line's.
 */
import pino, { type Logger } from 'pino';
import type { PipelinePlugin } from './pipeline.js';
import { POLICY_ACTIONS, type Decision, type Execution, type PolicyAction, type SessionInfo } from './types.js';

/** Longest statement text written to the log. */
const MAX_TEXT = 2048;

/**
 * Where statement lines are encoded: the logger's LineBatcher (src/server/logger.ts) lets the
 * line be written straight into its buffer. `reserve(max)` returns a buffer with room for `max`
 * bytes from `offset`; `commit(end)` ends the line there.
 */
export interface LineSink {
  reserve(max: number): Buffer;
  readonly offset: number;
  commit(end: number): void;
}

interface Destination {
  write(line: string): unknown;
}

const isLineSink = (d: unknown): d is LineSink => typeof (d as Partial<LineSink>).reserve === 'function' && typeof (d as Partial<LineSink>).commit === 'function';

/** Any other destination gets each line as a string (encoded here, then decoded for it). */
class StringSink implements LineSink {
  #buf = Buffer.allocUnsafe(4096);
  readonly offset = 0;
  constructor(private readonly destination: Destination) {}
  reserve(max: number): Buffer {
    if (this.#buf.length < max) this.#buf = Buffer.allocUnsafe(max);
    return this.#buf;
  }
  commit(end: number): void {
    this.destination.write(this.#buf.toString('utf8', 0, end));
  }
}

const truncated = (text: string): string => (text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + '…' : text);

const QUOTE = 0x22;
/** `{"level":"info","time":"2026-11-21T22:25:59.123Z` */
const HEAD_BYTES = 48;
const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
const DURATION = bytes(',"duration_ms":');
const ROWS = bytes(',"rows":');
const COMMAND = bytes(',"command":');
const SQLSTATE = bytes(',"sqlstate":');
const RULE = bytes(',"rule":');
const REFUSED = bytes(',"refused":true');
const ROW_CAP = bytes(',"row_cap":');
const DECISIONS = Object.fromEntries(POLICY_ACTIONS.map((a) => [a, bytes(`,"decision":"${a}"`)])) as Record<PolicyAction, Buffer>;
const END = bytes('}\n');

/** `n` (a whole number >= 0) in decimal at `pos`; returns the end. */
export function putUint(buf: Buffer, pos: number, n: number): number {
  if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n))) return pos + buf.write(String(n), pos, 'latin1');
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  for (let i = pos + digits - 1; i >= pos; i--) {
    buf[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return pos + digits;
}

/** Milliseconds rounded to 3 decimals, as JSON prints Math.round(ms * 1000) / 1000; returns the end. */
export function putMillis(buf: Buffer, pos: number, ms: number): number {
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us <= Number.MAX_SAFE_INTEGER)) return pos + buf.write(String(us / 1000), pos, 'latin1');
  const frac = us % 1000;
  pos = putUint(buf, pos, (us - frac) / 1000);
  if (frac === 0) return pos;
  buf[pos++] = 0x2e; // '.'
  buf[pos++] = 0x30 + Math.floor(frac / 100);
  if (frac % 100 === 0) return pos;
  buf[pos++] = 0x30 + (Math.floor(frac / 10) % 10);
  if (frac % 10 === 0) return pos;
  buf[pos++] = 0x30 + (frac % 10);
  return pos;
}

/**
 * `s` as a JSON string at `pos`; returns the end. Printable ASCII without quotes or backslashes
 * (most SQL, every command tag) is copied byte by byte; anything else goes through
 * JSON.stringify (escapes, a lone surrogate) and is written as UTF-8.
 */
function putJsonString(buf: Buffer, pos: number, s: string): number {
  buf[pos] = QUOTE;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || c === QUOTE || c === 0x5c) return pos + buf.write(JSON.stringify(s), pos);
    buf[pos + 1 + i] = c;
  }
  pos += 1 + s.length;
  buf[pos] = QUOTE;
  return pos + 1;
}

/** A session's encoded pieces, kept while its lines repeat them. */
interface SessionLine {
  /** The session's fields, up to `"statement":`. */
  readonly prefix: Buffer;
  /** `prefix` and the JSON text of `text`. */
  start: Buffer;
  text: string | null;
  /** The text of the session's last line (kept encoded when the next line repeats it). */
  seen: string | null;
  /**
   * The fields after the duration, up to the end of the line, once the last two lines had the
   * same ones (null before), and what the last line's were encoded from.
   */
  tail: Buffer | null;
  rows: number;
  command: string;
  sqlstate: string | undefined;
  refusedBy: string | undefined;
  decision: Decision | null;
}

/** The fields of `e` after the duration, and the end of the line, at `p`; returns the end. */
function putTail(buf: Buffer, p: number, e: Execution): number {
  const d = e.statement.decision;
  buf.set(ROWS, p);
  p = putUint(buf, p + ROWS.length, e.rows);
  if (e.command) {
    buf.set(COMMAND, p);
    p = putJsonString(buf, p + COMMAND.length, e.command);
  }
  if (e.sqlstate !== undefined) {
    buf.set(SQLSTATE, p);
    p = putJsonString(buf, p + SQLSTATE.length, e.sqlstate);
  }
  const decision = DECISIONS[d.action];
  buf.set(decision, p);
  p += decision.length;
  const rule = e.refusedBy ?? d.ruleId;
  if (rule !== undefined) {
    buf.set(RULE, p);
    p = putJsonString(buf, p + RULE.length, rule);
  }
  if (e.refusedBy !== undefined && d.action !== 'deny' && d.action !== 'require_approval') {
    buf.set(REFUSED, p);
    p += REFUSED.length;
  }
  if (d.rowCap !== undefined) {
    buf.set(ROW_CAP, p);
    p = putUint(buf, p + ROW_CAP.length, d.rowCap.limit);
  }
  buf.set(END, p);
  return p + END.length;
}

export function statementLog(logger: Logger): PipelinePlugin {
  const enabled = logger.isLevelEnabled('info');
  const destination = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  const sink: LineSink | null = destination === undefined ? null : isLineSink(destination) ? destination : new StringSink(destination as Destination);
  const bindings = JSON.stringify(logger.bindings()).slice(1, -1);
  const lines = new WeakMap<SessionInfo, SessionLine>();
  // The line's head up to the time's milliseconds, encoded once per second.
  let second = -1;
  let head: Buffer = Buffer.alloc(0);
  const lineFor = (s: SessionInfo): SessionLine => {
    const prefix = bytes(`",${bindings ? `${bindings},` : ''}"event":"statement","session":${JSON.stringify(s.id)},"user":${JSON.stringify(s.identity.name)},"connection":${JSON.stringify(s.connection.name)},"statement":`);
    const line: SessionLine = { prefix, start: prefix, text: null, seen: null, tail: null, rows: -1, command: '', sqlstate: undefined, refusedBy: undefined, decision: null };
    lines.set(s, line);
    return line;
  };
  return {
    name: 'statement-log',
    sessionStart: (s) => {
      lineFor(s);
      logger.info(
        {
          event: 'session_start',
          session: s.id,
          user: s.identity.name,
          kind: s.identity.kind,
          auth_method: s.identity.authMethod,
          credential_id: s.identity.credentialId,
          on_behalf_of: s.identity.onBehalfOf?.name,
          model: s.identity.attributes.model,
          upstream_role: s.upstreamRole,
          connection: s.connection.name,
          environment: s.connection.environment,
          client: s.client.address,
          tls: s.client.tls,
          application_name: s.applicationName,
        },
        'session started',
      );
    },
    sessionEnd: (s, reason) => logger.info({ event: 'session_end', session: s.id, user: s.identity.name, connection: s.connection.name, reason }, 'session ended'),
    complete: (s, e) => {
      if (!enabled || sink === null) return;
      const st = e.statement;
      const line = lines.get(s) ?? lineFor(s);
      const text = st.text;
      const textChanged = text !== line.text;
      const d = st.decision;
      const tailChanged = e.rows !== line.rows || e.command !== line.command || e.sqlstate !== line.sqlstate || e.refusedBy !== line.refusedBy || d !== line.decision;
      const tail = tailChanged ? null : line.tail;
      // Bounds: 3 bytes per UTF-16 unit, 6 where JSON.stringify escapes one; the fixed fields and
      // the numbers fit in 256.
      const textMax = textChanged ? line.prefix.length + 6 * Math.min(text.length, MAX_TEXT + 1) + 2 : line.start.length;
      const tailMax = tail === null ? 6 * (e.command.length + (e.sqlstate?.length ?? 0) + ((e.refusedBy ?? d.ruleId)?.length ?? 0)) : tail.length;
      const max = 256 + HEAD_BYTES + textMax + tailMax;
      const now = Date.now();
      const ms = now % 1000;
      if (now - ms !== second) {
        second = now - ms;
        // `{"level":"info","time":"2026-11-21T22:25:59.` (the milliseconds and Z follow).
        head = bytes(`{"level":"info","time":"${new Date(second).toISOString().slice(0, -4)}`);
      }
      const buf = sink.reserve(max);
      let p = sink.offset;
      buf.set(head, p);
      p += head.length;
      buf[p++] = 0x30 + Math.floor(ms / 100);
      buf[p++] = 0x30 + (Math.floor(ms / 10) % 10);
      buf[p++] = 0x30 + (ms % 10);
      buf[p++] = 0x5a; // Z
      if (textChanged) {
        const from = p;
        buf.set(line.prefix, p);
        p = putJsonString(buf, p + line.prefix.length, truncated(text));
        // Kept from its second line on: a text that never repeats (new literals each time) costs no copy.
        if (text === line.seen) {
          line.start = Buffer.from(buf.subarray(from, p));
          line.text = text;
        }
        line.seen = text;
      } else {
        buf.set(line.start, p);
        p += line.start.length;
      }
      buf.set(DURATION, p);
      p = putMillis(buf, p + DURATION.length, e.durationMs);
      if (tail === null) {
        const from = p;
        p = putTail(buf, p, e);
        // Kept from the second line with these fields on (row counts that keep changing cost no copy).
        if (tailChanged) {
          line.rows = e.rows;
          line.command = e.command;
          line.sqlstate = e.sqlstate;
          line.refusedBy = e.refusedBy;
          line.decision = d;
          line.tail = null;
        } else line.tail = Buffer.from(buf.subarray(from, p));
      } else {
        buf.set(tail, p);
        p += tail.length;
      }
      sink.commit(p);
    },
  };
}
