/**
 * Deciding one query string: each statement is evaluated on its own, then the decisions are
 * combined (the strictest wins, row caps combine). Shared by the policy stage and by
 * `gatehouse policy explain` / `policy test`, so the CLI shows exactly what the proxy decides.
 */
import type { ResolvedConnection } from '../config/load.js';
import type { Identity } from '../identity/identity.js';
import type { StatementFacts } from '../sql/facts.js';
import { permits, type Decision } from '../session/types.js';
import { connectionView, identityView, type CelObject } from './cel-view.js';
import { PolicyEngine, type PolicyInput } from './engine.js';

/** The outcome for a query string of one or more statements. */
export interface QueryDecision {
  /** The combined decision of every statement of the text. */
  readonly decision: Decision;
  /** Each statement's own decision, in the order of the text. */
  readonly statements: readonly Decision[];
  /** A rule read `context` or statement text: the decision must not be cached by shape. */
  readonly volatile: boolean;
}

/** What every rule sees about who is connected to which connection, built once per session. */
export function createPolicyInput(
  identity: Identity,
  connection: Pick<ResolvedConnection, 'name' | 'environment' | 'labels'>,
  guardrails: boolean,
  context: () => CelObject,
): PolicyInput {
  return {
    identity: identityView(identity),
    connection: connectionView(connection),
    guardrails,
    connectionName: connection.name,
    environment: connection.environment,
    context,
  };
}

/** Decide every analyzed statement of a query string (facts and their CEL views), then combine. */
export function decideStatements(
  engine: PolicyEngine,
  analysis: { readonly facts: readonly StatementFacts[]; readonly views: readonly CelObject[] },
  input: PolicyInput,
): QueryDecision {
  let volatile = false;
  const statements: Decision[] = [];
  for (const view of analysis.views) {
    const r = engine.evaluate(view, input);
    volatile ||= r.volatile;
    statements.push(r.decision);
  }
  let decision = PolicyEngine.combine(statements);
  if (decision.rowCap && permits(decision) && analysis.facts.length > 1 && analysis.facts.some((f) => f.category === 'tcl')) {
    // The breaker wraps the whole query in its own transaction; a COMMIT inside would escape it.
    decision = {
      ...decision,
      action: 'deny',
      ruleId: decision.rowCap.ruleId,
      message: 'the row limit cannot be enforced on a multi-statement query that contains transaction control; send the statements separately',
      rowCap: undefined,
    };
  }
  return { decision, statements, volatile };
}
