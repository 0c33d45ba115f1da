/**
 * `gatehouse demo`: the whole product on a machine with nothing but Node. An embedded PostgreSQL
 * (PGlite, ./database.ts) seeded with a small company database, Gatehouse in front of it as the
 * production connection "demo" with the demo policy (examples/demo/policy.yaml: guardrails, row
 * cap, masking outside dba, approvals for DDL), state in a data directory, and, on start, the
 * commands to paste: psql as people, as an AI agent and as a CI job (tokens minted at start),
 * approving, and verifying the audit trail.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { createVerifier } from '../identity/scram.js';
import { startNode, type GatehouseNode } from '../server/node.js';
import { startDemoDatabase, type DemoDatabase } from './database.js';

/** The repository root (dist/src/demo -> ../../..). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEMO_POLICY = join(ROOT, 'examples/demo/policy.yaml');

export interface DemoOptions {
  /** Where the embedded database, the store and the generated configuration live. */
  readonly dataDir: string;
  readonly pgPort: number;
  readonly httpPort: number;
  readonly host?: string;
  /** Start over: delete the data directory first. */
  readonly reset?: boolean;
  /** Lines for the user (default: stdout). */
  readonly print?: (line: string) => void;
}

export interface RunningDemo {
  readonly node: GatehouseNode;
  readonly database: DemoDatabase;
  /** The generated configuration (for the CLI's -c). */
  readonly configFile: string;
  readonly agentToken: string;
  readonly ciToken: string;
  stop(): Promise<void>;
}

/** The demo's people: passwords "<name>-pw", for this demo only. */
const PEOPLE = [
  { name: 'alice', groups: ['dba'] },
  { name: 'bob', groups: ['dba'] },
  { name: 'carol', groups: ['analysts'] },
];

/** Fail early, naming the flag, when a port is taken (before the slow database start). */
async function checkPort(host: string, port: number, flag: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((ok, fail) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) =>
      fail(new ConfigError(`port ${port} on ${host} is ${err.code === 'EADDRINUSE' ? 'already in use' : `not available (${err.code ?? err.message})`}; choose another with ${flag} <port>`)),
    );
    s.listen({ host, port, exclusive: true }, () => s.close(() => ok()));
  });
}

/** The configuration of the demo node, as YAML. */
export function demoConfig(o: { host: string; pgPort: number; httpPort: number; upstreamPort: number; stateDir: string }): string {
  const users = PEOPLE.map((p) => `  - { name: ${p.name}, kind: human, groups: [${p.groups.join(', ')}], password: "${createVerifier(`${p.name}-pw`)}" }`).join('\n');
  return `# Written by \`gatehouse demo\` at each start; edits are overwritten.
listeners:
  postgres: { host: ${o.host}, port: ${o.pgPort} }
  http: { host: ${o.host}, port: ${o.httpPort} }
connections:
  - name: demo
    environment: production
    upstream: { host: 127.0.0.1, port: ${o.upstreamPort}, database: postgres, user: postgres }
policy:
  files: [${JSON.stringify(DEMO_POLICY)}]
users:
${users}
auth:
  tokens: true
  cleartext_from_loopback: true
state:
  dir: ${JSON.stringify(o.stateDir)}
masking:
  columns:
    customers.address: address
    support_tickets.notes: free_text
    api_keys.key: secret
api:
  admin_groups: [dba]
log:
  level: warn
  statements: false
`;
}

export async function startDemo(opts: DemoOptions): Promise<RunningDemo> {
  const t0 = performance.now();
  const print = opts.print ?? ((l: string) => process.stdout.write(`${l}\n`));
  const host = opts.host ?? '127.0.0.1';
  const dataDir = resolve(opts.dataDir);
  await checkPort(host, opts.pgPort, '--pg-port');
  await checkPort(host, opts.httpPort, '--http-port');
  mkdirSync(dataDir, { recursive: true });
  print(`Starting the embedded PostgreSQL in ${join(dataDir, 'pgdata')} ...`);
  const database = await startDemoDatabase({ dataDir: join(dataDir, 'pgdata'), reset: opts.reset });
  let node: GatehouseNode;
  const configFile = join(dataDir, 'gatehouse.yaml');
  try {
    writeFileSync(configFile, demoConfig({ host, pgPort: opts.pgPort, httpPort: opts.httpPort, upstreamPort: database.port, stateDir: join(dataDir, 'state') }));
    node = await startNode(loadConfig(configFile));
  } catch (err) {
    await database.stop();
    throw err;
  }
  const day = 86_400_000;
  const agentToken = (await node.store.tokens.create({ kind: 'agent', name: 'claude-agent', onBehalfOf: 'alice', model: 'claude', ttlMs: day })).token;
  const ciToken = (await node.store.tokens.create({ kind: 'service', name: 'ci-deploy', ttlMs: day })).token;
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  const rel = relative(process.cwd(), configFile);
  const cfg = rel === '' || rel.startsWith('..') ? configFile : rel;
  const pg = `psql -h ${host} -p ${node.pgPort}`;
  const http = `http://${host}:${node.httpPort}`;
  const lines = [
    '',
    `Gatehouse demo is ready (${secs} s${database.seeded ? ', database seeded' : ''}).`,
    `  data directory: ${dataDir}   (start over with --reset)`,
    `  PostgreSQL:     ${host}:${node.pgPort}, database name "demo" (production: guardrails, masking, approvals)`,
    `  HTTP:           ${http}   configuration: ${cfg}`,
    '',
    'In another terminal, paste:',
    '',
    `  export AGENT_TOKEN=${agentToken}`,
    `  export CI_TOKEN=${ciToken}`,
    '',
    `  PGPASSWORD=alice-pw ${pg} -U alice demo              # alice, human, dba: clear values`,
    `  PGPASSWORD=bob-pw ${pg} -U bob demo                  # bob, human, dba`,
    `  PGPASSWORD=carol-pw ${pg} -U carol demo              # carol, human, analysts: masked`,
    `  PGPASSWORD=$AGENT_TOKEN ${pg} -U claude-agent demo   # an AI agent acting for alice`,
    `  PGPASSWORD=$CI_TOKEN ${pg} -U ci-deploy demo         # a CI job`,
    '',
    '  # approve a pending request (the NOTICE names it), as bob:',
    `  GATEHOUSE_URL=${http} GATEHOUSE_USER=bob GATEHOUSE_PASSWORD=bob-pw node bin/gatehouse.js approvals list`,
    `  GATEHOUSE_URL=${http} GATEHOUSE_USER=bob GATEHOUSE_PASSWORD=bob-pw node bin/gatehouse.js approvals approve <id>`,
    '',
    '  # search and verify the audit trail:',
    `  node bin/gatehouse.js audit search -c ${cfg} --identity claude-agent`,
    `  node bin/gatehouse.js audit verify -c ${cfg}`,
    '',
    'Ctrl-C stops the demo.',
  ];
  for (const l of lines) print(l);
  let stopping: Promise<void> | undefined;
  return {
    node,
    database,
    configFile,
    agentToken,
    ciToken,
    stop: () =>
      (stopping ??= (async () => {
        await node.shutdown();
        await database.stop();
      })()),
  };
}
