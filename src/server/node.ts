/**
 * One Gatehouse node process (or one worker of a cluster): builds the pipeline, the engine and
 * the listeners from a loaded configuration, and knows how to shut down gracefully.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { PostgresEngine } from '../engine/postgres/engine.js';
import { createHttpServer } from '../http/server.js';
import { ProxyMetrics } from '../http/metrics.js';
import { LocalUsers } from '../identity/local-users.js';
import { JwtAuthenticator } from '../identity/jwt.js';
import { CredentialAuthenticator } from '../identity/credentials.js';
import { openStore, storeSpec } from '../store/open.js';
import type { Store } from '../store/sqlite-store.js';
import type { EventInput } from '../audit/event.js';
import { AuditWriter } from '../audit/writer.js';
import { AuditStage } from '../audit/stage.js';
import { ensureSigningKey, nodeIdOf, publicKeyPath } from '../audit/setup.js';
import { startServices, type NodeServices } from './services.js';
import { ApprovalStage } from '../approvals/stage.js';
import { createNotifier, type Notifier } from '../approvals/notify.js';
import { MaskingStage } from '../masking/stage.js';
import { loadMaskingKey } from '../masking/key.js';
import { AuthRateLimiter } from '../identity/rate-limit.js';
import { dirname, resolve } from 'node:path';
import { createPipeline, type PipelinePlugin } from '../session/pipeline.js';
import { statementLog } from '../session/statement-log.js';
import { loadPostgresParser } from '../sql/pg-analyzer.js';
import { guardrailsFor, loadPolicy, watchPolicyFiles } from '../policy/load.js';
import { PolicyStage } from '../policy/plugin.js';
import { createLogger } from './logger.js';

export interface NodeOptions {
  readonly logger?: Logger;
  readonly workerIndex?: number;
  /** Whether this process runs the HTTP listener (false in cluster workers). */
  readonly http?: boolean;
  /** Extra pipeline stages (tests). */
  readonly plugins?: readonly PipelinePlugin[];
  /** Share the listener through node:cluster (workers). */
  readonly forwardCancel?: (worker: number, pid: number, secret: number) => void;
}

export interface GatehouseNode {
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  readonly engine: PostgresEngine;
  readonly policy: PolicyStage;
  /** The audit writer (null when audit.enabled is false). */
  readonly audit: AuditWriter | null;
  /** The state store (tokens, approvals; the audit API reads it). */
  readonly store: Store;
  readonly approvals: ApprovalStage;
  /** Reload the policy files; keeps the previous policy (and says why) if they are invalid. */
  reloadPolicy(): boolean;
  /** Bound PostgreSQL port. */
  readonly pgPort: number;
  /** Bound HTTP port, if any. */
  readonly httpPort: number | undefined;
  /** Stop accepting, let in-flight work finish up to the configured deadline, close. */
  shutdown(): Promise<void>;
}

/** Listen, or fail with a ConfigError naming the listener key and the reason (e.g. port in use). */
function listen(server: Server | HttpServer, host: string, port: number, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.code === 'EACCES' ? 'permission denied' : err.code ?? err.message;
      reject(new ConfigError(`${key}: cannot listen on ${host}:${port}: ${why}`));
    });
    server.listen({ host, port, exclusive: false }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startNode(loaded: LoadedConfig, opts: NodeOptions = {}): Promise<GatehouseNode> {
  const { config } = loaded;
  const nodeId = nodeIdOf(loaded);
  const workerIndex = opts.workerIndex ?? 0;
  const logger = opts.logger ?? createLogger(config.log.level, { node: nodeId, worker: workerIndex });
  const metrics = new ProxyMetrics();
  await loadPostgresParser();
  const policy = new PolicyStage(loadPolicy(loaded), { logger, guardrailsFor });
  const users = new LocalUsers(config.users, loaded.file);
  const jwt = config.auth.jwt.length > 0 ? new JwtAuthenticator(config.auth.jwt, (p) => resolve(dirname(loaded.file), p), loaded.file) : null;

  // The audit writer first: a node that cannot record does not serve.
  let audit: AuditWriter | null = null;
  const masking = new MaskingStage({
    columns: config.masking.columns,
    nameRules: config.masking.name_rules,
    nameDefaults: config.masking.name_defaults,
    hashKey: loadMaskingKey(loaded),
    logger,
    file: loaded.file,
  });
  const plugins: PipelinePlugin[] = [policy, masking, ...(opts.plugins ?? [])];
  if (config.audit.enabled) {
    const { path: keyPath, created } = ensureSigningKey(loaded);
    if (created) logger.warn({ event: 'audit_key_created', key: keyPath, public_key: publicKeyPath(keyPath) }, 'created the audit signing key; give the public key to your auditors');
    const a = config.audit;
    audit = new AuditWriter({
      // Each process of a cluster is a writer with its own chain.
      node: opts.http === false ? `${nodeId}.w${workerIndex}` : nodeId,
      store: storeSpec(loaded),
      signingKey: keyPath,
      checkpointEvery: a.checkpoint.every,
      checkpointIntervalMs: a.checkpoint.interval,
      flushDelayMs: a.flush_delay,
      maxBatch: a.max_batch,
      maxPending: a.max_pending,
      busyTimeoutMs: a.store_timeout,
      logger,
    });
    await audit.start();
    plugins.push(new AuditStage(audit, { durableEnvironments: a.durable_environments, statementText: a.statement_text, refuseReadsOnFailure: a.on_store_failure.reads === 'refuse' }));
    audit.record({ type: 'node.start', detail: { pid: process.pid, worker: workerIndex, config: loaded.file, policy_files: loaded.policyFiles, rules: policy.engine.rules.length, connections: [...loaded.connections.keys()] } });
  }
  // The store on the event loop: issued tokens, approval requests, and (where HTTP is served) the
  // APIs, sinks and retention. The audit writer has its own connection on its thread.
  let store: Store;
  try {
    store = await openStore(storeSpec(loaded));
  } catch (err) {
    await audit?.close();
    throw err;
  }
  const credentials = new CredentialAuthenticator(jwt, config.auth.tokens ? store.tokens : null);
  const writer = audit;
  const record = writer === null ? undefined : (e: EventInput): void => void writer.record(e);
  const ap = config.approvals;
  let publicUrl: string | undefined = ap.public_url?.replace(/\/+$/, '');
  const approvals = new ApprovalStage({
    store: store.approvals,
    node: opts.http === false ? `${nodeId}.w${workerIndex}` : nodeId,
    record,
    onStep: (step) => metrics.approvalEvents.labels(step.slice('approval.'.length)).inc(),
    logger,
    groups: ap.groups,
    expiresMs: ap.expires,
    runWindowMs: ap.run_window,
    pollMs: ap.poll_interval,
    publicUrl: () => publicUrl,
    // Made once the HTTP address (for links) is known, before any session starts.
    notifier: { notify: (e, r) => notifier?.notify(e, r), stop: async () => {} },
  });
  let notifier: Notifier | undefined;
  metrics.approvalsWaiting = () => approvals.waiting;
  plugins.push(approvals, metrics.plugin());
  if (config.log.statements) plugins.push(statementLog(logger));
  const pipeline = createPipeline(plugins);
  let services: NodeServices | null = null;
  const rl = config.auth.rate_limit;
  const limiter = new AuthRateLimiter({ maxFailures: rl.max_failures, maxFailuresPerAddress: rl.max_failures_per_address, windowMs: rl.window, lockoutMs: rl.lockout });
  const engine = new PostgresEngine({
    config: loaded,
    users,
    credentials,
    limiter,
    pipeline,
    logger,
    metrics,
    nodeId,
    workerIndex,
    forwardCancel: opts.forwardCancel,
  });

  const pgServer = createServer({ noDelay: true }, (socket) => engine.handleConnection(socket));
  pgServer.on('error', (err) => logger.error({ err }, 'PostgreSQL listener error'));
  const pgListener = config.listeners.postgres;
  let ready = false;
  let pgPort: number;
  try {
    pgPort = await listen(pgServer, pgListener.host, pgListener.port, 'listeners.postgres');
  } catch (err) {
    approvals.stop();
    await audit?.close();
    await store.close();
    throw err;
  }

  let httpServer: HttpServer | undefined;
  let httpPort: number | undefined;
  if (opts.http !== false && config.listeners.http) {
    httpServer = createHttpServer({
      ready: () => ready,
      metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
      api: (req, res) => services?.api(req, res) ?? false,
    });
    try {
      httpPort = await listen(httpServer, config.listeners.http.host, config.listeners.http.port, 'listeners.http');
    } catch (err) {
      pgServer.close();
      approvals.stop();
      await audit?.close();
      await store.close();
      throw err;
    }
    publicUrl ??= `http://${urlHost(config.listeners.http.host)}:${httpPort}`;
    const url = publicUrl;
    notifier = createNotifier(config.approvals.notify, { logger, publicUrl: url });
    services = startServices(loaded, store, {
      logger,
      users,
      credentials: credentials.enabled ? credentials : null,
      record,
      onDecided: (id) => approvals.decided(id),
      onStep: (step) => metrics.approvalEvents.labels(step.slice('approval.'.length)).inc(),
      publicUrl: () => url,
      notifier,
    });
  }
  // A worker without HTTP still tells of the requests it creates (links from approvals.public_url).
  notifier ??= createNotifier(config.approvals.notify, { logger, publicUrl: publicUrl ?? '' });
  ready = true;
  logger.info({ event: 'listening', postgres: `${pgListener.host}:${pgPort}`, http: httpPort === undefined ? undefined : `${config.listeners.http!.host}:${httpPort}`, connections: [...loaded.connections.keys()] }, 'Gatehouse is ready');

  const reloadPolicy = (): boolean => {
    try {
      policy.swap(loadPolicy(loaded));
      logger.info({ event: 'policy_reload', files: loaded.policyFiles, rules: policy.engine.rules.length }, 'policy reloaded');
      audit?.record({ type: 'policy.reload', detail: { files: loaded.policyFiles, rules: policy.engine.rules.length } });
      return true;
    } catch (err) {
      logger.error({ event: 'policy_reload_failed', reason: (err as Error).message }, 'policy reload failed; keeping the previous policy');
      audit?.record({ type: 'policy.reload_failed', detail: { files: loaded.policyFiles, reason: (err as Error).message } });
      return false;
    }
  };
  const unwatch = config.policy.watch ? watchPolicyFiles(loaded.policyFiles, reloadPolicy) : () => {};

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (shuttingDown ??= (async () => {
      ready = false;
      unwatch();
      logger.info({ event: 'shutdown', sessions: engine.sessionCount, timeout_ms: config.server.shutdown_timeout }, 'shutting down: no new connections, waiting for in-flight statements');
      const closed = new Promise<void>((resolve) => pgServer.close(() => resolve()));
      // Held statements get an error now (their requests stay pending and approvable).
      approvals.stop();
      engine.drain();
      const deadline = Date.now() + config.server.shutdown_timeout;
      while (engine.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (engine.connectionCount > 0) {
        logger.warn({ sessions: engine.connectionCount }, 'shutdown deadline reached: closing remaining sessions');
        engine.closeAll();
        await new Promise((r) => setTimeout(r, 100));
      }
      await closed;
      engine.closeCatalogs();
      if (httpServer) {
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer!.close(() => resolve()));
      }
      await services?.stop();
      if (services === null) await notifier?.stop(2000);
      await store.close();
      if (audit !== null) {
        audit.record({ type: 'node.stop', detail: { pid: process.pid, worker: workerIndex } });
        await audit.close();
      }
      logger.info({ event: 'stopped' }, 'Gatehouse stopped');
      logger.flush();
    })());

  return { logger, metrics, engine, policy, audit, store, approvals, reloadPolicy, pgPort, httpPort, shutdown };
}

/** A listener host as it goes in a URL (IPv6 in brackets; a wildcard address as loopback). */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
