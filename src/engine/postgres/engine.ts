/**
 * The PostgreSQL engine: drives one client/upstream pair from the first byte to the close.
 * handshake (frontend.ts) -> upstream session (upstream.ts) -> AuthenticationOk, parameters,
 * Gatehouse's cancel key, ReadyForQuery -> relay (relay.ts).
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../../config/load.js';
import { GatehouseError, ShuttingDown, TooManyConnections } from '../../errors.js';
import type { ProxyMetrics } from '../../http/metrics.js';
import type { LocalUsers } from '../../identity/local-users.js';
import type { CredentialAuthenticator } from '../../identity/credentials.js';
import type { AuthRateLimiter } from '../../identity/rate-limit.js';
import { TxStatus, messages } from '../../protocol/postgres/index.js';
import type { Pipeline } from '../../session/pipeline.js';
import type { SessionInfo } from '../../session/types.js';
import { CancelRegistry, sendUpstreamCancel, workerOfPid } from './cancel.js';
import { acceptClient, HandshakeError } from './frontend.js';
import { PgRelay } from './relay.js';
import { assumeRole, connectUpstream } from './upstream.js';
import { upstreamRoleFor } from '../../identity/role-mapping.js';
import { PgCatalog } from './catalog.js';
import type { ResolvedConnection } from '../../config/load.js';

export interface EngineContext {
  readonly config: LoadedConfig;
  readonly users: LocalUsers;
  readonly credentials: CredentialAuthenticator;
  readonly limiter: AuthRateLimiter;
  readonly pipeline: Pipeline;
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  readonly nodeId: string;
  readonly workerIndex: number;
  /** Route a cancel whose key belongs to another worker (cluster mode). */
  readonly forwardCancel?: (worker: number, pid: number, secret: number) => void;
}

export class PostgresEngine {
  readonly #ctx: EngineContext;
  readonly #cancels: CancelRegistry;
  readonly #relays = new Set<PgRelay>();
  /** Sockets still in the handshake. */
  readonly #handshaking = new Set<Socket>();
  #sessionCounter = 0;
  #draining = false;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
    this.#cancels = new CancelRegistry(ctx.workerIndex);
  }

  /** Open sessions plus connections in their handshake. */
  get connectionCount(): number {
    return this.#relays.size + this.#handshaking.size;
  }

  /** Serve one accepted client socket. Never throws. */
  handleConnection(socket: Socket): void {
    socket.setNoDelay(true);
    const { config, metrics } = this.#ctx;
    const listener = config.config.listeners.postgres;
    if (this.#draining) {
      this.sendError(socket, new ShuttingDown('the server is shutting down'));
      return;
    }
    if (this.connectionCount >= listener.max_connections) {
      metrics.connectionsTotal.labels('rejected').inc();
      this.sendError(socket, new TooManyConnections(`too many connections (listeners.postgres.max_connections is ${listener.max_connections})`));
      return;
    }
    this.#handshaking.add(socket);
    const timer = setTimeout(() => {
      this.#ctx.logger.info({ client: socket.remoteAddress }, 'handshake timed out');
      socket.destroy();
    }, listener.handshake_timeout);
    socket.once('close', () => {
      clearTimeout(timer);
      this.#handshaking.delete(socket);
    });
    socket.on('error', () => {}); // reported through the handshake or the relay
    this.#serve(socket, timer).catch((err: unknown) => {
      this.#ctx.logger.error({ err }, 'unexpected failure serving a connection');
      socket.destroy();
    });
  }

  async #serve(raw: Socket, timer: NodeJS.Timeout): Promise<void> {
    const { config, users, logger, metrics, pipeline } = this.#ctx;
    const listener = config.config.listeners.postgres;
    let hs;
    try {
      hs = await acceptClient(raw, {
        tls: config.listenerTls,
        tlsRequired: listener.tls?.mode === 'required',
        users,
        credentials: this.#ctx.credentials,
        cleartextFromLoopback: config.config.auth.cleartext_from_loopback,
        limiter: this.#ctx.limiter,
        clientCerts: listener.tls?.client_ca !== undefined ? { required: listener.tls.client_certs === 'required', kind: listener.tls.client_cert_kind } : null,
        connections: config.connections,
        onCancel: (pid, secret) => this.cancel(pid, secret),
      });
    } catch (err) {
      clearTimeout(timer);
      const e = err instanceof HandshakeError ? err : new HandshakeError(null, raw);
      metrics.connectionsTotal.labels(e.error?.sqlstate === '28P01' ? 'auth_failed' : 'refused').inc();
      const ctx = e.context;
      // Every refusal of someone who named a user is recorded; port scans and bare disconnects are not.
      if (e.error && ctx.user !== undefined && pipeline.connectionEvent !== null) {
        const conn = ctx.database !== undefined ? config.connections.get(ctx.database) : undefined;
        pipeline.connectionEvent({
          type: ctx.identity === undefined ? 'auth.failure' : 'session.fail',
          client: { address: raw.remoteAddress ?? '', port: raw.remotePort ?? 0, tls: ctx.tls },
          identity: ctx.identity,
          user: ctx.user,
          connection: conn ? { name: conn.name, environment: conn.environment } : undefined,
          applicationName: ctx.applicationName,
          reason: e.error.detail ? `${e.error.message}: ${e.error.detail}` : e.error.message,
          sqlstate: e.error.sqlstate,
        });
      }
      if (e.error) {
        if (e.error.sqlstate === '28P01') metrics.errorsTotal.labels('auth').inc();
        else if (e.error.sqlstate === '08P01') metrics.errorsTotal.labels('protocol').inc();
        logger.info({ client: raw.remoteAddress, code: e.error.code, reason: e.error.message, detail: e.error.detail }, 'connection refused');
        this.sendError(e.socket, e.error);
      } else {
        e.socket.destroy();
      }
      return;
    }
    if (hs.kind === 'cancel') {
      clearTimeout(timer);
      raw.end();
      return;
    }
    const { socket, connection, identity, params } = hs;
    const clientInfo = { address: raw.remoteAddress ?? '', port: raw.remotePort ?? 0, tls: hs.tls };
    const connRef = { name: connection.name, environment: connection.environment };
    pipeline.connectionEvent?.({ type: 'auth.success', client: clientInfo, identity, connection: connRef, applicationName: params.get('application_name') });

    const t0 = performance.now();
    let upstream;
    const role = upstreamRoleFor(connection, identity);
    try {
      upstream = await connectUpstream(connection, params);
      if (role !== undefined) {
        try {
          await assumeRole(connection, upstream, role);
        } catch (err) {
          upstream.socket.destroy();
          throw err;
        }
      }
    } catch (err) {
      clearTimeout(timer);
      metrics.connectionsTotal.labels('upstream_unavailable').inc();
      metrics.errorsTotal.labels('upstream_connect').inc();
      const e = err as GatehouseError;
      logger.warn({ connection: connection.name, user: identity.name, reason: e.message }, 'upstream connection failed');
      pipeline.connectionEvent?.({ type: 'session.fail', client: clientInfo, identity, connection: connRef, applicationName: params.get('application_name'), reason: e.message, sqlstate: e.sqlstate });
      this.sendError(socket, e);
      return;
    }
    metrics.upstreamConnectSeconds.labels(connection.name).observe((performance.now() - t0) / 1000);
    if (upstream.droppedParams.length > 0) {
      logger.info({ user: identity.name, connection: connection.name, dropped: upstream.droppedParams }, 'startup parameters not passed to the database');
    }
    clearTimeout(timer);
    this.#handshaking.delete(raw);
    if (socket.destroyed) {
      upstream.socket.destroy();
      return;
    }

    // A cancel also reaches the pipeline: a statement held by Gatehouse (waiting for approval) stops.
    let cancelHeld: (() => void) | undefined;
    const key = this.#cancels.register(
      {
        host: connection.upstream.host,
        port: connection.upstream.port,
        pid: upstream.backendPid,
        secret: upstream.backendSecret,
      },
      () => cancelHeld?.(),
    );
    const session: SessionInfo = {
      id: `${this.#ctx.nodeId}-${this.#ctx.workerIndex}-${++this.#sessionCounter}`,
      identity,
      connection,
      client: clientInfo,
      applicationName: params.get('application_name') ?? '',
      txState: 'idle',
      upstreamRole: role,
      serverParams: new Map(upstream.parameters),
      startedAt: Date.now(),
      catalog: this.#catalogFor(connection),
    };
    // AuthenticationOk, the upstream's parameters, our cancel key, ReadyForQuery: one write.
    socket.cork();
    for (const b of hs.pending) socket.write(b);
    socket.write(messages.AUTH_OK);
    for (const f of upstream.parameterFrames) socket.write(f);
    socket.write(messages.backendKeyData(key.pid, key.secret));
    socket.write(messages.readyForQuery(TxStatus.Idle));
    socket.uncork();
    metrics.connectionsTotal.labels('ok').inc();

    const relay = new PgRelay({
      session,
      pipeline,
      client: socket,
      upstream: upstream.socket,
      maxMessageBytes: listener.max_message_bytes,
      logger,
      onBytes: metrics.onBytes,
      onClose: (reason) => {
        this.#relays.delete(relay);
        this.#cancels.release(key.pid);
        pipeline.sessionEnd?.(session, reason);
      },
    });
    this.#relays.add(relay);
    session.notice = (n) => relay.notice(n);
    const interrupt = pipeline.interrupt;
    if (interrupt !== null) cancelHeld = () => interrupt(session);
    pipeline.sessionStart?.(session);
    relay.start(hs.leftover, upstream.leftover);
    if (this.#draining) relay.drain();
  }

  readonly #catalogs = new Map<string, PgCatalog>();

  /** The connection's catalog (its own upstream session is opened at the first lookup). */
  #catalogFor(connection: ResolvedConnection): PgCatalog {
    let c = this.#catalogs.get(connection.name);
    if (c === undefined) this.#catalogs.set(connection.name, (c = new PgCatalog(connection, this.#ctx.logger)));
    return c;
  }

  /** A CancelRequest with one of our keys: route it to the upstream backend. */
  cancel(pid: number, secret: number): void {
    const worker = workerOfPid(pid);
    if (worker !== this.#ctx.workerIndex) {
      this.#ctx.forwardCancel?.(worker, pid, secret);
      return;
    }
    const entry = this.#cancels.lookup(pid, secret);
    if (!entry) {
      this.#ctx.logger.info({ pid }, 'cancel request with an unknown key ignored');
      return;
    }
    entry.onCancel?.();
    void sendUpstreamCancel(entry.upstream);
  }

  /** Report an error on a socket that is not relaying, then close it. */
  sendError(socket: Socket, err: GatehouseError): void {
    if (socket.destroyed) return;
    socket.end(
      messages.errorResponse({
        severity: 'FATAL',
        code: err.sqlstate,
        message: err.message,
        detail: err.detail,
        hint: err.hint,
      }),
    );
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  /** Stop taking sessions; close each once it is idle. */
  drain(): void {
    this.#draining = true;
    for (const s of this.#handshaking) s.destroy();
    for (const r of this.#relays) r.drain();
  }

  /** Close the catalog sessions (at shutdown, once the client sessions are gone). */
  closeCatalogs(): void {
    for (const c of this.#catalogs.values()) c.close();
    this.#catalogs.clear();
  }

  /** Close every session now (after the shutdown deadline). */
  closeAll(): void {
    for (const r of this.#relays) r.terminate(new ShuttingDown('terminating connection due to administrator command (shutdown deadline reached)'));
    for (const s of this.#handshaking) s.destroy();
  }

  get sessionCount(): number {
    return this.#relays.size;
  }
}
