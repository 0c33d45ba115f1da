/**
 * node-relay, a reference target: bench/relay-process.ts started as its own process (like the
 * proxies, in its own session), relaying bytes between pgbench and PostgreSQL with Gatehouse's
 * socket I/O and nothing else. It sits between pgbouncer and Gatehouse: what any Node.js proxy
 * built this way pays on this machine before it does any work of its own.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnLogged, type ProcessRegistry } from './processes.js';
import type { UpstreamTransport } from './settings.js';
import { BENCH_DATABASE, PG_HOST, PG_PORT, describeUpstream, freePort, upstreamHost, waitUntilQueryable, type Target } from './targets.js';

const PROGRAM = fileURLToPath(new URL('./relay-process.js', import.meta.url));

export async function startNodeRelay(registry: ProcessRegistry, dir: string, upstream: UpstreamTransport): Promise<Target> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const logFile = join(dir, 'relay.log');
  const { proc, failed } = spawnLogged(registry, 'node-relay', process.execPath, [PROGRAM, String(port), upstreamHost(upstream), String(PG_PORT)], logFile);
  const target: Target = {
    id: 'node-relay',
    label: 'node-relay',
    role: 'baseline',
    pid: proc.child.pid,
    // PostgreSQL authenticates the client itself (trust): the relay only carries bytes.
    endpoint: { host: PG_HOST, port, user: 'postgres', database: BENCH_DATABASE },
    description: `${PG_HOST}:${port}, Node.js ${process.version}: bytes only, with Gatehouse's socket I/O (no protocol, pipeline or log), one upstream connection per client, upstream ${describeUpstream(upstream)}`,
  };
  await waitUntilQueryable(target.endpoint, 'node-relay', { failed });
  return target;
}
