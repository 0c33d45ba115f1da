/**
 * Policy files: YAML in git, validated with a schema, each rule's CEL condition compiled once at
 * load. Errors name the file, the rule id and the reason.
 * docs/policy.md is the language reference.
 */
import { readFileSync } from 'node:fs';
import { parse as parseCel } from '@marcbachmann/cel-js';
import { parseYaml } from '../config/yaml.js';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { unknownFields } from './fields.js';
import { MASK_CLASSES, MASK_FUNCTIONS } from '../masking/index.js';
import type { ApprovalPlan, MaskFunctionSpec } from '../session/types.js';
import { duration } from '../config/schema.js';

/** Functions a mask rule may name: the masking functions, and scrub (detectors inside free text). */
export const RULE_MASK_FUNCTIONS = [...MASK_FUNCTIONS, 'scrub'] as const;

const maskFunction = z.union([
  z.enum(RULE_MASK_FUNCTIONS),
  z
    .object({
      fn: z.enum(RULE_MASK_FUNCTIONS),
      /** partial: characters kept at the start and at the end. */
      keep_first: z.number().int().min(0).max(64).optional(),
      keep_last: z.number().int().min(0).max(64).optional(),
      mask_char: z.string().optional(),
    })
    .strict(),
]);

/**
 * How each class is masked when a mask rule names none: readable where a part is harmless (the
 * domain of an email, the last digits of a card), gone where nothing is.
 */
export const DEFAULT_MASKS: Readonly<Record<(typeof MASK_CLASSES)[number], MaskFunctionSpec>> = {
  secret: { fn: 'redact' },
  payment_card: { fn: 'partial', keepFirst: 0, keepLast: 4 },
  national_id: { fn: 'redact' },
  iban: { fn: 'partial', keepFirst: 2, keepLast: 0 },
  date_of_birth: { fn: 'default' },
  email: { fn: 'email' },
  phone: { fn: 'partial', keepFirst: 0, keepLast: 2 },
  person_name: { fn: 'partial', keepFirst: 1, keepLast: 0 },
  address: { fn: 'redact' },
  ip_address: { fn: 'hash' },
  free_text: { fn: 'scrub' },
};

export const RULE_ACTIONS = ['allow', 'deny', 'require_approval', 'auto_approve', 'mask', 'limit_rows', 'audit'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

const ruleSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'expected an id of letters, digits, ".", "_", ":" and "-"'),
    description: z.string().optional(),
    /** CEL condition over identity, connection, statement and context. */
    when: z.string().optional(),
    action: z.enum(RULE_ACTIONS).optional(),
    message: z.string().optional(),
    mode: z.enum(['enforce', 'dry-run']).optional(),
    controls: z.array(z.string()).optional(),
    /** limit_rows: the most rows one UPDATE, DELETE or MERGE may change. */
    max_rows: z.number().int().min(0).optional(),
    /** false removes a rule (for example a built-in guardrail) by id. */
    enabled: z.boolean().optional(),
    /** SQLSTATE of the refusal (default 42501). */
    sqlstate: z.string().regex(/^[0-9A-Z]{5}$/).optional(),
    /** mask: class (or "all") -> function; absent = every class with its default function. */
    mask: z.record(z.string(), maskFunction).optional(),
    /** mask: also refuse statements that filter, join, group or sort on a masked column. */
    refuse_predicates: z.boolean().optional(),
    /** require_approval: who approves, how the client waits, how long the request lives. */
    approval: z
      .object({
        /** wait: the statement is held until decided; retry: refused now, runs once when sent again after approval. */
        mode: z.enum(['wait', 'retry']).optional(),
        /** Approver groups (default approvals.groups). */
        groups: z.array(z.string().min(1)).min(1).optional(),
        /** Distinct approvers needed. */
        count: z.number().int().min(1).max(20).optional(),
        /** How long the request stays pending (default approvals.expires). */
        expires: duration.optional(),
        /** How long an approved request may be run by sending it again (default approvals.run_window). */
        run_window: duration.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type RuleSpec = z.infer<typeof ruleSchema>;

const defaultsSchema = z
  .object({
    /** Action when no enforcing rule decides. */
    action: z.enum(['allow', 'deny']).optional(),
    /** Per environment label (e.g. production: deny). */
    environments: z.record(z.string(), z.enum(['allow', 'deny'])).optional(),
    /** Per connection name; wins over environments. */
    connections: z.record(z.string(), z.enum(['allow', 'deny'])).optional(),
  })
  .strict();

export const policyFileSchema = z
  .object({
    rules: z.array(ruleSchema).default([]),
    defaults: defaultsSchema.optional(),
  })
  .strict();

export type PolicyFile = z.infer<typeof policyFileSchema>;
export type Defaults = z.infer<typeof defaultsSchema>;

/** A rule ready to evaluate. */
export interface CompiledRule {
  readonly id: string;
  readonly description: string;
  readonly source: string;
  readonly condition: string;
  readonly test: (ctx: Record<string, unknown>) => unknown;
  readonly action: RuleAction;
  readonly message: string;
  readonly mode: 'enforce' | 'dry-run';
  readonly controls: readonly string[];
  readonly maxRows: number | undefined;
  readonly sqlstate: string | undefined;
  /** mask rules: class -> function. */
  readonly masks: ReadonlyMap<string, MaskFunctionSpec> | undefined;
  /** mask rules: refuse predicates on masked columns. */
  readonly refusePredicates: boolean;
  /** require_approval rules: the approval asked for. */
  readonly approval: ApprovalPlan | undefined;
  /** The condition reads `context` or statement text: its result cannot be cached by shape. */
  readonly volatile: boolean;
  /** Built-in guardrail: evaluated only on connections with guardrails on. */
  readonly guardrail: boolean;
}

/** A complete rule (after merging overrides) compiled; `where` names it in errors. */
export function compileRule(spec: RuleSpec, where: string, guardrail: boolean): CompiledRule {
  if (!spec.when) throw new ConfigError(`${where}: rule "${spec.id}": "when" is required (a CEL condition)`);
  if (!spec.action) throw new ConfigError(`${where}: rule "${spec.id}": "action" is required (one of ${RULE_ACTIONS.join(', ')})`);
  if (spec.action === 'limit_rows' && spec.max_rows === undefined) throw new ConfigError(`${where}: rule "${spec.id}": action limit_rows needs max_rows`);
  let test: (ctx: Record<string, unknown>) => unknown;
  try {
    test = parseCel(spec.when) as unknown as (ctx: Record<string, unknown>) => unknown;
  } catch (err) {
    throw new ConfigError(`${where}: rule "${spec.id}": invalid condition: ${(err as Error).message.split('\n')[0]}`);
  }
  const problems = unknownFields((test as unknown as { ast: unknown }).ast);
  if (problems.length > 0) throw new ConfigError(`${where}: rule "${spec.id}": invalid condition: ${problems[0]}`);
  if (spec.mask !== undefined && spec.action !== 'mask') throw new ConfigError(`${where}: rule "${spec.id}": "mask" is only for action mask`);
  if (spec.refuse_predicates !== undefined && spec.action !== 'mask') throw new ConfigError(`${where}: rule "${spec.id}": "refuse_predicates" is only for action mask`);
  if (spec.approval !== undefined && spec.action !== 'require_approval') throw new ConfigError(`${where}: rule "${spec.id}": "approval" is only for action require_approval`);
  return {
    id: spec.id,
    description: spec.description ?? '',
    source: where,
    condition: spec.when,
    test,
    action: spec.action,
    message: spec.message ?? spec.description ?? `matched rule ${spec.id}`,
    mode: spec.mode ?? 'enforce',
    controls: spec.controls ?? [],
    maxRows: spec.max_rows,
    sqlstate: spec.sqlstate,
    masks: spec.action === 'mask' ? compileMasks(spec, where) : undefined,
    refusePredicates: spec.refuse_predicates === true,
    approval:
      spec.action === 'require_approval'
        ? {
            mode: spec.approval?.mode ?? 'wait',
            groups: spec.approval?.groups,
            quorum: spec.approval?.count ?? 1,
            expiresMs: spec.approval?.expires,
            runWindowMs: spec.approval?.run_window,
          }
        : undefined,
    volatile: /\bcontext\b|\.text\b/.test(spec.when),
    guardrail,
  };
}

function compileMasks(spec: RuleSpec, where: string): ReadonlyMap<string, MaskFunctionSpec> {
  const out = new Map<string, MaskFunctionSpec>();
  const entries = Object.entries(spec.mask ?? { all: 'default-per-class' as never });
  for (const [cls, f] of entries) {
    if (cls !== 'all' && !(MASK_CLASSES as readonly string[]).includes(cls)) {
      throw new ConfigError(`${where}: rule "${spec.id}": mask: unknown class "${cls}" (expected all or one of ${MASK_CLASSES.join(', ')})`);
    }
    const classes = cls === 'all' ? MASK_CLASSES : [cls as (typeof MASK_CLASSES)[number]];
    for (const c of classes) {
      if (out.has(c) && cls === 'all') continue; // a named class wins over "all"
      if ((f as unknown) === 'default-per-class') out.set(c, DEFAULT_MASKS[c]);
      else if (typeof f === 'string') out.set(c, f === 'partial' ? { ...DEFAULT_MASKS[c], fn: 'partial' } : { fn: f });
      else {
        if (f.mask_char !== undefined && [...f.mask_char].length !== 1) throw new ConfigError(`${where}: rule "${spec.id}": mask.${cls}.mask_char: expected one character`);
        // keep_last alone keeps nothing at the start (and keep_first alone nothing at the end);
        // with neither, partial keeps what the class's default keeps.
        const base = f.fn === 'partial' && f.keep_first === undefined && f.keep_last === undefined && DEFAULT_MASKS[c].fn === 'partial' ? DEFAULT_MASKS[c] : { keepFirst: 0, keepLast: 0 };
        out.set(c, { fn: f.fn, keepFirst: f.keep_first ?? base.keepFirst, keepLast: f.keep_last ?? base.keepLast, maskChar: f.mask_char });
      }
    }
  }
  return out;
}

/** Parse a policy file's text; errors name the file and the key or rule. */
export function parsePolicyFile(text: string, file: string): PolicyFile {
  const raw = parseYaml(text, file);
  const result = policyFileSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path;
    let where = path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    const rules = (raw as { rules?: Array<{ id?: string }> }).rules;
    if (path[0] === 'rules' && typeof path[1] === 'number' && rules?.[path[1]]?.id) where += ` (rule "${rules[path[1]]!.id}")`;
    const message = issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    throw new ConfigError(`${file}: ${where || '(top level)'}: ${message}`);
  }
  return result.data;
}

export function loadPolicyFile(file: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the policy file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parsePolicyFile(text, file);
}
