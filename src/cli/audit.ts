/**
 * `gatehouse audit verify|tail|search|export`: reading the tamper-evident audit trail.
 *
 * Exit codes follow the rest of the CLI: 0 on success, 1 on any error. A usage or configuration
 * error prints one `gatehouse: <message>` line; tampering found by `verify` prints a
 * `FAILED: <node> seq <n>: <reason>` line per problem on stdout and a summary on stderr that says
 * "tampering detected" and names the first broken sequence number of each writer.
 */
import { createWriteStream, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { KeyObject } from 'node:crypto';
import type { Command } from 'commander';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { duration } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { keyId, loadPublicKey, loadSigningKey, publicKeyFromPem } from '../audit/chain.js';
import { EVENT_TYPES, eventColumns, type AuditEvent } from '../audit/event.js';
import { ExportFile, writeExport } from '../audit/export.js';
import { signingKeyPath, publicKeyPath } from '../audit/setup.js';
import { verifyAudit, type VerifyResult, type VerifySource } from '../audit/verify.js';
import type { AuditFilter, StoredEvent } from '../store/audit.js';
import { openStore, storeSpec } from '../store/open.js';
import type { Store } from '../store/sqlite-store.js';

/** Repeatable option values (no default, so help shows none). */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Open the configured store; a missing SQLite file is an error rather than a new empty store. */
async function openConfiguredStore(loaded: LoadedConfig): Promise<Store> {
  const spec = storeSpec(loaded);
  if (spec.kind === 'sqlite' && !existsSync(spec.file)) throw new ConfigError(`state.dir: there is no audit store at "${spec.file}" (has the proxy run with this configuration?)`);
  return openStore(spec);
}

async function withStore<T>(config: string, fn: (store: Store, loaded: LoadedConfig) => Promise<T>): Promise<T> {
  const loaded = loadConfig(config);
  const store = await openConfiguredStore(loaded);
  try {
    return await fn(store, loaded);
  } finally {
    await store.close();
  }
}

/** The public key beside the configured signing key (derived from the private key if the .pub is gone). */
export function configuredPublicKey(loaded: LoadedConfig): { key: KeyObject; keyId: string; path: string; derived: boolean } {
  const privatePath = signingKeyPath(loaded);
  const pubPath = publicKeyPath(privatePath);
  if (existsSync(pubPath)) {
    let key: KeyObject;
    try {
      key = publicKeyFromPem(readFileSync(pubPath, 'utf8'));
    } catch (err) {
      throw new ConfigError(`audit.signing_key: cannot read the public key "${pubPath}": ${(err as NodeJS.ErrnoException).code ?? 'not a PEM public key'}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError(`audit.signing_key: "${pubPath}" is a ${key.asymmetricKeyType} key; expected Ed25519`);
    return { key, keyId: keyId(key), path: pubPath, derived: false };
  }
  if (existsSync(privatePath)) {
    const k = loadSigningKey(privatePath);
    return { key: k.publicKey, keyId: k.keyId, path: privatePath, derived: true };
  }
  throw new ConfigError(`audit.signing_key: there is no public key at "${pubPath}" (nor a private key beside it); pass the auditors' copy with --public-key`);
}

function keysFrom(paths: readonly string[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const p of paths) {
    const { key, keyId: id } = loadPublicKey(p);
    keys.set(id, key);
  }
  return keys;
}

// ---- verify ---------------------------------------------------------------------------------

/** Remembers the last page handed to verify, to name the event if verify throws on it. */
class LastPage implements VerifySource {
  readonly #source: VerifySource;
  rows: StoredEvent[] = [];
  constructor(source: VerifySource) {
    this.#source = source;
  }
  nodes(): Promise<string[]> {
    return this.#source.nodes();
  }
  checkpoints(node: string): ReturnType<VerifySource['checkpoints']> {
    return this.#source.checkpoints(node);
  }
  async range(node: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    this.rows = await this.#source.range(node, afterSeq, limit);
    return this.rows;
  }
}

/** Whether a body that parses is an object whose indexed columns can be read. */
function eventShaped(body: string): boolean {
  let e: unknown;
  try {
    e = JSON.parse(body);
  } catch {
    return true; // not JSON: verify reports it itself
  }
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return false;
  try {
    eventColumns(e as AuditEvent);
    return true;
  } catch {
    return false;
  }
}

interface VerifyOptions {
  config?: string;
  file?: string;
  publicKey?: string[];
  requireSignedTail?: boolean;
}

function writerLine(w: VerifyResult['writers'][number], brokenAt: number | undefined): string {
  // verify stops a writer at its first broken event; its counts are then partial.
  const complete = w.last > 0 && w.signedThrough + w.unsignedTail === w.last;
  if (brokenAt !== undefined && !complete) return `writer ${w.node}: broken at seq ${brokenAt} (verification stopped after reading ${w.events} event(s)), ${w.checkpoints} checkpoint(s)`;
  const range = w.events === 0 ? 'no events' : `${w.events} event(s), seq ${w.first}..${w.last}`;
  return `writer ${w.node}: ${range}, ${w.checkpoints} checkpoint(s), signed through seq ${w.signedThrough}, unsigned tail ${w.unsignedTail} event(s)${brokenAt !== undefined ? `; FAILED at seq ${brokenAt}` : ''}`;
}

async function verifyAction(o: VerifyOptions, cmd: Command): Promise<void> {
  if (o.config === undefined && o.file === undefined) throw new ConfigError('audit verify: give --config <file> (verify the configured store) or --file <export.jsonl> (verify an export offline)');
  if (o.config !== undefined && o.file !== undefined) throw new ConfigError('audit verify: give --config or --file, not both');
  let source: VerifySource;
  let keys: Map<string, KeyObject>;
  let cleanup: () => Promise<void>;
  let fileProblems: string[] = [];
  /** With --config: the longest unsigned tail a running writer leaves (it signs at least every `every` events, per batch). */
  let tailBound = Infinity;
  if (o.file !== undefined) {
    const file = await ExportFile.open(o.file);
    source = file;
    cleanup = async () => file.close();
    if (o.publicKey !== undefined) keys = keysFrom(o.publicKey);
    else {
      keys = file.headerKeys();
      process.stderr.write(
        `warning: no --public-key given: trusting the public key(s) in the export's own header (${[...keys.keys()].join(', ') || 'none'}); whoever could alter the file could replace them too. Verify with your own copy: --public-key <file.pub>\n`,
      );
    }
    fileProblems = file.malformed.map((m) => `FAILED: ${o.file} line ${m.line}: ${m.reason} (the line was altered)`);
    if (file.malformedCount > file.malformed.length) fileProblems.push(`FAILED: ${o.file}: ${file.malformedCount - file.malformed.length} more bad line(s)`);
  } else {
    const loaded = loadConfig(o.config!);
    tailBound = loaded.config.audit.checkpoint.every + loaded.config.audit.max_batch;
    if (o.publicKey !== undefined) keys = keysFrom(o.publicKey);
    else {
      const { key, keyId: id } = configuredPublicKey(loaded);
      keys = new Map([[id, key]]);
    }
    const store = await openConfiguredStore(loaded);
    source = store.audit;
    cleanup = () => store.close();
  }
  let result: VerifyResult;
  const watched = new LastPage(source);
  try {
    result = await verifyAudit(watched, keys, { requireSignedTail: o.requireSignedTail === true });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // verifyAudit throws on a body that is JSON but not an event (e.g. `null`): tampering too, not a crash.
    const bad = watched.rows.find((r) => !eventShaped(r.body));
    if (bad === undefined) console.log(`FAILED: verification stopped: ${(err as Error).message}`);
    else console.log(`FAILED: ${bad.node} seq ${bad.seq}: event ${bad.seq} is not an audit event (modified)`);
    const named = bad === undefined ? `an event could not be checked (${(err as Error).message})` : `first broken sequence number: seq ${bad.seq} of writer ${bad.node}`;
    return void cmd.error(`gatehouse: audit verify: TAMPERING DETECTED; ${named}`, { exitCode: 1, code: 'gatehouse.audit.tampered' });
  } finally {
    await cleanup();
  }
  const broken = new Map(result.problems.map((p) => [p.node, p.seq]));
  for (const w of result.writers) {
    console.log(writerLine(w, broken.get(w.node)));
    if (!broken.has(w.node) && w.unsignedTail > tailBound) {
      process.stderr.write(
        `warning: writer ${w.node} has ${w.unsignedTail} events after its last checkpoint, more than a writer leaves unsigned with this configuration (audit.checkpoint.every + audit.max_batch = ${tailBound}): checkpoints may have been deleted and those events rewritten; --require-signed-tail makes this a failure\n`,
      );
    }
  }
  if (result.writers.length === 0) console.log('no audit events');
  if (result.ok && fileProblems.length === 0) {
    console.log('OK');
    return;
  }
  for (const p of result.problems) console.log(`FAILED: ${p.node} seq ${p.seq}: ${p.reason}`);
  for (const line of fileProblems) console.log(line);
  const firsts = new Map<string, number>();
  for (const p of result.problems) firsts.set(p.node, Math.min(firsts.get(p.node) ?? Infinity, p.seq));
  const named = [...firsts].map(([node, seq]) => `seq ${seq} of writer ${node}`).join(', ');
  const count = result.problems.length + fileProblems.length;
  cmd.error(`gatehouse: audit verify: TAMPERING DETECTED (${count} problem(s))${named ? `; first broken sequence number: ${named}` : ''}`, { exitCode: 1, code: 'gatehouse.audit.tampered' });
}

// ---- tail and search ------------------------------------------------------------------------

const iso = (ms: number): string => new Date(ms).toISOString();
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** One human-readable line: time node#seq type identity (for whom) connection/env decision kind tables text-or-detail. */
export function formatEvent(row: StoredEvent): string {
  let e: Partial<AuditEvent> = {};
  try {
    e = JSON.parse(row.body) as AuditEvent;
  } catch {
    // Shown from its columns; `audit verify` reports the body.
  }
  const who = row.identity === null ? '-' : row.on_behalf_of !== null ? `${row.identity} (for ${row.on_behalf_of})` : row.identity;
  const where = row.connection === null ? '-' : `${row.connection}/${row.environment ?? '-'}`;
  const decision = row.decision === null ? '-' : e.decision?.rule !== undefined ? `${row.decision}(${e.decision.rule})` : row.decision;
  const tables = row.tables === null ? '-' : row.tables.slice(1, -1);
  const what = e.statement !== undefined ? e.statement.text : e.detail !== undefined ? JSON.stringify(e.detail) : '';
  return `${iso(row.ts)} ${row.node}#${row.seq} ${row.type} ${who} ${where} ${decision} ${row.kind ?? '-'} ${tables}${what === '' ? '' : ` ${oneLine(what)}`}`;
}

/**
 * When the reader of stdout goes away (`| head`), stop quietly as other Unix tools do, instead of
 * failing with EPIPE.
 */
function exitOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
}

const printer = (json: boolean) => (row: StoredEvent): void => {
  process.stdout.write(`${json ? row.body : formatEvent(row)}\n`);
};

function positiveInt(name: string, text: string, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > max) throw new ConfigError(`${name}: expected a whole number from 1 to ${max}, got "${text}"`);
  return n;
}

/** An ISO 8601 time, or a duration ago ("90s", "1h", "7d"). */
export function parseTime(option: string, text: string, now = Date.now()): number {
  const ago = duration.safeParse(text);
  if (ago.success) return now - ago.data;
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isNaN(t)) return t;
  }
  throw new ConfigError(`${option}: expected an ISO time such as "2025-01-31T09:00:00Z" or a duration ago such as "1h" or "7d", got "${text}"`);
}

interface TailOptions {
  config: string;
  lines: string;
  follow?: boolean;
  json?: boolean;
  interval: string;
}

async function tailAction(o: TailOptions): Promise<void> {
  const n = positiveInt('-n', o.lines, 100_000);
  const interval = duration.safeParse(o.interval);
  if (!interval.success || interval.data < 10) throw new ConfigError(`--interval: expected a duration of at least 10ms such as "1s" or "500ms", got "${o.interval}"`);
  const print = printer(o.json === true);
  exitOnClosedPipe();
  await withStore(o.config, async (store) => {
    // Heads first: whatever is appended after them is printed by --follow.
    const cursors = new Map<string, number>();
    if (o.follow) for (const node of await store.audit.nodes()) cursors.set(node, (await store.audit.head(node))?.seq ?? 0);
    const latest = (await store.audit.search({}, n, 'desc')).reverse();
    const shown = new Set<string>();
    for (const row of latest) {
      print(row);
      if (o.follow && row.seq > (cursors.get(row.node) ?? 0)) shown.add(`${row.node}#${row.seq}`);
    }
    if (o.follow) await follow(store, cursors, shown, print, interval.data);
  });
}

/** Poll every writer for events after its cursor until SIGINT or SIGTERM. */
async function follow(store: Store, cursors: Map<string, number>, shown: Set<string>, print: (row: StoredEvent) => void, intervalMs: number): Promise<void> {
  let stopped = false;
  let wake = (): void => {};
  const stop = (): void => {
    stopped = true;
    wake();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!stopped) {
      const fresh: StoredEvent[] = [];
      for (const node of await store.audit.nodes()) {
        let after = cursors.get(node) ?? 0;
        for (;;) {
          const rows = await store.audit.range(node, after, 1000);
          for (const r of rows) if (!shown.delete(`${node}#${r.seq}`)) fresh.push(r);
          if (rows.length > 0) after = rows[rows.length - 1]!.seq;
          if (rows.length < 1000) break;
        }
        cursors.set(node, after);
      }
      fresh.sort((a, b) => a.ts - b.ts || (a.node < b.node ? -1 : a.node > b.node ? 1 : a.seq - b.seq));
      for (const r of fresh) print(r);
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

interface SearchOptions {
  config: string;
  identity?: string;
  onBehalfOf?: string;
  connection?: string;
  environment?: string;
  kind?: string;
  table?: string;
  decision?: string;
  type?: string;
  session?: string;
  node?: string;
  since?: string;
  until?: string;
  limit: string;
  order: string;
  json?: boolean;
}

/** The store filter of `audit search`'s options. */
export function searchFilter(o: Omit<SearchOptions, 'config' | 'limit' | 'order' | 'json'>, now = Date.now()): AuditFilter {
  if (o.type !== undefined && !(EVENT_TYPES as readonly string[]).includes(o.type)) throw new ConfigError(`--type: unknown event type "${o.type}"; expected one of ${EVENT_TYPES.join(', ')}`);
  const since = o.since === undefined ? undefined : parseTime('--since', o.since, now);
  const until = o.until === undefined ? undefined : parseTime('--until', o.until, now);
  if (since !== undefined && until !== undefined && since >= until) throw new ConfigError(`--since ${o.since} is not before --until ${o.until}`);
  return {
    identity: o.identity,
    onBehalfOf: o.onBehalfOf,
    connection: o.connection,
    environment: o.environment,
    kind: o.kind,
    table: o.table,
    decision: o.decision,
    type: o.type,
    session: o.session,
    node: o.node,
    since,
    until,
  };
}

async function searchAction(o: SearchOptions): Promise<void> {
  const limit = positiveInt('--limit', o.limit, 1_000_000);
  if (o.order !== 'newest' && o.order !== 'oldest') throw new ConfigError(`--order: expected "newest" or "oldest", got "${o.order}"`);
  const filter = searchFilter(o);
  const print = printer(o.json === true);
  exitOnClosedPipe();
  await withStore(o.config, async (store) => {
    for (const row of await store.audit.search(filter, limit, o.order === 'oldest' ? 'asc' : 'desc')) print(row);
  });
}

// ---- export ---------------------------------------------------------------------------------

interface ExportOptions {
  config: string;
  format: string;
  output?: string;
  node?: string[];
}

async function exportAction(o: ExportOptions): Promise<void> {
  if (o.format !== 'jsonl') throw new ConfigError(`--format: the only export format is "jsonl", got "${o.format}"`);
  await withStore(o.config, async (store, loaded) => {
    const known = await store.audit.nodes();
    for (const n of o.node ?? []) if (!known.includes(n)) throw new ConfigError(`--node: no writer "${n}" in the audit store (writers: ${known.join(', ') || 'none'})`);
    const publicKeys: Record<string, string> = {};
    try {
      const { key, keyId: id } = configuredPublicKey(loaded);
      publicKeys[id] = key.export({ type: 'spki', format: 'pem' }).toString();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`note: the export's header carries no public key: ${err.message}\n`);
    }
    const opts = { publicKeys, nodes: o.node };
    if (o.output === undefined) {
      exitOnClosedPipe();
      const summary = await writeExport(store.audit, process.stdout, opts).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') process.exit(0);
        throw new ConfigError(`cannot write the export to stdout: ${err.code ?? err.message}`);
      });
      process.stderr.write(`exported ${summary.events} event(s) and ${summary.checkpoints} checkpoint(s) of ${summary.writers} writer(s)\n`);
      return;
    }
    // Written beside the target and renamed when complete: a failed export leaves no partial file.
    const partial = `${o.output}.partial-${process.pid}`;
    const out = createWriteStream(partial, { mode: 0o600 });
    try {
      await once(out, 'open');
      const summary = await writeExport(store.audit, out, opts);
      out.end();
      await once(out, 'finish');
      renameSync(partial, o.output);
      process.stderr.write(`exported ${summary.events} event(s) and ${summary.checkpoints} checkpoint(s) of ${summary.writers} writer(s) to ${o.output}\n`);
    } catch (err) {
      out.destroy();
      rmSync(partial, { force: true });
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`--output: cannot write "${o.output}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  });
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('verify, read and export the tamper-evident audit trail');
  audit
    .command('verify')
    .description('recompute every writer\'s hash chain and check its signed checkpoints; exit 1 naming the first broken sequence number if anything was altered')
    .option('-c, --config <file>', 'verify the store of this configuration')
    .option('-f, --file <export.jsonl>', 'verify an export file, offline (no configuration needed)')
    .option('--public-key <pem>', 'trusted Ed25519 public key (repeatable; default: the one beside the configured signing key, or with --file the header\'s keys, with a warning)', collect)
    .option('--require-signed-tail', 'fail when events after the last checkpoint are not signed yet')
    .action(verifyAction);
  audit
    .command('tail')
    .description('print the latest events, oldest of them first')
    .requiredOption('-c, --config <file>', 'configuration file')
    .option('-n, --lines <n>', 'how many events', '20')
    .option('-f, --follow', 'keep printing new events until interrupted (Ctrl-C)')
    .option('--interval <duration>', 'how often --follow polls the store', '1s')
    .option('--json', 'print each event as its canonical JSON, one per line')
    .action(tailAction);
  audit
    .command('search')
    .description('print events matching every given filter, newest first (--order oldest for oldest first)')
    .requiredOption('-c, --config <file>', 'configuration file')
    .option('--identity <name>', 'who (the identity name)')
    .option('--on-behalf-of <name>', 'the person an agent acted for')
    .option('--connection <name>', 'connection name')
    .option('--environment <env>', 'connection environment, e.g. production')
    .option('--kind <kind>', 'statement kind, e.g. SELECT, UPDATE, DROP')
    .option('--table <table>', 'a table the statement touched')
    .option('--decision <action>', 'allow, deny, ...')
    .option('--type <type>', 'event type, e.g. statement, auth.failure')
    .option('--session <id>', 'session id')
    .option('--node <id>', 'writer (node) id')
    .option('--since <time>', 'from this time (ISO 8601, or a duration ago: 1h, 7d)')
    .option('--until <time>', 'before this time (ISO 8601, or a duration ago)')
    .option('--limit <n>', 'most events printed', '100')
    .option('--order <order>', 'newest or oldest first', 'newest')
    .option('--json', 'print each event as its canonical JSON, one per line')
    .action(searchAction);
  audit
    .command('export')
    .description('write every event and checkpoint to a JSON Lines file that `audit verify --file` checks offline')
    .requiredOption('-c, --config <file>', 'configuration file')
    .option('--format <format>', 'export format (jsonl)', 'jsonl')
    .option('-o, --output <file>', 'write here (mode 0600) instead of stdout')
    .option('--node <id>', 'only this writer (repeatable)', collect)
    .action(exportAction);
}
