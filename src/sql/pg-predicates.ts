/**
 * Columns a statement filters, joins, groups or sorts on (WHERE, JOIN ... ON, GROUP BY, HAVING,
 * ORDER BY, DISTINCT ON, window PARTITION/ORDER BY), anywhere in it, subqueries and CTEs
 * included. Masking uses it to refuse inference by filtering (`WHERE email = '...'` tells
 * whether a row exists even when email is masked in the result).
 *
 * Names only (the column's last name part, lower case unless quoted): the caller classifies them
 * against every table the statement reads, which can over-refuse but never misses.
 */
import { parseSync } from 'libpg-query';

/** Parse-tree keys whose subtrees decide which rows are returned, or their order. */
const PREDICATE_KEYS = new Set(['whereClause', 'havingClause', 'sortClause', 'groupClause', 'quals', 'distinctClause', 'partitionClause', 'orderClause']);

/** The columns the statement's predicates and orderings reference; null when it cannot be parsed. */
export function predicateColumns(text: string): string[] | null {
  let tree: unknown;
  try {
    tree = parseSync(text);
  } catch {
    return null;
  }
  const out = new Set<string>();
  const walk = (node: unknown, inPredicate: boolean, depth: number): void => {
    if (depth > 400 || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const x of node) walk(x, inPredicate, depth + 1);
      return;
    }
    const o = node as Record<string, unknown>;
    if (inPredicate) {
      const ref = o.ColumnRef as { fields?: Array<Record<string, { sval?: string }>> } | undefined;
      const last = ref?.fields?.[ref.fields.length - 1];
      if (last?.String?.sval !== undefined) out.add(last.String.sval);
    }
    for (const [k, v] of Object.entries(o)) {
      // JOIN ... USING (email): a list of bare names, not column references.
      if ((k === 'usingClause' || k === 'joinUsingClause') && Array.isArray(v)) {
        for (const n of v) {
          const sval = (n as { String?: { sval?: string } }).String?.sval;
          if (sval !== undefined) out.add(sval);
        }
        continue;
      }
      walk(v, inPredicate || PREDICATE_KEYS.has(k), depth + 1);
    }
  };
  walk(tree, false, 0);
  return [...out];
}
