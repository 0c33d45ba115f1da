/**
 * Policy evaluation: pure and synchronous. Every rule is evaluated against each statement's
 * facts; the decision names every rule that matched. Enforcing matches decide by precedence
 * deny > require_approval > allow; mask rules add masking to a statement that is allowed (the
 * action is then `mask`; a mask rule never grants by itself) and limit_rows rules add a row cap;
 * audit rules only record; dry-run rules are recorded (and logged by the caller) but never decide. With no
 * enforcing decision the connection's default action applies.
 */
import { ConfigError } from '../errors.js';
import type { StatementFacts } from '../sql/facts.js';
import type { Decision, MaskFunctionSpec, MaskPlan, PolicyAction, RuleMatch } from '../session/types.js';
import { GUARDRAILS } from './guardrails.js';
import { compileRule, type CompiledRule, type Defaults, type PolicyFile, type RuleSpec } from './rules.js';
import type { CelObject } from './cel-view.js';

const PRECEDENCE: Record<string, number> = { deny: 4, require_approval: 3, mask: 2, allow: 1 };

export interface PolicyInput {
  readonly identity: CelObject;
  readonly connection: CelObject;
  /** Whether the built-in guardrails apply to this connection. */
  readonly guardrails: boolean;
  readonly connectionName: string;
  readonly environment: string;
  /** Built lazily: only rules that read `context` need it. */
  readonly context: () => CelObject;
}

/** The outcome for one statement, plus whether it may be cached by shape. */
export interface StatementDecision {
  readonly decision: Decision;
  readonly volatile: boolean;
}

export interface PolicySource {
  readonly file: string;
  readonly policy: PolicyFile;
}

export class PolicyEngine {
  readonly rules: readonly CompiledRule[];
  /** Some rule reads statement.text, which differs between texts of one shape. */
  readonly readsText: boolean;
  readonly #defaults: Defaults;
  /** Called for evaluation errors (a failing deny rule counts as matched: fail closed). */
  onError: (rule: CompiledRule, err: unknown) => void = () => {};

  constructor(sources: readonly PolicySource[], opts: { guardrails?: boolean } = {}) {
    // Built-in pack first, then files in order; a rule with an existing id overrides its fields.
    const specs = new Map<string, { spec: RuleSpec; where: string; guardrail: boolean }>();
    if (opts.guardrails !== false) for (const g of GUARDRAILS) specs.set(g.id, { spec: { ...g }, where: 'built-in guardrails', guardrail: true });
    let defaults: Defaults = {};
    for (const { file, policy } of sources) {
      for (const r of policy.rules) {
        const prev = specs.get(r.id);
        if (prev) {
          if (Object.keys(r).length === 1) throw new ConfigError(`${file}: rule "${r.id}": overrides rule "${r.id}" from ${prev.where} but changes nothing`);
          prev.spec = { ...prev.spec, ...r };
          prev.where = file;
        } else specs.set(r.id, { spec: r, where: file, guardrail: false });
      }
      if (policy.defaults) {
        defaults = {
          action: policy.defaults.action ?? defaults.action,
          environments: { ...defaults.environments, ...policy.defaults.environments },
          connections: { ...defaults.connections, ...policy.defaults.connections },
        };
      }
    }
    const rules: CompiledRule[] = [];
    for (const { spec, where, guardrail } of specs.values()) {
      if (spec.enabled === false) continue;
      rules.push(compileRule(spec, where, guardrail));
    }
    this.rules = rules;
    this.readsText = rules.some((r) => /\.text\b/.test(r.condition));
    this.#defaults = defaults;
  }

  defaultAction(connectionName: string, environment: string): 'allow' | 'deny' {
    return this.#defaults.connections?.[connectionName] ?? this.#defaults.environments?.[environment] ?? this.#defaults.action ?? 'allow';
  }

  /** Decide one statement. */
  evaluate(statement: CelObject, input: PolicyInput): StatementDecision {
    const matches: RuleMatch[] = [];
    let best: CompiledRule | undefined;
    let cap: CompiledRule | undefined;
    const maskRules: CompiledRule[] = [];
    let auto: CompiledRule | undefined;
    let volatile = false;
    let ctx: Record<string, unknown> | undefined;
    for (const rule of this.rules) {
      if (rule.guardrail && !input.guardrails) continue;
      if (rule.volatile) volatile = true;
      ctx ??= { statement, identity: input.identity, connection: input.connection, context: {} };
      if (rule.volatile && (ctx.context as CelObject).time === undefined) ctx.context = input.context();
      let matched: boolean;
      try {
        matched = rule.test(ctx) === true;
      } catch (err) {
        this.onError(rule, err);
        // Fail closed: a rule that cannot be evaluated counts as matched unless it would grant.
        // (A mask rule that fails masks: it never grants, so matching it only hides data.)
        matched = rule.action !== 'allow';
      }
      if (!matched) continue;
      matches.push({ id: rule.id, action: rule.action, mode: rule.mode, controls: rule.controls, message: rule.message });
      if (rule.mode !== 'enforce') continue;
      if (rule.action === 'limit_rows') {
        if (!cap || rule.maxRows! < cap.maxRows!) cap = rule;
      } else if (rule.action === 'auto_approve') {
        // A modifier: approves what another rule requires approval for.
        auto ??= rule;
      } else if (rule.action === 'mask') {
        // A modifier, like limit_rows: it masks what another rule or the default allows.
        maskRules.push(rule);
      } else if (rule.action !== 'audit' && (!best || PRECEDENCE[rule.action]! > PRECEDENCE[best.action]!)) {
        best = rule;
      }
    }
    const rowCap = cap ? { limit: cap.maxRows!, ruleId: cap.id, message: cap.message } : undefined;
    const masks = maskPlan(maskRules);
    if (best) {
      const action = best.action === 'allow' && masks ? 'mask' : (best.action as PolicyAction);
      const approval = best.approval === undefined ? undefined : auto === undefined ? best.approval : { ...best.approval, autoApprovedBy: auto.id };
      return {
        volatile,
        decision: {
          action,
          ruleId: best.id,
          message: best.message,
          sqlstate: best.sqlstate,
          matches,
          rowCap: best.action === 'deny' ? undefined : rowCap,
          masks: action === 'mask' || action === 'require_approval' ? masks : undefined,
          approval,
        },
      };
    }
    const action = this.defaultAction(input.connectionName, input.environment);
    return {
      volatile,
      decision: {
        action: action === 'allow' && masks ? 'mask' : action,
        ruleId: action === 'deny' ? 'default' : undefined,
        message: action === 'deny' ? `connection "${input.connectionName}" denies statements no rule allows (policy defaults)` : undefined,
        matches,
        rowCap,
        masks: action === 'allow' ? masks : undefined,
      },
    };
  }

  /** Combine the decisions of the statements of one query string: the strictest wins, caps combine. */
  static combine(decisions: readonly Decision[]): Decision {
    if (decisions.length === 1) return decisions[0]!;
    let best = decisions[0]!;
    let rowCap = best.rowCap;
    const matches: RuleMatch[] = [];
    const plans: MaskPlan[] = [];
    for (const d of decisions) {
      if (PRECEDENCE[d.action]! > PRECEDENCE[best.action]!) best = d;
      if (d.rowCap && (!rowCap || d.rowCap.limit < rowCap.limit)) rowCap = d.rowCap;
      if (d.matches) matches.push(...d.matches);
      if (d.masks) plans.push(d.masks);
    }
    const masks = plans.length === 0 ? undefined : mergePlans(plans);
    const permitted = best.action === 'allow' || best.action === 'mask';
    return {
      ...best,
      action: permitted && masks ? 'mask' : best.action,
      matches,
      rowCap: best.action === 'deny' ? undefined : rowCap,
      masks: permitted || best.action === 'require_approval' ? masks : undefined,
    };
  }
}

export type { StatementFacts };

/** The mask plan of the matching mask rules: the first rule that names a class decides it. */
function maskPlan(rules: readonly CompiledRule[]): MaskPlan | undefined {
  if (rules.length === 0) return undefined;
  const byClass = new Map<string, MaskFunctionSpec>();
  for (const r of rules) for (const [c, f] of r.masks ?? []) if (!byClass.has(c)) byClass.set(c, f);
  return { rules: rules.map((r) => r.id), byClass, refusePredicates: rules.some((r) => r.refusePredicates) };
}

function mergePlans(plans: readonly MaskPlan[]): MaskPlan {
  if (plans.length === 1) return plans[0]!;
  const byClass = new Map<string, MaskFunctionSpec>();
  for (const p of plans) for (const [c, f] of p.byClass) if (!byClass.has(c)) byClass.set(c, f);
  return { rules: [...new Set(plans.flatMap((p) => p.rules))], byClass, refusePredicates: plans.some((p) => p.refusePredicates) };
}
