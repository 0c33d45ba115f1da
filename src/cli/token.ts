/** `gatehouse token create|list|revoke`: tokens for agents and services, kept hashed in the state store. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { duration } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { IdentityKind } from '../identity/identity.js';
import { openStore, storeSpec } from '../store/open.js';
import type { Store } from '../store/sqlite-store.js';
import { cliAudit } from './audit-writer.js';
import type { EventInput } from '../audit/event.js';

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

/** Open the store, run `fn`, record its audit event (if it returns one), close. */
async function withStore(config: string, fn: (store: Store) => Promise<EventInput | null>): Promise<void> {
  const loaded = loadConfig(config);
  if (!loaded.config.auth.tokens) process.stderr.write(`note: ${config}: auth.tokens is false, so the proxy will not accept these tokens until it is true\n`);
  const audit = cliAudit(loaded);
  const store = await openStore(storeSpec(loaded));
  try {
    const event = await fn(store);
    if (event !== null) await audit?.(store.audit, event);
  } finally {
    await store.close();
  }
}

const actor = (): { kind: string; name: string; groups: string[] } => ({ kind: 'human', name: process.env.SUDO_USER ?? process.env.USER ?? 'unknown', groups: [] });

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
    .action(async (o: CreateOptions) => {
      if (!['human', 'agent', 'service'].includes(o.kind)) throw new ConfigError(`--kind: expected agent, service or human, got "${o.kind}"`);
      const ttl = duration.safeParse(o.ttl);
      if (!ttl.success || ttl.data <= 0) throw new ConfigError(`--ttl: expected a duration such as "8h" or "30d", got "${o.ttl}"`);
      await withStore(o.config, async (store) => {
        const { record, token: text } = await store.tokens.create({
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
        return {
          type: 'token.issue',
          identity: actor(),
          detail: { token_id: record.id, kind: record.kind, name: record.name, on_behalf_of: record.onBehalfOf ?? undefined, model: record.model ?? undefined, groups: record.groups, connections: record.connections ?? undefined, expires_at: record.expiresAt },
        };
      });
    });
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .requiredOption('-c, --config <file>', 'configuration file')
    .action(async (o: { config: string }) => {
      await withStore(o.config, async (store) => {
        const rows = await store.tokens.list();
        console.log(['id', 'kind', 'name', 'on_behalf_of', 'model', 'connections', 'created', 'expires', 'last_used', 'status'].join('\t'));
        const now = Date.now();
        for (const t of rows) {
          const status = t.revokedAt !== null ? 'revoked' : t.expiresAt <= now ? 'expired' : 'active';
          console.log([t.id, t.kind, t.name, t.onBehalfOf ?? '-', t.model ?? '-', t.connections?.join(',') ?? 'any', when(t.createdAt), when(t.expiresAt), when(t.lastUsedAt), status].join('\t'));
        }
        return null;
      });
    });
  token
    .command('revoke <id>')
    .description('revoke a token; sessions already open keep running, new ones are refused')
    .requiredOption('-c, --config <file>', 'configuration file')
    .action(async (id: string, o: { config: string }) => {
      await withStore(o.config, async (store) => {
        if (!(await store.tokens.revoke(id))) throw new ConfigError(`token "${id}" does not exist (see gatehouse token list)`);
        console.log(`token ${id} revoked`);
        return { type: 'token.revoke', identity: actor(), detail: { token_id: id } };
      });
    });
}
