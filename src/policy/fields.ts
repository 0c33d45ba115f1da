/**
 * Load-time check of the fields a CEL condition reads: `statement.tabls` or `identiy.kind` is a
 * ConfigError naming the rule, instead of an evaluation error on every statement (which fails
 * closed, refusing everything). The known fields are taken from the view builders themselves.
 */
import { emptyFacts } from '../sql/facts.js';
import { connectionView, contextView, identityView, statementView } from './cel-view.js';

type Fields = ReadonlySet<string>;

const keys = (o: object): Fields => new Set(Object.keys(o));

const sampleIdentity = identityView({ id: '', kind: 'human', name: '', groups: [], attributes: {}, authMethod: 'scram-sha-256', credentialId: '' });

/** Known fields per root variable; nested objects with fixed fields are listed by path. */
const KNOWN: ReadonlyMap<string, Fields> = new Map([
  ['statement', keys(statementView(emptyFacts('')))],
  ['identity', keys(sampleIdentity)],
  ['identity.on_behalf_of', keys(sampleIdentity.on_behalf_of as object)],
  ['connection', keys(connectionView({ name: '', environment: '', labels: {} }))],
  ['context', keys(contextView({ client: { address: '', port: 0, tls: false }, applicationName: '', txState: 'idle' }, 'simple'))],
]);

/** Maps whose keys are free-form (labels, attributes). */
const OPEN_MAPS = new Set(['identity.attributes', 'connection.labels']);

/** Macros whose first argument binds a variable. */
const MACROS = new Set(['exists', 'all', 'exists_one', 'map', 'filter']);

interface Node {
  op: string;
  args: unknown;
}

function isNode(x: unknown): x is Node {
  return x !== null && typeof x === 'object' && typeof (x as Node).op === 'string';
}

/** The dotted path of a member chain ending in an identifier, e.g. ["identity","on_behalf_of","name"]. */
function path(n: Node): string[] | null {
  if (n.op === 'id') return typeof n.args === 'string' ? [n.args] : null;
  if (n.op === '.' && Array.isArray(n.args) && isNode(n.args[0]) && typeof n.args[1] === 'string') {
    const base = path(n.args[0]);
    return base ? [...base, n.args[1]] : null;
  }
  return null;
}

function closest(word: string, options: Fields): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const o of options) {
    const d = distance(word, o);
    if (d < bestScore) {
      bestScore = d;
      best = o;
    }
  }
  return bestScore <= Math.max(2, word.length / 3) ? best : undefined;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** Problems with the fields a condition reads (empty when all are known). */
export function unknownFields(ast: unknown): string[] {
  const problems: string[] = [];
  const visit = (x: unknown, bound: ReadonlySet<string>): void => {
    if (Array.isArray(x)) {
      for (const y of x) visit(y, bound);
      return;
    }
    if (!isNode(x)) return;
    const p = x.op === '.' || x.op === 'id' ? path(x) : null;
    if (p !== null) {
      const [root, ...rest] = p;
      if (bound.has(root!)) return;
      if (!KNOWN.has(root!)) {
        const hint = closest(root!, new Set([...KNOWN.keys()].filter((k) => !k.includes('.'))));
        problems.push(`unknown variable "${root}"${hint ? ` (did you mean "${hint}"?)` : ''}; conditions see statement, identity, connection and context`);
        return;
      }
      let prefix = root!;
      for (const field of rest) {
        if (OPEN_MAPS.has(prefix)) break;
        const fields = KNOWN.get(prefix);
        if (fields === undefined) break; // a list or value: its members are not checked
        if (!fields.has(field)) {
          const hint = closest(field, fields);
          problems.push(`unknown field "${prefix}.${field}"${hint ? ` (did you mean "${prefix}.${hint}"?)` : ''}`);
          return;
        }
        prefix = `${prefix}.${field}`;
      }
      return;
    }
    // Macros bind their first argument inside the expression that follows it.
    if ((x.op === 'rcall' || x.op === 'call') && Array.isArray(x.args)) {
      const [name, ...rest] = x.args as unknown[];
      if (typeof name === 'string' && MACROS.has(name) && x.op === 'rcall') {
        visit(rest[0], bound);
        const margs = rest[1];
        if (Array.isArray(margs) && isNode(margs[0]) && margs[0].op === 'id' && typeof margs[0].args === 'string') {
          const inner = new Set(bound);
          inner.add(margs[0].args);
          visit(margs.slice(1), inner);
          return;
        }
      }
      visit(rest, bound);
      return;
    }
    visit(x.args, bound);
  };
  visit(ast, new Set());
  return problems;
}
