/**
 * Gatehouse as a separate process started the way an operator would (`gatehouse serve`), so the
 * numbers include everything production pays for: the CLI, the cluster primary when
 * --workers > 1, and the JSON logs written to a real file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createVerifier } from '../src/identity/scram.js';
import { spawnLogged, type ProcessRegistry } from './processes.js';
import type { UpstreamTransport } from './settings.js';
import { BENCH_DATABASE, PG_HOST, PG_PORT, describeUpstream, freePort, upstreamHost, waitUntilQueryable, type Target } from './targets.js';

/** Compiled to dist/bench/, two levels below the repository root. */
const BIN = fileURLToPath(new URL('../../bin/gatehouse.js', import.meta.url));

/** The Gatehouse connection name doubles as the database name clients ask for. */
const CONNECTION = 'bench';
const USER = 'bench';
const PASSWORD = 'bench-pw';

export interface GatehouseOptions {
  /** `--workers`. */
  readonly workers: number;
  /** `log.statements`. */
  readonly logStatements: boolean;
  /** `log.level`. */
  readonly logLevel?: string;
  /** How the connection reaches PostgreSQL: `upstream.host` is the socket directory or 127.0.0.1. */
  readonly upstream: UpstreamTransport;
  /** The connection's `guardrails` (built-in guardrail pack); false = pure pass-through. */
  readonly guardrails: boolean;
  /** Absolute paths for `policy.files`; none = no policy rules. */
  readonly policyFiles?: readonly string[];
  /** Target id and label ("gatehouse", "gatehouse+policy"). */
  readonly id?: string;
  /** `audit.enabled`: the tamper-evident trail (off for the pass-through target). */
  readonly audit: boolean;
  /** Extra top-level YAML appended to the generated config (e.g. a policy block). */
  readonly extraYaml?: string;
}

export interface StartedGatehouse {
  readonly target: Target;
  readonly configFile: string;
  readonly logFile: string;
}

async function waitForReadyz(port: number, failed: () => string | undefined, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failure = failed();
    if (failure) throw new Error(`gatehouse failed to start: ${failure}`);
    try {
      // With --workers > 1 only /readyz knows that every worker is listening.
      const res = await fetch(`http://${PG_HOST}:${port}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`gatehouse /readyz on port ${port} did not turn ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startGatehouse(registry: ProcessRegistry, dir: string, o: GatehouseOptions): Promise<StartedGatehouse> {
  mkdirSync(dir, { recursive: true });
  const [pgPort, httpPort] = [await freePort(), await freePort()];
  const configFile = join(dir, 'gatehouse.yaml');
  const logFile = join(dir, 'gatehouse.log');
  const level = o.logLevel ?? 'info';
  const policyFiles = o.policyFiles ?? [];
  // Both Gatehouse targets are "production" connections; only `guardrails` and the policy files
  // differ, so the ratio between them is the cost of policy evaluation alone.
  writeFileSync(
    configFile,
    `listeners:
  postgres: { host: ${PG_HOST}, port: ${pgPort} }
  http: { host: ${PG_HOST}, port: ${httpPort} }
connections:
  - name: ${CONNECTION}
    environment: production
    guardrails: ${o.guardrails}
    upstream: { host: ${JSON.stringify(upstreamHost(o.upstream))}, port: ${PG_PORT}, database: ${BENCH_DATABASE}, user: postgres }
users:
  - { name: ${USER}, kind: service, password: "${createVerifier(PASSWORD)}" }
state: { dir: ${JSON.stringify(join(dir, 'state'))} }
log: { level: ${level}, statements: ${o.logStatements} }
audit: { enabled: ${o.audit} }
server: { shutdown_timeout: 2s }
${policyFiles.length > 0 ? `policy: { files: ${JSON.stringify(policyFiles)} }\n` : ''}${o.extraYaml ?? ''}`,
  );
  const { proc, failed } = spawnLogged(registry, 'gatehouse', process.execPath, [BIN, 'serve', '--config', configFile, '--workers', String(o.workers)], logFile);
  await waitForReadyz(httpPort, failed);
  const id = o.id ?? 'gatehouse';
  const target: Target = {
    id,
    label: id,
    role: 'subject',
    pid: proc.child.pid,
    endpoint: { host: PG_HOST, port: pgPort, user: USER, password: PASSWORD, database: CONNECTION },
    description:
      `${PG_HOST}:${pgPort}, --workers ${o.workers}, log.level=${level}, log.statements=${o.logStatements}, ` +
      `guardrails=${o.guardrails}, audit=${o.audit}, policy files: ${policyFiles.length > 0 ? policyFiles.join(', ') : 'none'}, upstream ${describeUpstream(o.upstream)} (log: ${logFile})`,
  };
  await waitUntilQueryable(target.endpoint, id, { failed });
  return { target, configFile, logFile };
}
