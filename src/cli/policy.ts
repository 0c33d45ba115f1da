/**
 * `gatehouse policy explain` and `gatehouse policy test`: the proxy's own analysis and decision
 * code (FactsCache, decideStatements) run outside the proxy, for one statement or for a file of
 * fixtures. Nothing here decides differently from the policy stage; it only prints.
 * docs/policy.md describes both commands.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { parseYaml } from '../config/yaml.js';
import { z } from 'zod';
import { loadConfig, type LoadedConfig, type ResolvedConnection } from '../config/load.js';
import { AccessDenied, ConfigError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { LocalUsers } from '../identity/local-users.js';
import { contextView, identityView, type CelObject } from '../policy/cel-view.js';
import { createPolicyInput, decideStatements, type QueryDecision } from '../policy/decide.js';
import type { PolicyEngine } from '../policy/engine.js';
import { guardrailsFor, loadPolicy } from '../policy/load.js';
import { FactsCache, type Analysis } from '../policy/plugin.js';
import { loadPostgresParser } from '../sql/pg-analyzer.js';
import { permits, POLICY_ACTIONS, type Decision, type TxState } from '../session/types.js';

/** What a refused client receives (AccessDenied unless the rule sets its own SQLSTATE). */
const REFUSAL_SQLSTATE = new AccessDenied('refused by policy').sqlstate;

/** A configuration with its policy compiled, ready to decide statements. */
interface PolicySetup {
  readonly loaded: LoadedConfig;
  readonly engine: PolicyEngine;
  readonly users: LocalUsers;
  readonly facts: FactsCache;
}

async function openPolicy(configFile: string): Promise<PolicySetup> {
  const loaded = loadConfig(configFile);
  const engine = loadPolicy(loaded);
  const users = new LocalUsers(loaded.config.users, loaded.file);
  await loadPostgresParser();
  return { loaded, engine, users, facts: new FactsCache() };
}

/** The session context a statement is decided in; the CLI has no client socket. */
interface ContextSpec {
  readonly time?: string;
  readonly client_address?: string;
  readonly application_name?: string;
  readonly transaction?: TxState;
}

function contextFor(spec: ContextSpec = {}): () => CelObject {
  return () =>
    contextView(
      { client: { address: spec.client_address ?? '', port: 0, tls: false }, applicationName: spec.application_name ?? '', txState: spec.transaction ?? 'idle' },
      'simple',
      spec.time === undefined ? new Date() : new Date(spec.time),
    );
}

/** One query string decided the way the policy stage decides it, with the rules that failed. */
interface Outcome {
  readonly connection: ResolvedConnection;
  readonly guardrails: boolean;
  readonly identity: Identity;
  readonly analysis: Analysis;
  readonly result: QueryDecision;
  /** Rules whose condition raised an error (deny and require_approval then count as matched). */
  readonly errors: ReadonlyArray<{ readonly rule: string; readonly message: string }>;
}

function decide(setup: PolicySetup, identity: Identity, connection: ResolvedConnection, sql: string, context?: ContextSpec): Outcome {
  const errors: Array<{ rule: string; message: string }> = [];
  setup.engine.onError = (rule, err) => errors.push({ rule: rule.id, message: String((err as Error).message ?? err).split('\n')[0]! });
  const guardrails = guardrailsFor(connection);
  const input = createPolicyInput(identity, connection, guardrails, contextFor(context));
  const analysis = setup.facts.analyze(sql);
  const result = decideStatements(setup.engine, analysis, input);
  return { connection, guardrails, identity, analysis, result, errors };
}

/** How the engine treated a rule whose condition failed (deny and require_approval fail closed). */
function counted(o: Outcome, rule: string): string {
  return o.result.statements.some((d) => d.matches?.some((m) => m.id === rule)) ? 'counted as matched' : 'counted as not matched';
}

const names = (xs: Iterable<string>): string => {
  const list = [...xs];
  return list.length === 0 ? 'none are configured' : list.join(', ');
};

// ---- explain --------------------------------------------------------------------------------

interface ExplainOptions {
  config: string;
  connection: string;
  user: string;
  sql: string;
  json?: boolean;
}

function decisionJson(d: Decision): Record<string, unknown> {
  return {
    action: d.action,
    rule: d.ruleId ?? null,
    message: d.message ?? null,
    sqlstate: permits(d) ? null : d.sqlstate ?? REFUSAL_SQLSTATE,
    row_cap: d.rowCap ? { limit: d.rowCap.limit, rule: d.rowCap.ruleId, message: d.rowCap.message } : null,
  };
}

/** A value as a CEL literal, so what explain prints can be pasted into a condition. */
function lit(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(lit).join(', ')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${lit(x)}`).join(', ')}}`;
  return String(v);
}

/** The fields that are printed only when they differ from an empty statement's. */
const OTHER_FIELDS = ['explain', 'analyze', 'dynamic', 'multi_statement', 'copy_direction', 'copy_program', 'copy_file', 'setting', 'prepared_name', 'execute_name', 'parsed', 'parse_error'] as const;

function factLines(view: CelObject): string[] {
  const f = (k: string): string => `${k} ${lit(view[k])}`;
  const lines = [
    [f('kind'), f('category'), f('object_type'), ...((view.subcommands as string[]).length > 0 ? [f('subcommands')] : [])].join('  '),
    [f('tables_read'), f('tables_written')].join('  '),
    [f('has_where'), f('unbounded_write'), f('has_limit')].join('  '),
    f('writes'),
    [f('functions'), f('columns')].join('  '),
  ];
  const others = OTHER_FIELDS.filter((k) => (k === 'parsed' ? view[k] !== true : view[k] !== false && view[k] !== '')).map(f);
  if (others.length > 0) lines.push(others.join('  '));
  return lines;
}

function describeDecision(d: Decision, connection: string): string {
  const rule = d.ruleId === undefined ? `no enforcing rule matched: default for connection "${connection}"` : `rule ${d.ruleId}`;
  return `${d.action} (${rule})`;
}

function printExplain(o: Outcome): void {
  const out: string[] = [];
  const id = o.identity;
  out.push(`connection ${o.connection.name} (environment ${o.connection.environment}, guardrails ${o.guardrails ? 'on' : 'off'})`);
  out.push(`user ${id.name} (${id.kind}; groups: ${id.groups.length > 0 ? id.groups.join(', ') : 'none'})`);
  const multi = o.analysis.facts.length > 1;
  o.analysis.views.forEach((view, i) => {
    const d = o.result.statements[i]!;
    out.push('', `statement ${i + 1}: ${o.analysis.facts[i]!.text}`, '  facts');
    for (const line of factLines(view)) out.push(`    ${line}`);
    const matches = d.matches ?? [];
    out.push(`  matched rules${matches.length === 0 ? ': none' : ''}`);
    for (const m of matches) {
      out.push(`    ${m.id}  ${m.action}  ${m.mode}${m.controls.length > 0 ? `  [${m.controls.join(', ')}]` : ''}  ${m.message}`);
    }
    if (multi) out.push(`  decision: ${describeDecision(d, o.connection.name)}${d.rowCap ? `, row cap ${d.rowCap.limit} (rule ${d.rowCap.ruleId})` : ''}`);
  });
  const d = o.result.decision;
  out.push('', `decision: ${describeDecision(d, o.connection.name)}`);
  if (d.message !== undefined) out.push(`  message: ${d.message}`);
  if (!permits(d)) out.push(`  client sees: ERROR ${d.sqlstate ?? REFUSAL_SQLSTATE}: ${d.message ?? 'refused by policy'} (rule ${d.ruleId ?? 'default'})`);
  out.push(`  row cap: ${d.rowCap ? `${d.rowCap.limit} rows (rule ${d.rowCap.ruleId}): ${d.rowCap.message}` : 'none'}`);
  for (const e of o.errors) out.push(`  rule ${e.rule} failed to evaluate: ${e.message} (${counted(o, e.rule)})`);
  console.log(out.join('\n'));
}

async function explain(opts: ExplainOptions, cmd: Command): Promise<void> {
  const setup = await openPolicy(opts.config);
  const connection = setup.loaded.connections.get(opts.connection);
  if (!connection) cmd.error(`gatehouse: --connection: unknown connection "${opts.connection}" (connections: ${names(setup.loaded.connections.keys())})`);
  const user = setup.users.get(opts.user);
  if (!user) cmd.error(`gatehouse: --user: unknown user "${opts.user}" (users: ${names(setup.loaded.config.users.map((u) => u.name))})`);
  const o = decide(setup, user.identity, connection, opts.sql);
  if (!opts.json) return printExplain(o);
  const doc = {
    connection: { name: connection.name, environment: connection.environment, labels: connection.labels, guardrails: o.guardrails },
    identity: identityView(o.identity),
    statements: o.analysis.views.map((view, i) => {
      const { text, ...facts } = view;
      const d = o.result.statements[i]!;
      return { text, facts, matches: d.matches ?? [], decision: decisionJson(d) };
    }),
    decision: decisionJson(o.result.decision),
    errors: o.errors,
  };
  console.log(JSON.stringify(doc, null, 2));
}

// ---- test -----------------------------------------------------------------------------------

const expectSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { action: v } : v),
  z
    .object({
      action: z.enum(POLICY_ACTIONS),
      /** The deciding rule; null: none (the connection's default allowed it). */
      rule: z.string().nullable().optional(),
      /** The row cap; null: none. */
      row_cap: z.number().int().min(0).nullable().optional(),
      /** Rules that must be among the matched ones (audit and dry-run rules too). */
      matches: z.array(z.string()).optional(),
    })
    .strict(),
);

const identitySchema = z
  .object({
    name: z.string().min(1),
    kind: z.enum(['human', 'agent', 'service']).default('human'),
    groups: z.array(z.string()).default([]),
    attributes: z.record(z.string(), z.string()).default({}),
    id: z.string().optional(),
    auth_method: z.enum(['scram-sha-256', 'password', 'token', 'jwt', 'certificate']).default('token'),
    on_behalf_of: z
      .object({ name: z.string().min(1), kind: z.enum(['human', 'agent', 'service']).default('human'), id: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict();

const contextSchema = z
  .object({
    time: z.string().refine((t) => !Number.isNaN(Date.parse(t)), 'expected an ISO 8601 time such as "2026-01-05T14:00:00Z"').optional(),
    client_address: z.string().optional(),
    application_name: z.string().optional(),
    transaction: z.enum(['idle', 'transaction', 'failed']).optional(),
  })
  .strict();

const caseSchema = z
  .object({
    name: z.string().min(1),
    user: z.string().optional(),
    identity: identitySchema.optional(),
    connection: z.string(),
    sql: z.string(),
    context: contextSchema.optional(),
    expect: expectSchema,
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.user === undefined) === (c.identity === undefined)) ctx.addIssue({ code: 'custom', path: ['user'], message: 'give exactly one of "user" (a local user) and "identity"' });
  });

const fixturesSchema = z
  .object({
    /** The configuration file, relative to the fixtures file. */
    config: z.string().optional(),
    cases: z.array(caseSchema).min(1, 'expected at least one case'),
  })
  .strict();

type Fixture = z.output<typeof caseSchema>;

/** "cases[3] ("drop on prod").expect.action" from a zod path. */
function fixturePath(path: ReadonlyArray<PropertyKey>, raw: unknown): string {
  let out = '';
  path.forEach((p, i) => {
    if (typeof p === 'number') {
      out += `[${p}]`;
      const name = i === 1 && path[0] === 'cases' ? (raw as { cases?: Array<{ name?: unknown }> }).cases?.[p]?.name : undefined;
      if (typeof name === 'string') out += ` (${JSON.stringify(name)})`;
    } else out += out === '' ? String(p) : `.${String(p)}`;
  });
  return out || '(top level)';
}

function parseFixtures(file: string): z.output<typeof fixturesSchema> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the fixtures file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const raw = parseYaml(text, file);
  const result = fixturesSchema.safeParse(raw);
  if (!result.success) {
    // An unknown key is usually a misspelt one, which explains a "missing" key: report it first.
    const issue = result.error.issues.find((i) => i.code === 'unrecognized_keys') ?? result.error.issues[0]!;
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    else if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) message = 'required key is missing';
    throw new ConfigError(`${file}: ${fixturePath(issue.path, raw)}: ${message}`);
  }
  return result.data;
}

function fixtureIdentity(c: Fixture, setup: PolicySetup, where: string): Identity {
  if (c.user !== undefined) {
    const user = setup.users.get(c.user);
    if (!user) throw new ConfigError(`${where}.user: unknown user "${c.user}" (users: ${names(setup.loaded.config.users.map((u) => u.name))})`);
    return user.identity;
  }
  const i = c.identity!;
  return {
    id: i.id ?? `user:${i.name}`,
    kind: i.kind,
    name: i.name,
    groups: i.groups,
    attributes: i.attributes,
    authMethod: i.auth_method,
    credentialId: `fixture:${i.name}`,
    ...(i.on_behalf_of ? { onBehalfOf: { id: i.on_behalf_of.id ?? `user:${i.on_behalf_of.name}`, name: i.on_behalf_of.name, kind: i.on_behalf_of.kind } } : {}),
  };
}

/** The differences between what a case expects and what was decided; empty when it passes. */
function differences(expect: z.output<typeof expectSchema>, o: Outcome): string[] {
  const d = o.result.decision;
  const diffs: string[] = [];
  const none = (v: unknown): string => (v === undefined || v === null ? '(none)' : String(v));
  if (expect.action !== d.action) diffs.push(`action:   expected ${expect.action}, got ${d.action}`);
  if (expect.rule !== undefined && (expect.rule ?? undefined) !== d.ruleId) diffs.push(`rule:     expected ${none(expect.rule)}, got ${none(d.ruleId)}`);
  if (expect.row_cap !== undefined && (expect.row_cap ?? undefined) !== d.rowCap?.limit) diffs.push(`row cap:  expected ${none(expect.row_cap)}, got ${none(d.rowCap?.limit)}${d.rowCap ? ` (rule ${d.rowCap.ruleId})` : ''}`);
  const matched = new Set((d.matches ?? []).map((m) => m.id));
  const missing = (expect.matches ?? []).filter((id) => !matched.has(id));
  if (missing.length > 0) diffs.push(`matches:  expected ${missing.join(', ')} to match`);
  if (diffs.length > 0) {
    diffs.push(`decided:  ${d.action}${d.ruleId ? ` by ${d.ruleId}` : ''}${d.message ? `: ${d.message}` : ''}`);
    diffs.push(`matched:  ${matched.size > 0 ? [...matched].join(', ') : '(no rule)'}`);
  }
  return diffs;
}

async function test(fixturesFile: string, opts: { config?: string }): Promise<void> {
  const fixtures = parseFixtures(fixturesFile);
  const configFile = opts.config ?? (fixtures.config === undefined ? undefined : isAbsolute(fixtures.config) ? fixtures.config : resolve(dirname(fixturesFile), fixtures.config));
  if (configFile === undefined) throw new ConfigError(`${fixturesFile}: config: give the configuration file here (relative to the fixtures file) or with --config`);
  const setup = await openPolicy(configFile);
  // Resolve every case before running any, so a typo is reported as such and not as a failure.
  const cases = fixtures.cases.map((c, i) => {
    const where = `${fixturesFile}: cases[${i}] (${JSON.stringify(c.name)})`;
    const connection = setup.loaded.connections.get(c.connection);
    if (!connection) throw new ConfigError(`${where}.connection: unknown connection "${c.connection}" (connections: ${names(setup.loaded.connections.keys())})`);
    return { c, connection, identity: fixtureIdentity(c, setup, where) };
  });
  let failed = 0;
  for (const { c, connection, identity } of cases) {
    const o = decide(setup, identity, connection, c.sql, c.context);
    const diffs = differences(c.expect, o);
    if (diffs.length > 0) failed++;
    const notes = o.errors.map((e) => `note:     rule ${e.rule} failed to evaluate: ${e.message} (${counted(o, e.rule)})`);
    const lines = [`${diffs.length > 0 ? 'FAIL' : 'ok  '} ${c.name}`, ...[...diffs, ...notes].map((d) => `       ${d}`)];
    console.log(lines.join('\n'));
  }
  console.log(`\n${cases.length} case(s): ${cases.length - failed} passed, ${failed} failed`);
  if (failed > 0) throw new CommanderError(1, 'gatehouse.policyTestFailed', `${failed} policy test case(s) failed`);
}

/** Register `policy explain` and `policy test` on the program. */
export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('explain and test policy decisions');
  policy
    .command('explain')
    .description("show a statement's facts, the rules that match it and the decision, as the proxy would decide it")
    .requiredOption('-c, --config <file>', 'configuration file')
    .requiredOption('--connection <name>', 'connection name')
    .requiredOption('--user <name>', 'local user (from users in the configuration)')
    .requiredOption('--sql <text>', 'the query string (one or more statements)')
    .option('--json', 'print one JSON document')
    .action(explain);
  policy
    .command('test <fixtures>')
    .description('run a fixtures file of statements and expected decisions; exit 1 if any case fails')
    .option('-c, --config <file>', 'configuration file (default: the fixtures file\'s "config")')
    .action(test);
}
