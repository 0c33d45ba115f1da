/**
 * Opening a session on the upstream PostgreSQL: TCP (optionally TLS via SSLRequest), the startup
 * packet with the connection's own user and database, authentication with the connection's
 * credentials (trust, cleartext, md5, SCRAM-SHA-256), then ParameterStatus, BackendKeyData and
 * ReadyForQuery. Clients never see the upstream credentials: errors are reworded.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { ResolvedConnection } from '../../config/load.js';
import { UpstreamUnavailable } from '../../errors.js';
import { md5Response, ScramClient, SCRAM_MECHANISM } from '../../identity/scram.js';
import { quoteIdent } from '../../identity/role-mapping.js';
import { AuthCode, BackendCode, BufferReader, parseErrorFields, messages } from '../../protocol/postgres/index.js';
import { SocketReader } from './socket-io.js';

export interface UpstreamSession {
  readonly socket: Socket;
  /** ParameterStatus frames as received, to forward to the client verbatim. */
  readonly parameterFrames: Buffer[];
  readonly parameters: Map<string, string>;
  /** The upstream backend's cancel key. */
  readonly backendPid: number;
  readonly backendSecret: number;
  /** Bytes received after ReadyForQuery (none in practice). */
  readonly leftover: Buffer;
  /** Client startup parameters not passed on (not in ALLOWED_STARTUP_PARAMS). */
  readonly droppedParams: string[];
}

/**
 * Startup parameters a client may pass to the database. Any GUC can be set in the startup packet
 * (`role`, `session_authorization`, or `options=-c role=...`), which would bypass statement
 * policy, so only these pass; `options` is reduced to its allowed `-c name=value` settings.
 * user/database are always the connection's own.
 */
export const ALLOWED_STARTUP_PARAMS: ReadonlySet<string> = new Set([
  'application_name', 'client_encoding', 'datestyle', 'timezone', 'intervalstyle', 'extra_float_digits',
  'search_path', 'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout',
  'default_transaction_isolation', 'default_transaction_read_only', 'bytea_output', 'lc_messages', 'lc_monetary',
  'lc_numeric', 'lc_time', 'geqo', 'jit', 'work_mem', 'default_transaction_deferrable', 'timezone_abbreviations',
]);

/** Keep only allowed `-c name=value` / `--name=value` settings of a libpq `options` string. */
function filterOptions(options: string, dropped: string[]): string {
  const tokens = options.match(/(?:\\.|\S)+/g) ?? [];
  const kept: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    let t = tokens[i]!;
    if (t === '-c' && i + 1 < tokens.length) t = tokens[++i]!;
    else if (t.startsWith('-c')) t = t.slice(2);
    else if (t.startsWith('--')) t = t.slice(2);
    else {
      dropped.push(`options ${t}`);
      continue;
    }
    const name = t.split('=')[0]!.replace(/-/g, '_').toLowerCase();
    if (ALLOWED_STARTUP_PARAMS.has(name)) kept.push(`-c ${t}`);
    else dropped.push(`options -c ${name}`);
  }
  return kept.join(' ');
}

export function upstreamStartupParams(conn: ResolvedConnection, client: ReadonlyMap<string, string>, dropped: string[] = []): Record<string, string> {
  const params: Record<string, string> = { user: conn.upstream.user, database: conn.upstream.database };
  for (const [k, v] of client) {
    const key = k.toLowerCase();
    if (key === 'user' || key === 'database' || key === 'replication' || key.startsWith('_pq_.')) continue;
    if (key === 'options') {
      const o = filterOptions(v, dropped);
      if (o) params.options = o;
    } else if (ALLOWED_STARTUP_PARAMS.has(key)) params[k] = v;
    else dropped.push(k);
  }
  return params;
}

function describeConnect(conn: ResolvedConnection): string {
  return `connection "${conn.name}" (upstream ${conn.upstream.host}:${conn.upstream.port})`;
}

/** A host starting with "/" is a Unix-socket directory, as in libpq: <dir>/.s.PGSQL.<port>. */
export function isSocketDirectory(host: string): boolean {
  return host.startsWith('/');
}

function rawConnect(conn: ResolvedConnection): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const { host, port } = conn.upstream;
    const s = isSocketDirectory(host) ? netConnect({ path: `${host}/.s.PGSQL.${port}` }) : netConnect({ host, port });
    if (!isSocketDirectory(host)) s.setNoDelay(true);
    const onError = (err: Error): void => {
      s.destroy();
      reject(err);
    };
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

async function negotiateTls(conn: ResolvedConnection, socket: Socket): Promise<Socket> {
  const mode = conn.upstream.tls.mode;
  if (mode === 'disable' || (mode === 'prefer' && isSocketDirectory(conn.upstream.host))) return socket;
  socket.write(messages.SSL_REQUEST);
  const reader = new SocketReader(socket);
  const answer = await reader.next((r) => (r.buffered >= 1 ? r.takeRest() : null));
  reader.detach();
  if (answer.length !== 1) throw new UpstreamUnavailable(`${describeConnect(conn)} sent unexpected data after SSLRequest`);
  if (answer[0] === 0x4e /* 'N' */) {
    if (mode === 'prefer') return socket;
    throw new UpstreamUnavailable(`${describeConnect(conn)} does not support TLS (connections[].upstream.tls.mode is "${mode}")`);
  }
  if (answer[0] !== 0x53 /* 'S' */) throw new UpstreamUnavailable(`${describeConnect(conn)} answered SSLRequest with an invalid byte`);
  const verify = mode === 'verify-ca' || mode === 'verify-full';
  return await new Promise<TLSSocket>((resolve, reject) => {
    const t = tlsConnect({
      socket,
      servername: conn.upstream.tls.servername ?? (isIp(conn.upstream.host) ? undefined : conn.upstream.host),
      ca: conn.upstreamCa,
      rejectUnauthorized: verify,
      // verify-ca checks the chain but not the host name (libpq semantics).
      ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
      minVersion: 'TLSv1.2',
    });
    t.once('secureConnect', () => resolve(t));
    t.once('error', (err) => {
      t.destroy();
      reject(err);
    });
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Open and authenticate an upstream session for `conn` on behalf of a client. */
export async function connectUpstream(conn: ResolvedConnection, clientParams: ReadonlyMap<string, string>): Promise<UpstreamSession> {
  let socket: Socket | undefined;
  const timeoutMs = conn.upstream.connect_timeout;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UpstreamUnavailable(`${describeConnect(conn)}: timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([
      (async () => {
        socket = await rawConnect(conn);
        socket = await negotiateTls(conn, socket);
        return await startup(conn, socket, clientParams);
      })(),
      timeout,
    ]);
  } catch (err) {
    socket?.destroy();
    if (err instanceof UpstreamUnavailable) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UpstreamUnavailable(`could not connect to ${describeConnect(conn)}: ${code ?? (err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

async function startup(conn: ResolvedConnection, socket: Socket, clientParams: ReadonlyMap<string, string>): Promise<UpstreamSession> {
  const io = new SocketReader(socket);
  const r = new BufferReader();
  const dropped: string[] = [];
  socket.write(messages.startupMessage(upstreamStartupParams(conn, clientParams, dropped)));
  const parameterFrames: Buffer[] = [];
  const parameters = new Map<string, string>();
  let backendPid = 0;
  let backendSecret = 0;
  let scram: ScramClient | null = null;
  const password = (): string => {
    if (conn.upstreamPassword === undefined) {
      throw new UpstreamUnavailable(
        `${describeConnect(conn)} asks for a password but none is configured (set connections[].upstream.password_env or password_file)`,
      );
    }
    return conn.upstreamPassword;
  };
  try {
    for (;;) {
      const msg = await io.next((h) => h.next(1 << 20));
      r.setBuffer(msg.body);
      switch (msg.tag) {
        case BackendCode.Authentication: {
          const code = r.int32();
          switch (code) {
            case AuthCode.Ok:
              break;
            case AuthCode.CleartextPassword:
              socket.write(messages.passwordMessage(password()));
              break;
            case AuthCode.MD5Password:
              socket.write(messages.passwordMessage(md5Response(conn.upstream.user, password(), r.bytes(4))));
              break;
            case AuthCode.SASL: {
              const mechanisms: string[] = [];
              for (let m = r.cstring(); m !== ''; m = r.cstring()) mechanisms.push(m);
              if (!mechanisms.includes(SCRAM_MECHANISM)) {
                throw new UpstreamUnavailable(`${describeConnect(conn)} offers no supported SASL mechanism (${mechanisms.join(', ')})`);
              }
              scram = new ScramClient(password());
              socket.write(messages.saslInitialResponse(SCRAM_MECHANISM, scram.first()));
              break;
            }
            case AuthCode.SASLContinue:
              if (!scram) throw new UpstreamUnavailable(`${describeConnect(conn)} sent SASLContinue out of order`);
              socket.write(messages.saslResponse(scram.final(r.rest().toString('utf8'))));
              break;
            case AuthCode.SASLFinal:
              if (!scram) throw new UpstreamUnavailable(`${describeConnect(conn)} sent SASLFinal out of order`);
              scram.verify(r.rest().toString('utf8'));
              break;
            default:
              throw new UpstreamUnavailable(`${describeConnect(conn)} asks for an unsupported authentication method (code ${code})`);
          }
          break;
        }
        case BackendCode.ParameterStatus: {
          parameterFrames.push(frame(msg.tag, msg.body));
          const name = r.cstring();
          parameters.set(name, r.cstring());
          break;
        }
        case BackendCode.BackendKeyData:
          backendPid = r.int32();
          backendSecret = r.int32();
          break;
        case BackendCode.NoticeResponse:
          break;
        case BackendCode.NegotiateProtocolVersion:
          // Server is older than what we asked for; we ask for 3.0, so nothing to adapt.
          break;
        case BackendCode.ErrorResponse: {
          const f = parseErrorFields(msg.body, 0, msg.body.length);
          const sqlstate = f.get('C') ?? 'XX000';
          // Authentication failures would name the upstream user: say less to the client.
          const text = sqlstate.startsWith('28')
            ? 'upstream authentication failed (check connections[].upstream credentials)'
            : `upstream refused the connection: ${f.get('M') ?? 'unknown error'} (SQLSTATE ${sqlstate})`;
          throw new UpstreamUnavailable(`${describeConnect(conn)}: ${text}`);
        }
        case BackendCode.ReadyForQuery: {
          io.detach();
          return { socket, parameterFrames, parameters, backendPid, backendSecret, leftover: io.reader.takeRest(), droppedParams: dropped };
        }
        default:
          throw new UpstreamUnavailable(`${describeConnect(conn)} sent unexpected message 0x${msg.tag.toString(16)} during startup`);
      }
    }
  } finally {
    io.detach();
  }
}

/**
 * Assume an upstream role (SET ROLE) on a freshly opened session, before the client is let in.
 * Fails with UpstreamUnavailable naming the role if the database refuses it.
 */
export async function assumeRole(conn: ResolvedConnection, upstream: UpstreamSession, role: string): Promise<void> {
  const io = new SocketReader(upstream.socket);
  if (upstream.leftover.length > 0) io.reader.push(upstream.leftover);
  try {
    upstream.socket.write(messages.query(`SET ROLE ${quoteIdent(role)}`));
    let error: string | undefined;
    for (;;) {
      const msg = await io.next((h) => h.next(1 << 20));
      if (msg.tag === BackendCode.ErrorResponse) {
        const f = parseErrorFields(msg.body, 0, msg.body.length);
        error = `${f.get('M') ?? 'error'} (SQLSTATE ${f.get('C') ?? 'XX000'})`;
      } else if (msg.tag === BackendCode.ReadyForQuery) break;
    }
    if (error !== undefined) throw new UpstreamUnavailable(`${describeConnect(conn)}: cannot assume upstream role "${role}" (connections[].roles): ${error}`);
  } finally {
    io.detach();
  }
}

function frame(tag: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = tag;
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}
