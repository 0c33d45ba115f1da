/**
 * The client side of the handshake: SSLRequest / GSSENCRequest / CancelRequest / StartupMessage,
 * TLS upgrade, SCRAM-SHA-256 authentication against local users, choice of the connection by
 * the startup `database`. Ends once the client is authenticated; the caller then opens the
 * upstream session and sends AuthenticationOk.
 * https://www.postgresql.org/docs/current/protocol-flow.html
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { ResolvedConnection } from '../../config/load.js';
import { AuthenticationFailed, ConnectionRefused, GatehouseError, ProtocolViolation, UnknownConnection } from '../../errors.js';
import type { Identity, IdentityKind } from '../../identity/identity.js';
import type { LocalUsers } from '../../identity/local-users.js';
import type { Authenticated, CredentialAuthenticator } from '../../identity/credentials.js';
import type { AuthRateLimiter } from '../../identity/rate-limit.js';
import { ScramError, ScramServer, SCRAM_MECHANISM } from '../../identity/scram.js';
import { BufferReader, FrontendCode, parseStartupParams, ProtocolError, StartupCode, messages } from '../../protocol/postgres/index.js';
import { SocketReader } from './socket-io.js';

export interface FrontendOptions {
  readonly tls: SecureContext | undefined;
  readonly tlsRequired: boolean;
  readonly users: LocalUsers;
  /** Tokens and JWTs presented as the password, for names that are not local users. */
  readonly credentials: CredentialAuthenticator;
  /** Ask for a cleartext password from loopback clients without TLS (auth.cleartext_from_loopback). */
  readonly cleartextFromLoopback: boolean;
  readonly limiter: AuthRateLimiter;
  /** Mutual TLS: ask for client certificates (listeners.postgres.tls.client_ca). */
  readonly clientCerts: { readonly required: boolean; readonly kind: IdentityKind } | null;
  readonly connections: ReadonlyMap<string, ResolvedConnection>;
  /** A CancelRequest arrived: forward it if the key is ours. */
  readonly onCancel: (pid: number, secret: number) => void;
}

export type FrontendResult =
  | { readonly kind: 'cancel' }
  | {
      readonly kind: 'session';
      readonly socket: Socket;
      readonly tls: boolean;
      readonly params: Map<string, string>;
      readonly identity: Identity;
      readonly connection: ResolvedConnection;
      /** SASLFinal (and anything else) to send before AuthenticationOk. */
      readonly pending: Buffer[];
      /** Bytes the client sent after its last handshake message. */
      readonly leftover: Buffer;
    };

/** Newest protocol minor version spoken: 3.0. */
const PROTOCOL_MINOR = 0;

export async function acceptClient(raw: Socket, opts: FrontendOptions): Promise<FrontendResult> {
  let socket: Socket = raw;
  let io = new SocketReader(socket);
  let tls = false;
  const r = new BufferReader();
  // What was learnt before a failure, for the audit trail.
  const seen: HandshakeContext = { tls: false };
  try {
    // 1. Untagged first packets until the StartupMessage.
    let params: Map<string, string>;
    let unsupportedOptions: string[] = [];
    let requestedMinor = 0;
    for (;;) {
      const body = await io.next((h) => h.nextUntagged());
      r.setBuffer(body);
      const code = r.int32();
      if (code === StartupCode.SSLRequest) {
        if (tls) throw new ProtocolViolation('SSLRequest received on a TLS connection');
        // Bytes already buffered after SSLRequest would be plaintext smuggled ahead of the TLS
        // handshake (CVE-2021-23222 class): refuse.
        if (io.reader.buffered > 0) throw new ProtocolViolation('unexpected data after SSLRequest');
        if (!opts.tls) {
          socket.write(messages.SSL_REFUSE);
          continue;
        }
        io.detach();
        socket.write(messages.SSL_ACCEPT);
        socket = await upgrade(socket, opts.tls, opts.clientCerts !== null);
        tls = seen.tls = true;
        io = new SocketReader(socket);
        continue;
      }
      if (code === StartupCode.GSSENCRequest) {
        if (io.reader.buffered > 0) throw new ProtocolViolation('unexpected data after GSSENCRequest');
        socket.write(messages.SSL_REFUSE); // 'N': GSSAPI encryption is not supported
        continue;
      }
      if (code === StartupCode.CancelRequest) {
        if (body.length !== 12) throw new ProtocolViolation('invalid CancelRequest length');
        opts.onCancel(r.int32(), r.int32());
        return { kind: 'cancel' };
      }
      const major = code >>> 16;
      if (major !== 3) throw new ProtocolViolation(`unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0`);
      requestedMinor = code & 0xffff;
      params = parseStartupParams(body, 4);
      unsupportedOptions = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
      break;
    }

    if (opts.tlsRequired && !tls) {
      throw new ConnectionRefused('TLS is required by this listener (listeners.postgres.tls.mode: required)', {
        hint: 'connect with sslmode=require',
      });
    }
    const user = params.get('user');
    if (!user) throw new ConnectionRefused('no PostgreSQL user name specified in startup packet');
    if (params.has('replication') && params.get('replication') !== 'false' && params.get('replication') !== '0') {
      throw new ConnectionRefused('replication connections are not supported through Gatehouse');
    }
    const database = params.get('database') || user;
    seen.user = user;
    seen.database = database;
    seen.applicationName = params.get('application_name');
    if (requestedMinor > PROTOCOL_MINOR || unsupportedOptions.length > 0) {
      socket.write(messages.negotiateProtocolVersion(PROTOCOL_MINOR, unsupportedOptions));
    }

    // 2. Authentication: SCRAM-SHA-256 for local users; tokens/JWTs as a cleartext password.
    const address = raw.remoteAddress ?? '';
    if (opts.limiter.locked(user, address)) {
      throw new AuthenticationFailed(`too many failed authentication attempts for user "${user}" or from this address; try again later`);
    }
    let identity: Identity;
    const pending: Buffer[] = [];
    const cert = opts.clientCerts !== null && tls ? clientCertificate(socket as TLSSocket) : null;
    try {
      if (opts.clientCerts?.required && cert === null) {
        throw new ConnectionRefused('a client certificate is required (listeners.postgres.tls.client_certs: required)', { hint: 'connect with sslcert and sslkey' });
      }
      if (cert !== null) {
        identity = certificateIdentity(cert, user, opts.users, opts.clientCerts!.kind);
      } else if (opts.users.get(user) === undefined && opts.credentials.enabled) {
        const auth = await tokenExchange(socket, io, r, user, tls || (opts.cleartextFromLoopback && isLoopback(address)), opts.credentials);
        identity = auth.identity;
        if (auth.connections !== null && !auth.connections.includes(database)) {
          throw new AuthenticationFailed(`token authentication failed for user "${user}"`, { detail: `the token is not valid for connection "${database}"` });
        }
      } else {
        identity = await scramExchange(socket, io, r, user, opts.users, pending);
      }
    } catch (err) {
      if (err instanceof AuthenticationFailed) opts.limiter.fail(user, address);
      throw err;
    }
    opts.limiter.succeed(user);
    seen.identity = identity;

    // 3. The connection named by the startup database.
    const connection = opts.connections.get(database);
    if (!connection) throw new UnknownConnection(`database "${database}" is not a Gatehouse connection`);

    io.detach();
    return { kind: 'session', socket, tls, params, identity, connection, pending, leftover: io.reader.takeRest() };
  } catch (err) {
    io.detach();
    throw asGatehouseError(err, socket, seen);
  }
}

interface ClientCertificate {
  readonly authorized: boolean;
  readonly error: string;
  readonly cn: string | undefined;
  readonly spiffe: string | undefined;
  readonly fingerprint: string;
}

/** The certificate the client presented, if any. */
function clientCertificate(t: TLSSocket): ClientCertificate | null {
  const peer = t.getPeerCertificate();
  if (peer === null || Object.keys(peer).length === 0) return null;
  const san = peer.subjectaltname ?? '';
  const spiffe = san
    .split(', ')
    .find((s) => s.startsWith('URI:spiffe://'))
    ?.slice(4);
  const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined;
  // A TLSSocket made by hand (after SSLRequest) skips tls.Server's verification step, so ask the
  // handle for OpenSSL's chain verification result as tls.Server does; fail closed without it.
  const handle = (t as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  const verifyError: (Error & { code?: string }) | null = typeof handle?.verifyError === 'function' ? handle.verifyError() : new Error('verification unavailable');
  return { authorized: verifyError === null, error: verifyError?.code ?? verifyError?.message ?? '', cn, spiffe, fingerprint: peer.fingerprint256 ?? '' };
}

/**
 * The identity of a verified client certificate: a SPIFFE URI SAN is a service of that id; a CN
 * is the local user of that name if there is one, otherwise an identity of the configured kind.
 * The startup user name must be that identity's name.
 */
function certificateIdentity(cert: ClientCertificate, user: string, users: LocalUsers, kind: IdentityKind): Identity {
  if (!cert.authorized) throw new AuthenticationFailed(`certificate authentication failed for user "${user}"`, { detail: `the client certificate is not trusted (${cert.error})` });
  const name = cert.spiffe ?? cert.cn;
  if (name === undefined) throw new AuthenticationFailed(`certificate authentication failed for user "${user}"`, { detail: 'the client certificate has neither a SPIFFE URI nor a common name' });
  if (name !== user) throw new AuthenticationFailed(`certificate authentication failed for user "${user}"`, { detail: `the client certificate is for "${name}"` });
  const credentialId = `cert:${cert.fingerprint.replace(/:/g, '').slice(0, 32).toLowerCase()}`;
  const local = cert.spiffe === undefined ? users.get(name) : undefined;
  if (local !== undefined) return { ...local.identity, authMethod: 'certificate', credentialId };
  return {
    id: cert.spiffe ?? `cert:${name}`,
    kind: cert.spiffe !== undefined ? 'service' : kind,
    name,
    groups: [],
    attributes: cert.spiffe !== undefined ? { spiffe_id: cert.spiffe } : { common_name: name },
    authMethod: 'certificate',
    credentialId,
  };
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** A token or JWT presented as the password (AuthenticationCleartextPassword). */
async function tokenExchange(socket: Socket, io: SocketReader, r: BufferReader, user: string, cleartextAllowed: boolean, credentials: CredentialAuthenticator): Promise<Authenticated> {
  if (!cleartextAllowed) {
    throw new ConnectionRefused('token authentication sends the token as a password, which requires TLS (or auth.cleartext_from_loopback for loopback clients)', {
      hint: 'connect with sslmode=require',
    });
  }
  socket.write(messages.AUTH_CLEARTEXT);
  const msg = await io.next((h) => h.next());
  if (msg.tag !== FrontendCode.Password) throw new ProtocolViolation(`expected PasswordMessage, got message type 0x${msg.tag.toString(16)}`);
  r.setBuffer(msg.body);
  return credentials.authenticate(r.cstring(), user);
}

/** SCRAM-SHA-256 against the local users (a decoy verifier for unknown names). */
async function scramExchange(socket: Socket, io: SocketReader, r: BufferReader, user: string, users: LocalUsers, pending: Buffer[]): Promise<Identity> {
  const scram = new ScramServer(users.verifierFor(user));
  socket.write(messages.AUTH_SASL_SCRAM);
  const initial = await io.next((h) => h.next());
  if (initial.tag !== FrontendCode.Password) throw new ProtocolViolation(`expected SASLInitialResponse, got message type 0x${initial.tag.toString(16)}`);
  r.setBuffer(initial.body);
  const mechanism = r.cstring();
  if (mechanism !== SCRAM_MECHANISM) throw new AuthenticationFailed(`SASL mechanism "${mechanism}" is not supported; use SCRAM-SHA-256`);
  const len = r.int32();
  const clientFirst = r.bytes(len).toString('utf8');
  let serverFinal: string;
  try {
    socket.write(messages.authSaslContinue(scram.first(clientFirst)));
    const response = await io.next((h) => h.next());
    if (response.tag !== FrontendCode.Password) throw new ProtocolViolation('expected SASLResponse');
    serverFinal = scram.final(response.body.toString('utf8'));
  } catch (err) {
    if (err instanceof ScramError) throw new AuthenticationFailed(`password authentication failed for user "${user}"`);
    throw err;
  }
  const local = users.get(user);
  if (!local) throw new AuthenticationFailed(`password authentication failed for user "${user}"`);
  pending.push(messages.authSaslFinal(serverFinal));
  return local.identity;
}

/** Errors of the handshake, with the socket they should be reported on (it may be TLS now). */
/** What a failed handshake had learnt: who tried, and whether authentication had succeeded. */
export interface HandshakeContext {
  tls: boolean;
  user?: string;
  database?: string;
  applicationName?: string;
  /** Set once authentication succeeded (a later failure is not an authentication failure). */
  identity?: Identity;
}

export class HandshakeError extends Error {
  constructor(
    readonly error: GatehouseError | null,
    readonly socket: Socket,
    readonly context: HandshakeContext = { tls: false },
  ) {
    super(error?.message ?? 'client went away during the handshake');
  }
}

function asGatehouseError(err: unknown, socket: Socket, context: HandshakeContext): HandshakeError {
  if (err instanceof GatehouseError) return new HandshakeError(err, socket, context);
  if (err instanceof ProtocolError) return new HandshakeError(new ProtocolViolation(err.message), socket, context);
  return new HandshakeError(null, socket, context);
}

function upgrade(socket: Socket, context: SecureContext, requestCert: boolean): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // Unverified certificates are not rejected by TLS itself: authentication refuses them with a
    // PostgreSQL error the client can read.
    const t = new TLSSocket(socket, { isServer: true, secureContext: context, requestCert, rejectUnauthorized: false });
    const onError = (err: Error): void => reject(err);
    t.once('error', onError);
    t.once('secure', () => {
      t.off('error', onError);
      resolve(t);
    });
  });
}
