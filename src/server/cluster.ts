/**
 * Multi-core mode: the primary forks workers that share the PostgreSQL listener (node:cluster
 * hands accepted sockets to workers round-robin) and serves HTTP itself, aggregating the
 * workers' metrics. Cancel requests are routed to the worker that issued the key: the worker
 * index is encoded in the key's pid.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Server as HttpServer } from 'node:http';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { createHttpServer } from '../http/server.js';
import { createLogger } from './logger.js';
import { startNode } from './node.js';
import { ensureSigningKey, nodeIdOf, publicKeyPath } from '../audit/setup.js';
import { recordDirect } from '../audit/direct.js';
import { startServices, type NodeServices } from './services.js';
import { openStore, storeSpec } from '../store/open.js';
import type { Store } from '../store/sqlite-store.js';
import { JwtAuthenticator } from '../identity/jwt.js';
import { CredentialAuthenticator } from '../identity/credentials.js';
import { LocalUsers } from '../identity/local-users.js';
import { dirname, resolve } from 'node:path';

interface CancelMessage {
  type: 'gatehouse:cancel';
  worker: number;
  pid: number;
  secret: number;
}
interface ReadyMessage {
  type: 'gatehouse:ready';
}
type ClusterMessage = CancelMessage | ReadyMessage;

function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('gatehouse:');
}

/** Run the primary: fork `workers` processes and supervise them. Resolves when all have exited after SIGTERM. */
export async function runPrimary(loaded: LoadedConfig, workers: number, configFile: string): Promise<void> {
  const { config } = loaded;
  const logger = createLogger(config.log.level, { node: config.server.node_id, role: 'primary' });
  const aggregator = new AggregatorRegistry();
  const byIndex = new Map<number, Worker>();
  const readyWorkers = new Set<number>();
  let stopping = false;

  if (config.audit.enabled) {
    // Before forking: the workers would race to create it.
    const { path, created } = ensureSigningKey(loaded);
    if (created) logger.warn({ event: 'audit_key_created', key: path, public_key: publicKeyPath(path) }, 'created the audit signing key; give the public key to your auditors');
  }
  cluster.setupPrimary({ args: ['serve', '--config', configFile, '--worker'] });
  const fork = (index: number): void => {
    const w = cluster.fork({ GATEHOUSE_WORKER_INDEX: String(index) });
    byIndex.set(index, w);
    w.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      if (m.type === 'gatehouse:ready') readyWorkers.add(index);
      else if (m.type === 'gatehouse:cancel') byIndex.get(m.worker)?.send(m);
    });
    let everReady = false;
    w.on('message', (m: unknown) => {
      if (isMessage(m) && m.type === 'gatehouse:ready') everReady = true;
    });
    w.on('exit', (code, signal) => {
      readyWorkers.delete(index);
      byIndex.delete(index);
      if (!stopping && !everReady) {
        // A worker that never started (port in use, bad config) will not start on retry either.
        logger.error({ worker: index, code }, 'worker failed to start; stopping');
        process.exitCode = 1;
        process.kill(process.pid, 'SIGTERM');
        return;
      }
      if (!stopping) {
        logger.error({ worker: index, code, signal }, 'worker exited unexpectedly; restarting it');
        setTimeout(() => fork(index), 500);
      }
    });
  };
  for (let i = 0; i < workers; i++) fork(i);

  // The primary serves HTTP, so it runs the APIs, sinks, retention and the approvals sweeper; its
  // own events (retention runs, decisions through the API) go to a writer of their own.
  const store: Store = await openStore(storeSpec(loaded));
  let services: NodeServices | undefined;
  if (config.listeners.http) {
    const s = store;
    const jwt = config.auth.jwt.length > 0 ? new JwtAuthenticator(config.auth.jwt, (p) => resolve(dirname(loaded.file), p), loaded.file) : null;
    const credentials = new CredentialAuthenticator(jwt, config.auth.tokens ? s.tokens : null);
    const key = config.audit.enabled ? ensureSigningKey(loaded).key : undefined;
    const { host, port } = config.listeners.http;
    services = startServices(loaded, s, {
      logger,
      users: new LocalUsers(config.users, loaded.file),
      credentials: credentials.enabled ? credentials : null,
      record:
        key === undefined
          ? undefined
          : (e) => void recordDirect(s.audit, `${nodeIdOf(loaded)}.primary`, key, [e]).catch((err: Error) => logger.error({ event: 'audit_record_failed', alert: true, reason: err.message }, 'ALERT: could not record an audit event')),
      publicUrl: () => config.approvals.public_url?.replace(/\/+$/, '') ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    });
  }
  let http: HttpServer | undefined;
  if (config.listeners.http) {
    http = createHttpServer({
      ready: () => readyWorkers.size === workers,
      metrics: async () => ({ contentType: aggregator.contentType, body: await (await aggregator.clusterMetrics()) }),
      api: services?.api,
    });
    const { host, port } = config.listeners.http;
    try {
      await new Promise<void>((resolve, reject) => {
        http!.once('error', reject);
        http!.listen(port, host, () => resolve());
      });
    } catch (err) {
      // Stop the workers already forked, then report like any configuration error.
      stopping = true;
      for (const w of byIndex.values()) w.process.kill('SIGTERM');
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(`${configFile}: listeners.http: cannot listen on ${host}:${port}: ${code === 'EADDRINUSE' ? 'the address is already in use' : code ?? (err as Error).message}`);
    }
  }
  logger.info({ event: 'cluster_started', workers }, `started ${workers} workers`);

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ event: 'shutdown' }, 'shutting down workers');
      for (const w of byIndex.values()) w.process.kill('SIGTERM');
      const check = setInterval(() => {
        if (byIndex.size === 0) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => {
      for (const w of byIndex.values()) w.process.kill('SIGHUP');
    });
  });
  http?.closeAllConnections();
  http?.close();
  await services?.stop();
  await store.close();
  logger.info({ event: 'stopped' }, 'Gatehouse stopped');
  logger.flush();
}

/** Run one worker (called in the forked process). */
export async function runWorker(loaded: LoadedConfig): Promise<void> {
  const index = Number(process.env.GATEHOUSE_WORKER_INDEX ?? 0);
  const node = await startNode(loaded, {
    workerIndex: index,
    http: false,
    forwardCancel: (worker, pid, secret) => process.send?.({ type: 'gatehouse:cancel', worker, pid, secret } satisfies CancelMessage),
  });
  // Constructing one installs prom-client's listener that answers the primary's metric requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([node.metrics.registry]);
  process.on('message', (m: unknown) => {
    if (isMessage(m) && m.type === 'gatehouse:cancel') node.engine.cancel(m.pid, m.secret);
  });
  process.on('SIGHUP', () => void node.reloadPolicy());
  process.send?.({ type: 'gatehouse:ready' } satisfies ReadyMessage);
  await new Promise<void>((resolve) => {
    const stop = (): void => void node.shutdown().then(resolve);
    process.once('SIGTERM', stop);
    // The primary is gone (even SIGKILLed): do not linger as an orphan.
    process.once('disconnect', stop);
    process.once('SIGINT', () => {}); // the primary decides; Ctrl-C reaches the whole group
  });
  // The IPC channel would keep this process alive: let go of it so the worker exits.
  if (process.connected) process.disconnect();
}
