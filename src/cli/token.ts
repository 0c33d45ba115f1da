/** `gatehouse token create|list|revoke`: tokens for agents and services, kept hashed in the state store. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { duration } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { IdentityKind } from '../identity/identity.js';
import { SqliteStore, storePath } from '../store/sqlite-store.js';

interface CreateOptions {
  config: string;
  kind: string;
  name: string;
  onBehalfOf?: string;
  ttl: string;
  model?: string;
  connections?: string;
  groups?: string;
}

const list = (v: string | undefined): string[] | undefined => v?.split(',').map((x) => x.trim()).filter(Boolean);
const when = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z'));

function openStore(config: string): SqliteStore {
  const loaded = loadConfig(config);
  if (!loaded.config.auth.tokens) process.stderr.write(`note: ${config}: auth.tokens is false, so the proxy will not accept these tokens until it is true\n`);
  return new SqliteStore(storePath(loaded));
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('tokens for AI agents and services (stored only as a hash)');
  token
    .command('create')
    .description('issue a token; it is printed once, on the last line')
    .requiredOption('-c, --config <file>', 'configuration file')
    .requiredOption('--kind <kind>', 'agent or service (or human)')
    .requiredOption('--name <name>', 'identity name (the user name clients connect with)')
    .option('--on-behalf-of <human>', 'the person who delegated the work')
    .option('--ttl <duration>', 'lifetime, e.g. 8h, 30d', '8h')
    .option('--model <model>', 'model or agent software and version')
    .option('--connections <list>', 'comma-separated connections it may use (default: any)')
    .option('--groups <list>', 'comma-separated groups')
    .action((o: CreateOptions) => {
      if (!['human', 'agent', 'service'].includes(o.kind)) throw new ConfigError(`--kind: expected agent, service or human, got "${o.kind}"`);
      const ttl = duration.safeParse(o.ttl);
      if (!ttl.success || ttl.data <= 0) throw new ConfigError(`--ttl: expected a duration such as "8h" or "30d", got "${o.ttl}"`);
      const store = openStore(o.config);
      try {
        const { record, token: text } = store.tokens.create({
          kind: o.kind as IdentityKind,
          name: o.name,
          onBehalfOf: o.onBehalfOf,
          model: o.model,
          groups: list(o.groups),
          connections: list(o.connections),
          ttlMs: ttl.data,
        });
        console.log(`token ${record.id} for ${record.kind} "${record.name}"${record.onBehalfOf ? ` on behalf of ${record.onBehalfOf}` : ''}, expires ${when(record.expiresAt)}`);
        console.log('store it now: it is not shown again');
        console.log(text);
      } finally {
        store.close();
      }
    });
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .requiredOption('-c, --config <file>', 'configuration file')
    .action((o: { config: string }) => {
      const store = openStore(o.config);
      try {
        const rows = store.tokens.list();
        console.log(['id', 'kind', 'name', 'on_behalf_of', 'model', 'connections', 'created', 'expires', 'last_used', 'status'].join('\t'));
        const now = Date.now();
        for (const t of rows) {
          const status = t.revokedAt !== null ? 'revoked' : t.expiresAt <= now ? 'expired' : 'active';
          console.log([t.id, t.kind, t.name, t.onBehalfOf ?? '-', t.model ?? '-', t.connections?.join(',') ?? 'any', when(t.createdAt), when(t.expiresAt), when(t.lastUsedAt), status].join('\t'));
        }
      } finally {
        store.close();
      }
    });
  token
    .command('revoke <id>')
    .description('revoke a token; sessions already open keep running, new ones are refused')
    .requiredOption('-c, --config <file>', 'configuration file')
    .action((id: string, o: { config: string }) => {
      const store = openStore(o.config);
      try {
        if (!store.tokens.revoke(id)) throw new ConfigError(`token "${id}" does not exist (see gatehouse token list)`);
        console.log(`token ${id} revoked`);
      } finally {
        store.close();
      }
    });
}
