/**
 * The `gatehouse` command. Each subcommand is a thin shell over the modules. User mistakes
 * (bad config, bad arguments) print one clear line and exit 1, never a stack trace.
 */
import { availableParallelism } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command, CommanderError } from 'commander';
import { parseDocument, YAMLSeq } from 'yaml';
import { loadConfig } from '../config/load.js';
import { loadPolicy } from '../policy/load.js';
import { registerDevJwt } from './dev-jwt.js';
import { registerTokenCommands } from './token.js';
import { registerAuditCommands } from './audit.js';
import { registerKeysCommands } from './keys.js';
import { registerApprovalCommands } from './approvals.js';
import { JwtAuthenticator } from '../identity/jwt.js';
import { dirname, resolve } from 'node:path';
import { ConfigError, GatehouseError } from '../errors.js';
import { createVerifier } from '../identity/scram.js';
import { runPrimary, runWorker as runWorkerProcess } from '../server/cluster.js';
import { startNode } from '../server/node.js';
import { registerPolicyCommands } from './policy.js';
import { MaskingStage } from '../masking/stage.js';
import pino from 'pino';

const VERSION = '0.1.0';

class UsageError extends Error {}

async function readSecret(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  process.stderr.write(prompt);
  const out = rl as unknown as { _writeToOutput: (s: string) => void };
  out._writeToOutput = () => {};
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer;
}

async function serve(opts: { config: string; workers?: string; worker?: boolean }): Promise<void> {
  // SIGHUP reloads policy once running; before that it must not end the process (its default).
  const early = (): void => {};
  process.on('SIGHUP', early);
  const loaded = loadConfig(opts.config);
  if (opts.worker) return runWorker(loaded);
  const setting = opts.workers ?? String(loaded.config.server.workers);
  const workers = setting === 'auto' ? availableParallelism() : Number(setting);
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError(`--workers: expected a whole number >= 1 or "auto", got "${setting}"`);
  if (workers > 1) return runPrimary(loaded, workers, opts.config);
  const node = await startNode(loaded);
  const reload = (): void => void node.reloadPolicy();
  process.on('SIGHUP', reload);
  process.off('SIGHUP', early);
  await new Promise<void>((resolve) => {
    const stop = (): void => void node.shutdown().then(resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  process.off('SIGHUP', reload);
}

async function demo(opts: { dataDir: string; pgPort: string; httpPort: string; reset?: boolean }): Promise<void> {
  const port = (flag: string, v: string): number => {
    const n = Number(v);
    if (!/^\d{1,5}$/.test(v) || n > 65535) throw new UsageError(`${flag}: expected a port number from 0 to 65535, got "${v}"`);
    return n;
  };
  const { startDemo } = await import('../demo/run.js');
  const running = await startDemo({ dataDir: opts.dataDir, pgPort: port('--pg-port', opts.pgPort), httpPort: port('--http-port', opts.httpPort), reset: opts.reset });
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.stdout.write('\nStopping the demo ...\n');
      void running.stop().then(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  process.stdout.write('Demo stopped; its data stays in the data directory.\n');
}

function check(opts: { config: string }): void {
  const loaded = loadConfig(opts.config);
  const policy = loadPolicy(loaded);
  // The masking classification (classes, column keys, name rules) is checked when the stage is built.
  new MaskingStage({ columns: loaded.config.masking.columns, nameRules: loaded.config.masking.name_rules, nameDefaults: loaded.config.masking.name_defaults, hashKey: Buffer.alloc(32), logger: pino({ level: 'silent' }), file: loaded.file });
  // Loads and checks every JWKS file of the auth.jwt providers.
  new JwtAuthenticator(loaded.config.auth.jwt, (p) => resolve(dirname(loaded.file), p), opts.config);
  const c = loaded.config;
  const conns = [...loaded.connections.values()].map((x) => `${x.name} (${x.environment})`).join(', ');
  console.log(`${opts.config}: ok — ${loaded.connections.size} connection(s): ${conns}; ${c.users.length} user(s); PostgreSQL listener ${c.listeners.postgres.host}:${c.listeners.postgres.port}${c.listeners.http ? `; HTTP ${c.listeners.http.host}:${c.listeners.http.port}` : ''}; ${policy.rules.length} policy rule(s) from ${loaded.policyFiles.length} file(s) and the built-in guardrails`);
}

async function userAdd(name: string, opts: { config: string; groups?: string; kind: string; passwordStdin?: boolean }): Promise<void> {
  if (!['human', 'agent', 'service'].includes(opts.kind)) throw new UsageError(`--kind: expected human, agent or service, got "${opts.kind}"`);
  const text = readFileSync(opts.config, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new ConfigError(`${opts.config}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const password = await readSecret(`Password for ${name}: `);
  if (password.length === 0) throw new UsageError('the password is empty');
  let users = doc.get('users');
  if (!(users instanceof YAMLSeq)) {
    users = doc.createNode([]);
    doc.set('users', users);
  }
  const seq = users as YAMLSeq;
  const entry = { name, password: createVerifier(password), kind: opts.kind, groups: opts.groups ? opts.groups.split(',').map((g) => g.trim()).filter(Boolean) : [] };
  const at = seq.items.findIndex((u) => (u as { get?: (k: string) => unknown }).get?.('name') === name);
  if (at >= 0) seq.items[at] = doc.createNode(entry);
  else seq.items.push(doc.createNode(entry));
  const next = doc.toString();
  // Validate before writing: never leave a broken file behind.
  const { parseConfig } = await import('../config/load.js');
  parseConfig(next, opts.config);
  writeFileSync(opts.config, next);
  console.log(`${at >= 0 ? 'updated' : 'added'} user "${name}" in ${opts.config} (only a SCRAM-SHA-256 verifier is stored)`);
}

async function runWorker(loaded: Parameters<typeof runWorkerProcess>[0]): Promise<void> {
  try {
    await runWorkerProcess(loaded);
  } catch (err) {
    process.stderr.write(`gatehouse worker: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('gatehouse')
    .description('Identity-aware governance proxy for databases')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('serve')
    .description('run the proxy')
    .requiredOption('-c, --config <file>', 'configuration file')
    .option('-w, --workers <n>', 'worker processes ("auto" = one per core); overrides server.workers')
    .addOption(new (await import('commander')).Option('--worker').hideHelp())
    .action(serve);

  program
    .command('demo')
    .description('run Gatehouse in front of an embedded PostgreSQL seeded with demo data, and print commands to try')
    .option('-d, --data-dir <dir>', 'where the demo keeps its database, store and configuration', '.gatehouse-demo')
    .option('--pg-port <port>', 'PostgreSQL listener port', '6432')
    .option('--http-port <port>', 'HTTP listener port', '8080')
    .option('--reset', 'delete the data directory first (fresh data, new audit trail)')
    .action(demo);

  program.command('check').description('validate a configuration file').requiredOption('-c, --config <file>', 'configuration file').action(check);

  registerPolicyCommands(program);

  registerDevJwt(program);
  registerTokenCommands(program);
  registerAuditCommands(program);
  registerKeysCommands(program);
  registerApprovalCommands(program);

  const user = program.command('user').description('manage local users');
  user
    .command('add <name>')
    .description('add or update a local user; the password is read from stdin (or prompted) and stored only as a SCRAM-SHA-256 verifier')
    .requiredOption('-c, --config <file>', 'configuration file to update')
    .option('-g, --groups <list>', 'comma-separated groups')
    .option('-k, --kind <kind>', 'human, agent or service', 'human')
    .action(userAdd);
  user
    .command('verifier')
    .description('print the SCRAM-SHA-256 verifier of a password read from stdin')
    .action(async () => console.log(createVerifier(await readSecret('Password: '))));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof GatehouseError || err instanceof UsageError) {
      process.stderr.write(`gatehouse: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
