/**
 * Start a real Gatehouse node in the test process, on free ports, in front of the machine's
 * PostgreSQL (or a private one), with the test users alice/bob/carol. Also: spawn the real CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import pg from 'pg';
import { parseConfig, type LoadedConfig } from '../../src/config/load.js';
import { createVerifier } from '../../src/identity/scram.js';
import { startNode, type GatehouseNode } from '../../src/server/node.js';
import type { PipelinePlugin } from '../../src/session/pipeline.js';
import { PG_HOST, PG_PORT } from './pg.js';

/** Test-only passwords: "<name>-pw". Verifiers use few iterations to keep tests fast. */
export const USERS = [
  { name: 'alice', groups: ['dba'] },
  { name: 'bob', groups: ['dba'] },
  { name: 'carol', groups: ['analysts'] },
];

const verifiers = new Map(USERS.map((u) => [u.name, createVerifier(`${u.name}-pw`, 256)]));

export interface ProxyOptions {
  /** Upstream database on the machine's PostgreSQL (connections "dev" and "prod"). */
  database: string;
  upstreamPort?: number;
  upstreamHost?: string;
  /** Extra YAML appended under the top level (merged by the caller's own keys). */
  extraYaml?: string;
  /** Replace the whole connections block. */
  connectionsYaml?: string;
  /** Replace the postgres listener block (indented under listeners:). */
  listenerYaml?: string;
  plugins?: PipelinePlugin[];
  shutdownTimeout?: string;
  env?: NodeJS.ProcessEnv;
  logStatements?: boolean;
  /** State directory (store, audit key); a fresh temporary one unless given or set in extraYaml. */
  stateDir?: string;
}

/** A state directory for a configuration whose caller gives none, removed when the test process exits. */
const scratchDirs: string[] = [];
process.once('exit', () => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
});

function scratchStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gh-state-'));
  scratchDirs.push(dir);
  return dir;
}

export function configYaml(o: ProxyOptions & { pgPort?: number; httpPort?: number }): string {
  const host = o.upstreamHost ?? PG_HOST;
  const port = o.upstreamPort ?? PG_PORT;
  const connections =
    o.connectionsYaml ??
    `connections:
  - name: dev
    environment: development
    upstream: { host: ${host}, port: ${port}, database: ${o.database}, user: postgres }
  - name: prod
    environment: production
    upstream: { host: ${host}, port: ${port}, database: ${o.database}, user: postgres }
`;
  return `listeners:
  postgres:
${o.listenerYaml ?? `    host: 127.0.0.1\n    port: ${o.pgPort ?? 0}`}
  http: { host: 127.0.0.1, port: ${o.httpPort ?? 0} }
${connections}
users:
${USERS.map((u) => `  - { name: ${u.name}, groups: [${u.groups.join(', ')}], password: "${verifiers.get(u.name)}" }`).join('\n')}
log: { level: ${process.env.GATEHOUSE_TEST_LOG ?? 'silent'}, statements: ${o.logStatements ?? true} }
server: { shutdown_timeout: ${o.shutdownTimeout ?? '5s'} }
${o.extraYaml?.includes('state:') ? '' : `state: { dir: ${o.stateDir ?? scratchStateDir()} }`}
${o.extraYaml ?? ''}
`;
}

export interface TestProxy {
  readonly node: GatehouseNode;
  readonly port: number;
  readonly httpPort: number;
  readonly loaded: LoadedConfig;
  /** A connected node-postgres client through the proxy. */
  client(opts?: { user?: string; password?: string; database?: string } & pg.ClientConfig): Promise<pg.Client>;
  /** libpq environment for psql/pgbench through the proxy. */
  env(user?: string, database?: string): Record<string, string>;
  close(): Promise<void>;
}

export async function startProxy(o: ProxyOptions): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'gh-cfg-'));
  const file = join(dir, 'gatehouse.yaml');
  const stateDir = o.stateDir ?? join(dir, 'state');
  const text = configYaml({ ...o, stateDir });
  writeFileSync(file, text);
  const loaded = parseConfig(text, file, o.env ?? process.env);
  const logger = pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' });
  const node = await startNode(loaded, { logger, plugins: o.plugins });
  const port = node.pgPort;
  const clients: pg.Client[] = [];
  return {
    node,
    port,
    httpPort: node.httpPort!,
    loaded,
    client: async (c = {}) => {
      const user = c.user ?? 'alice';
      const client = new pg.Client({ host: '127.0.0.1', port, user, password: c.password ?? `${user}-pw`, database: c.database ?? 'dev', ...c });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    },
    env: (user = 'alice', database = 'dev') => ({ PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: user, PGPASSWORD: `${user}-pw`, PGDATABASE: database, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' }),
    close: async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await node.shutdown();
      if (o.stateDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const BIN = resolve('bin/gatehouse.js');

/** Spawn the real `gatehouse` CLI; collects output. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Wait until a spawned gatehouse answers /readyz with 200; on failure the error carries its output. */
export async function waitReady(httpPort: number, proc: { output: () => string }, ms = 30_000): Promise<void> {
  await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => null))?.status === 200, ms, 'readyz').catch((err: Error) => {
    throw new Error(`${err.message}; gatehouse printed:\n${proc.output()}`);
  });
}

/** Wait until `fn` returns truthy (polling), or throw after `ms`. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
