/**
 * outputLineage: which base-table columns each result column derives from. Table-driven cases
 * per construct (names, direct flags, sources, stars), the statements that yield null, then a
 * property: for random queries from a small grammar over a known schema, every column the SQL
 * reads into an output column is among that column's sources (no source is ever lost), and
 * random text never throws.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { loadPostgresParser } from './pg-analyzer.js';
import { outputLineage, type OutputLineage } from './pg-lineage.js';

before(async () => {
  await loadPostgresParser();
});

/** Expected output column: name, flags and sources written as "table.column". */
interface Want {
  name: string;
  direct: boolean;
  star: boolean;
  sources: string[];
}

/** A plain base-table column (RowDescription carries its origin). */
const d = (name: string, ...sources: string[]): Want => ({ name, direct: true, star: false, sources });
/** A computed column. */
const c = (name: string, ...sources: string[]): Want => ({ name, direct: false, star: false, sources });
/** A star entry. */
const s = (name: string, ...sources: string[]): Want => ({ name, direct: false, star: true, sources });

function shown(out: readonly OutputLineage[]): Want[] {
  return out.map((o) => ({ name: o.name, direct: o.direct, star: o.star, sources: o.sources.map((x) => `${x.table}.${x.column}`) }));
}

function lineage(sql: string): OutputLineage[] {
  const out = outputLineage(sql);
  assert.notEqual(out, null, `expected lineage for ${sql}`);
  return out!;
}

function cases(name: string, rows: Array<[sql: string, want: Want[]]>): void {
  describe(name, () => {
    for (const [sql, want] of rows) {
      it(sql, () => {
        // Sources are returned sorted by table, then column.
        const sorted = want.map((w) => ({ ...w, sources: [...w.sources].sort() }));
        assert.deepEqual(shown(lineage(sql)), sorted);
      });
    }
  });
}

cases('plain columns', [
  ['SELECT email FROM customers', [d('email', 'customers.email')]],
  ['SELECT email AS e, phone FROM customers', [d('e', 'customers.email'), d('phone', 'customers.phone')]],
  ['SELECT c.email, c.phone AS p FROM customers c', [d('email', 'customers.email'), d('p', 'customers.phone')]],
  ['SELECT customers.email FROM customers', [d('email', 'customers.email')]],
  ['SELECT c.email FROM customers AS c WHERE c.id = $1 ORDER BY c.name LIMIT 5', [d('email', 'customers.email')]],
  ['SELECT DISTINCT email FROM customers', [d('email', 'customers.email')]],
  ['SELECT email FROM customers TABLESAMPLE bernoulli (10)', [d('email', 'customers.email')]],
  ['TABLE customers', [s('*', 'customers.*')]],
  ['SELECT customers.email FROM customers, generate_series(1, 3) g', [d('email', 'customers.email')]],
  // Unqualified, `email` might be a column of the function's rows too (its call is traced).
  ['SELECT email FROM customers, generate_series(1, 3) g', [c('email', 'customers.email')]],
]);

cases('schema-qualified and quoted names', [
  ['SELECT email FROM public.customers', [d('email', 'public.customers.email')]],
  ['SELECT customers.email, public.customers.phone FROM public.customers', [d('email', 'public.customers.email'), d('phone', 'public.customers.phone')]],
  ['SELECT "Customers"."Email" FROM "Customers"', [d('Email', 'Customers.Email')]],
  ['SELECT c."Email" FROM "CRM"."Customers" c', [d('Email', 'CRM.Customers.Email')]],
  ['SELECT EMAIL FROM CUSTOMERS', [d('email', 'customers.email')]],
  ['SELECT upper("E-mail") FROM crm.customers', [c('upper', 'crm.customers.E-mail')]],
]);

cases('expressions, functions and aggregates', [
  ['SELECT upper(email) FROM customers', [c('upper', 'customers.email')]],
  ["SELECT email || '' FROM customers", [c('?column?', 'customers.email')]],
  ["SELECT email || '' AS e FROM customers", [c('e', 'customers.email')]],
  ['SELECT count(*) FROM customers', [c('count', )]],
  ['SELECT count(email) FROM customers', [c('count', 'customers.email')]],
  ['SELECT max(c.email) AS m FROM customers c', [c('m', 'customers.email')]],
  ['SELECT count(*) FILTER (WHERE ssn IS NULL), min(id) FROM customers', [c('count'), c('min', 'customers.id')]],
  ["SELECT string_agg(email, ',' ORDER BY name) FROM customers", [c('string_agg', 'customers.email')]],
  ['SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY salary) FROM staff', [c('percentile_disc', 'staff.salary')]],
  ['SELECT CASE WHEN ssn IS NULL THEN phone ELSE email END FROM customers', [c('email', 'customers.email', 'customers.phone', 'customers.ssn')]],
  ["SELECT CASE WHEN vip THEN 'x' END FROM customers", [c('case', 'customers.vip')]],
  ['SELECT coalesce(a.email, b.phone) FROM customers a, people b', [c('coalesce', 'customers.email', 'people.phone')]],
  ['SELECT nullif(email, phone), greatest(a, b) FROM customers', [c('nullif', 'customers.email', 'customers.phone'), c('greatest', 'customers.a', 'customers.b')]],
  ['SELECT email::varchar(10), CAST(phone AS text), 1::text FROM customers', [c('email', 'customers.email'), c('phone', 'customers.phone'), c('text')]],
  ["SELECT email COLLATE \"C\", email IS NULL, email LIKE '%@x' FROM customers", [c('email', 'customers.email'), c('?column?', 'customers.email'), c('?column?', 'customers.email')]],
  ['SELECT ARRAY[email, phone], ROW(email, 1), tags[1], (addr).city FROM customers', [
    c('array', 'customers.email', 'customers.phone'),
    c('row', 'customers.email'),
    c('tags', 'customers.tags'),
    c('city', 'customers.addr'),
  ]],
  ["SELECT jsonb_build_object('e', email) -> 'e', format('%s', phone) FROM customers", [c('?column?', 'customers.email'), c('format', 'customers.phone')]],
  ['SELECT now(), current_date, $1::int, 42 AS n FROM customers', [c('now'), c('current_date'), c('int4'), c('n')]],
]);

cases('window functions', [
  ['SELECT lag(email) OVER (PARTITION BY ssn ORDER BY id) FROM customers', [c('lag', 'customers.email')]],
  ['SELECT row_number() OVER w, first_value(phone) OVER w AS f FROM customers WINDOW w AS (ORDER BY email)', [c('row_number'), c('f', 'customers.phone')]],
]);

cases('whole-row references', [
  ['SELECT row_to_json(c) FROM customers c', [c('row_to_json', 'customers.*')]],
  ['SELECT c::text FROM customers c', [c('c', 'customers.*')]],
  ['SELECT to_jsonb(c.*) FROM customers c', [c('to_jsonb', 'customers.*')]],
  ['SELECT ROW(c.*) FROM customers c', [c('row', 'customers.*')]],
  ['SELECT to_json(customers) FROM public.customers', [c('to_json', 'public.customers.*')]],
  // PostgreSQL reads `o` as a column first: customers may have one named o.
  ['SELECT row_to_json(o), o.id FROM customers c JOIN orders o ON o.cid = c.id', [c('row_to_json', 'customers.o', 'orders.*'), d('id', 'orders.id')]],
  ['SELECT (c).email FROM customers c', [c('email', 'customers.c', 'customers.email')]],
  // Through a derived table: its columns' sources.
  ['SELECT row_to_json(s) FROM (SELECT email, id FROM customers) s', [c('row_to_json', 'customers.email', 'customers.id')]],
  ['SELECT x::text FROM (SELECT upper(phone) AS p FROM customers) AS x', [c('x', 'customers.phone')]],
  // Functional notation: email(c) is c.email, and we do not know that it is not a function.
  ['SELECT email(c) FROM customers c', [c('email', 'customers.*')]],
]);

cases('stars', [
  ['SELECT * FROM customers', [s('*', 'customers.*')]],
  ['SELECT c.*, 1 FROM customers c', [s('c.*', 'customers.*'), c('?column?')]],
  ['SELECT * FROM customers c JOIN orders o ON o.cid = c.id', [s('*', 'customers.*', 'orders.*')]],
  ['SELECT o.*, c.email FROM customers c JOIN orders o ON o.cid = c.id', [s('o.*', 'orders.*'), d('email', 'customers.email')]],
  ['SELECT s.* FROM (SELECT email AS e, upper(phone) FROM customers) s', [s('s.*', 'customers.email', 'customers.phone')]],
  ['WITH x AS (SELECT email FROM customers) SELECT * FROM x', [s('*', 'customers.email')]],
  ['SELECT * FROM (SELECT 1 AS one) v', [s('*')]],
  ['SELECT j.* FROM (customers c JOIN orders o ON o.cid = c.id) AS j', [s('j.*', 'customers.*', 'orders.*')]],
]);

cases('CTEs', [
  ['WITH x AS (SELECT email AS e FROM customers) SELECT upper(e) FROM x', [c('upper', 'customers.email')]],
  ['WITH x AS (SELECT email AS e FROM customers) SELECT e, x.e AS f FROM x', [c('e', 'customers.email'), c('f', 'customers.email')]],
  ['WITH x(a, b) AS (SELECT email, phone FROM customers) SELECT b FROM x', [c('b', 'customers.phone')]],
  ['WITH x AS (SELECT email FROM customers), y AS (SELECT upper(email) AS u FROM x) SELECT u FROM y', [c('u', 'customers.email')]],
  // A CTE with a star: names resolve through the starred table.
  ['WITH x AS (SELECT * FROM customers) SELECT phone FROM x', [c('phone', 'customers.phone')]],
  // A CTE shadows a table of the same name; a schema-qualified name does not.
  ['WITH customers AS (SELECT 1 AS email) SELECT email FROM customers', [c('email')]],
  ['WITH customers AS (SELECT 1 AS email) SELECT email FROM public.customers', [d('email', 'public.customers.email')]],
  // A data-modifying CTE.
  ['WITH d AS (DELETE FROM customers WHERE id = 1 RETURNING email) SELECT * FROM d', [s('*', 'customers.email')]],
  // A known CTE column hides same-named candidates of tables at the same level.
  ['WITH x AS (SELECT email AS e FROM customers) SELECT e FROM x, orders', [c('e', 'customers.email')]],
]);

cases('recursive CTEs', [
  ['WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM customers UNION ALL SELECT n + 1, e FROM r WHERE n < 3) SELECT n, e FROM r', [c('n'), c('e', 'customers.email')]],
  // The recursive term feeds other sources into the same column: the fixpoint collects both.
  [
    'WITH RECURSIVE t AS (SELECT id, email AS v FROM customers UNION ALL SELECT p.id, p.phone FROM people p JOIN t ON p.id = t.id) SELECT v FROM t',
    [c('v', 'customers.email', 'people.phone')],
  ],
  // SEARCH / CYCLE add columns that carry the listed columns' values.
  [
    'WITH RECURSIVE t(id, e) AS (SELECT id, email FROM customers UNION ALL SELECT c.id, c.email FROM customers c JOIN t ON c.pid = t.id) SEARCH DEPTH FIRST BY e SET ord CYCLE id SET is_cycle USING path SELECT ord, is_cycle, path FROM t',
    [c('ord', 'customers.email', 'customers.id'), c('is_cycle'), c('path', 'customers.email', 'customers.id')],
  ],
  // Mutually referencing CTEs in one WITH RECURSIVE.
  [
    'WITH RECURSIVE a AS (SELECT email AS x FROM customers UNION SELECT y FROM b), b AS (SELECT phone AS y FROM people UNION SELECT x FROM a) SELECT x FROM a',
    [c('x', 'customers.email', 'people.phone')],
  ],
]);

cases('subqueries', [
  ['SELECT e FROM (SELECT email AS e FROM customers) s', [c('e', 'customers.email')]],
  ['SELECT s.e FROM (SELECT t.e FROM (SELECT upper(email) AS e FROM customers) t) s', [c('e', 'customers.email')]],
  ['SELECT e FROM (SELECT * FROM customers) s', [c('e', 'customers.e')]],
  ['SELECT a, b FROM (SELECT email, phone FROM customers) AS s(a, b)', [c('a', 'customers.email'), c('b', 'customers.phone')]],
  ['SELECT a FROM (VALUES (1, 2)) v(a, b)', [c('a')]],
  ['SELECT (SELECT max(total) FROM orders o WHERE o.cid = c.id) AS spent FROM customers c', [c('spent', 'orders.total', 'customers.total')]],
  ['SELECT (SELECT email FROM customers LIMIT 1)', [c('email', 'customers.email')]],
  ['SELECT EXISTS (SELECT ssn FROM customers) FROM orders', [c('exists', 'customers.ssn', 'orders.ssn')]],
  ['SELECT o.cid IN (SELECT c.id FROM customers c) FROM orders o', [c('?column?', 'orders.cid', 'customers.id')]],
  ['SELECT ARRAY(SELECT c.email FROM customers c) AS emails', [c('emails', 'customers.email')]],
  // A subquery over a table lacking the column reads the outer one: both are candidates.
  ['SELECT (SELECT email FROM orders LIMIT 1) FROM customers', [c('email', 'customers.email', 'orders.email')]],
]);

cases('joins', [
  ['SELECT name FROM customers c JOIN orders o ON o.cid = c.id', [c('name', 'customers.name', 'orders.name')]],
  ['SELECT c.name, o.total FROM customers c LEFT JOIN orders o ON o.cid = c.id', [d('name', 'customers.name'), d('total', 'orders.total')]],
  ['SELECT id FROM customers JOIN orders USING (id)', [c('id', 'customers.id', 'orders.id')]],
  ['SELECT id, email FROM customers NATURAL JOIN people', [c('id', 'customers.id', 'people.id'), c('email', 'customers.email', 'people.email')]],
  ['SELECT u.id FROM customers JOIN orders USING (id) AS u', [c('id', 'customers.id', 'orders.id')]],
  ['SELECT j.x FROM (customers c JOIN orders o ON true) AS j(x)', [c('x', 'customers.*', 'orders.*')]],
  ['SELECT e FROM customers c, (SELECT note AS e FROM orders) o', [c('e', 'orders.note')]],
]);

cases('LATERAL and functions in FROM', [
  ['SELECT t.x FROM customers c, LATERAL (SELECT c.email AS x) t', [c('x', 'customers.email')]],
  ['SELECT x FROM customers c CROSS JOIN LATERAL (SELECT upper(c.phone) AS x) t', [c('x', 'customers.phone')]],
  ['SELECT tag FROM customers c, LATERAL unnest(c.tags) AS tag', [c('tag', 'customers.tag', 'customers.tags')]],
  ['SELECT u.v FROM customers c, unnest(ARRAY[c.email, c.phone]) AS u(v)', [c('v', 'customers.email', 'customers.phone')]],
  ["SELECT k, v FROM customers c, jsonb_each(c.profile)", [c('k', 'customers.k', 'customers.profile'), c('v', 'customers.profile', 'customers.v')]],
  ["SELECT a FROM customers c, xmltable('/r' PASSING c.doc COLUMNS a text PATH 'a') AS x", [c('a', 'customers.a', 'customers.doc')]],
]);

cases('set operations', [
  ['SELECT email FROM customers UNION SELECT note FROM orders', [c('email', 'customers.email', 'orders.note')]],
  ['SELECT email, 1 FROM customers UNION ALL SELECT note, total FROM orders', [c('email', 'customers.email', 'orders.note'), c('?column?', 'orders.total')]],
  ['SELECT email FROM customers INTERSECT SELECT email FROM people EXCEPT SELECT note FROM orders', [c('email', 'customers.email', 'orders.note', 'people.email')]],
  ['SELECT * FROM customers UNION SELECT * FROM people', [s('*', 'customers.*', 'people.*')]],
  ['SELECT u FROM (SELECT email AS u FROM customers UNION SELECT phone FROM people) x', [c('u', 'customers.email', 'people.phone')]],
  ['WITH x AS (SELECT email FROM customers) SELECT email FROM x UNION SELECT ssn FROM people', [c('email', 'customers.email', 'people.ssn')]],
]);

cases('VALUES', [
  ["VALUES (1, 'a'), (2, 'b')", [c('column1'), c('column2')]],
  ['VALUES ((SELECT email FROM customers LIMIT 1), 1)', [c('column1', 'customers.email'), c('column2')]],
]);

cases('RETURNING', [
  ['INSERT INTO customers (email) VALUES ($1) RETURNING email', [d('email', 'customers.email')]],
  ['INSERT INTO customers (email) VALUES ($1) RETURNING id, upper(email) AS e, *', [d('id', 'customers.id'), c('e', 'customers.email'), s('*', 'customers.*')]],
  // Returned values are what was written: the INSERT's sources flow into the target's columns.
  ['INSERT INTO archive (note) SELECT email FROM customers RETURNING note, id', [c('note', 'archive.note', 'customers.email'), d('id', 'archive.id')]],
  ['INSERT INTO archive SELECT email FROM customers RETURNING id', [c('id', 'archive.id', 'customers.email')]],
  ['UPDATE customers SET email = lower(email) WHERE id = 1 RETURNING email, phone', [c('email', 'customers.email'), d('phone', 'customers.phone')]],
  ['UPDATE accounts a SET note = c.email FROM customers c WHERE c.id = a.cid RETURNING a.note, c.phone', [c('note', 'accounts.note', 'customers.email'), d('phone', 'customers.phone')]],
  // The sub-select's unqualified phone may be the target's (a correlated reference): both.
  ['UPDATE accounts SET (note, memo) = (SELECT email, phone FROM customers LIMIT 1) RETURNING memo', [c('memo', 'accounts.memo', 'accounts.phone', 'customers.phone')]],
  ['UPDATE accounts SET (note, memo) = (SELECT c.email, c.phone FROM customers c LIMIT 1) RETURNING note', [c('note', 'accounts.note', 'customers.email')]],
  ['DELETE FROM customers WHERE id = 1 RETURNING *', [s('*', 'customers.*')]],
  ['DELETE FROM orders o USING customers c WHERE o.cid = c.id RETURNING c.email, o.total', [d('email', 'customers.email'), d('total', 'orders.total')]],
  ['UPDATE customers SET phone = $1 RETURNING old.phone, new.phone', [d('phone', 'customers.phone'), d('phone', 'customers.phone')]],
  [
    'INSERT INTO contacts AS t (id, email) SELECT id, phone FROM people ON CONFLICT (id) DO UPDATE SET email = excluded.email || t.email RETURNING t.email',
    [c('email', 'contacts.email', 'people.phone')],
  ],
  [
    'MERGE INTO contacts t USING customers s ON t.id = s.id WHEN MATCHED THEN UPDATE SET email = s.email WHEN NOT MATCHED THEN INSERT (id, phone) VALUES (s.id, s.phone) RETURNING t.email, t.phone, merge_action()',
    [c('email', 'contacts.email', 'customers.email'), c('phone', 'contacts.phone', 'customers.phone'), c('merge_action')],
  ],
  ['WITH src AS (SELECT email FROM customers) INSERT INTO archive (note) SELECT email FROM src RETURNING note', [c('note', 'archive.note', 'customers.email')]],
]);

describe('statements without lineage: null', () => {
  const none = [
    'SELECT 1; SELECT 2',
    'SELECT email FROM customers; UPDATE customers SET email = NULL',
    'UPDATE customers SET email = NULL WHERE id = 1',
    'INSERT INTO customers (email) VALUES ($1)',
    'DELETE FROM customers',
    'SELECT email INTO backup FROM customers',
    'CREATE TABLE t AS SELECT email FROM customers',
    'EXPLAIN SELECT email FROM customers',
    'SHOW search_path',
    'BEGIN',
    'SELEC email FROM customers',
    'SELECT email FROM',
    '',
    '   ',
    '-- only a comment',
  ];
  for (const sql of none) {
    it(JSON.stringify(sql), () => {
      assert.equal(outputLineage(sql), null);
    });
  }

  it('a trailing semicolon is still one statement', () => {
    assert.deepEqual(shown(lineage('SELECT email FROM customers;')), [d('email', 'customers.email')]);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: no source is ever lost.

/** A column reference the generator may write, with the base-table columns it truly reads. */
interface Ref {
  text: string;
  /** [table, column]; column '*' when the whole row is read. */
  truth: Array<[string, string]>;
}

/** A FROM clause (with its WITH prefix) and the references valid over it. */
interface Form {
  prefix: string;
  from: string;
  refs: Ref[];
  /** Whole-row references (relation names). */
  rows: Ref[];
}

const CUSTOMERS = ['id', 'email', 'phone', 'name'];
const ORDERS = ['id', 'customer_id', 'total', 'note'];

function tableRefs(table: string, qual: string, cols: string[], unqualified: string[]): Ref[] {
  const out: Ref[] = cols.map((col) => ({ text: `${qual}.${col}`, truth: [[table, col]] }));
  for (const col of unqualified) out.push({ text: col, truth: [[table, col]] });
  return out;
}

const FORMS: Form[] = [
  {
    prefix: '',
    from: 'customers c',
    refs: tableRefs('customers', 'c', CUSTOMERS, CUSTOMERS),
    rows: [{ text: 'c', truth: [['customers', '*']] }],
  },
  {
    prefix: '',
    from: 'customers c JOIN orders o ON o.customer_id = c.id',
    refs: [...tableRefs('customers', 'c', CUSTOMERS, ['email', 'phone', 'name']), ...tableRefs('orders', 'o', ORDERS, ['customer_id', 'total', 'note'])],
    rows: [{ text: 'c', truth: [['customers', '*']] }, { text: 'o', truth: [['orders', '*']] }],
  },
  {
    prefix: '',
    from: 'public.customers',
    refs: [...tableRefs('public.customers', 'customers', CUSTOMERS, CUSTOMERS), { text: 'public.customers.phone', truth: [['public.customers', 'phone']] }],
    rows: [{ text: 'customers', truth: [['public.customers', '*']] }],
  },
  {
    prefix: '',
    from: '(SELECT id, email AS e, upper(phone) AS p FROM customers) s JOIN orders o ON o.customer_id = s.id',
    refs: [
      { text: 's.e', truth: [['customers', 'email']] },
      { text: 'p', truth: [['customers', 'phone']] },
      { text: 's.id', truth: [['customers', 'id']] },
      ...tableRefs('orders', 'o', ORDERS, ['total', 'note']),
    ],
    rows: [{ text: 's', truth: [['customers', 'email'], ['customers', 'phone'], ['customers', 'id']] }],
  },
  {
    prefix: 'WITH w AS (SELECT id, email AS mail, name FROM customers) ',
    from: 'w JOIN orders o ON o.customer_id = w.id',
    refs: [
      { text: 'w.mail', truth: [['customers', 'email']] },
      { text: 'mail', truth: [['customers', 'email']] },
      { text: 'name', truth: [['customers', 'name']] },
      ...tableRefs('orders', 'o', ORDERS, ['note']),
    ],
    rows: [{ text: 'w', truth: [['customers', 'id'], ['customers', 'email'], ['customers', 'name']] }],
  },
  {
    prefix: '',
    from: 'customers c, LATERAL (SELECT o.note AS n FROM orders o WHERE o.customer_id = c.id LIMIT 1) l',
    refs: [...tableRefs('customers', 'c', CUSTOMERS, []), { text: 'l.n', truth: [['orders', 'note']] }, { text: 'n', truth: [['orders', 'note']] }],
    rows: [{ text: 'c', truth: [['customers', '*']] }],
  },
  {
    prefix: '',
    from: '(SELECT email AS v FROM customers UNION ALL SELECT note FROM orders) u',
    refs: [{ text: 'u.v', truth: [['customers', 'email'], ['orders', 'note']] }, { text: 'v', truth: [['customers', 'email'], ['orders', 'note']] }],
    rows: [],
  },
];

/** Deterministic PRNG (mulberry32): fast-check picks the seed, the generator the query. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

interface Expr {
  text: string;
  truth: Array<[string, string]>;
}

function expr(pick: (n: number) => number, form: Form, depth: number): Expr {
  const leaf = (): Expr => {
    if (form.rows.length > 0 && pick(8) === 0) {
      const r = form.rows[pick(form.rows.length)]!;
      const f = ['row_to_json(%)', '%::text', 'to_jsonb(%.*)', 'ROW(%.*)'][pick(4)]!;
      return { text: f.replace('%', r.text), truth: r.truth };
    }
    const r = form.refs[pick(form.refs.length)]!;
    return { text: r.text, truth: r.truth };
  };
  if (depth <= 0 || pick(3) === 0) return leaf();
  const a = (): Expr => expr(pick, form, depth - 1);
  const join = (tpl: string, parts: Expr[]): Expr => {
    let text = tpl;
    parts.forEach((p, i) => (text = text.replace(`$${i}`, p.text)));
    return { text, truth: parts.flatMap((p) => p.truth) };
  };
  switch (pick(14)) {
    case 0: return join('upper($0)', [a()]);
    case 1: return join("$0 || '-'", [a()]);
    case 2: return join('coalesce($0, $1)', [a(), a()]);
    case 3: return join('CAST($0 AS text)', [a()]);
    case 4: return join('($0)::varchar', [a()]);
    case 5: return join('CASE WHEN $0 IS NULL THEN $1 ELSE $2 END', [a(), a(), a()]);
    case 6: return join('max($0)', [a()]);
    case 7: return join('count($0)', [a()]);
    case 8: return join('nullif($0, $1)', [a(), a()]);
    case 9: return join("concat_ws(',', $0, $1)", [a(), a()]);
    case 10: return join('ARRAY[$0, $1]', [a(), a()]);
    case 11: return join("jsonb_build_object('k', $0)", [a()]);
    case 12: return join('lag($0) OVER (ORDER BY 1)', [a()]);
    default: {
      // A correlated scalar subquery: its own column plus outer references.
      const inner = a();
      return { text: `(SELECT concat(o2.note, ${inner.text}) FROM orders o2 LIMIT 1)`, truth: [['orders', 'note'], ...inner.truth] };
    }
  }
}

interface Query {
  sql: string;
  /** Per output column, what it reads; one entry (all of them) when the query ends in a star. */
  columns: Array<Array<[string, string]>>;
}

function query(pick: (n: number) => number): Query {
  const form = FORMS[pick(FORMS.length)]!;
  const n = 1 + pick(4);
  const exprs = Array.from({ length: n }, () => expr(pick, form, 3));
  const list = exprs.map((e, i) => `${e.text} AS a${i}`).join(', ');
  const inner = `SELECT ${list} FROM ${form.from}`;
  const columns = exprs.map((e) => e.truth);
  switch (pick(4)) {
    case 0:
      return { sql: form.prefix + inner, columns };
    case 1:
      return { sql: `${form.prefix}SELECT * FROM (${inner}) z`, columns: [columns.flat()] };
    case 2:
      return { sql: `WITH q AS (${form.prefix}${inner}) SELECT ${exprs.map((_, i) => `q.a${i}`).join(', ')} FROM q`, columns };
    default:
      return { sql: `${form.prefix + inner} UNION ALL SELECT ${exprs.map(() => 'NULL').join(', ')}`, columns };
  }
}

describe('property: no source is lost', () => {
  it('every column a generated query reads is among the sources of the output column that reads it', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const q = query(prng(seed));
        const out = outputLineage(q.sql);
        assert.notEqual(out, null, q.sql);
        assert.equal(out!.length, q.columns.length, q.sql);
        q.columns.forEach((truth, i) => {
          const got = out![i]!.sources;
          for (const [table, column] of truth) {
            const covered = got.some((x) => x.table === table && (x.column === column || x.column === '*'));
            assert.ok(covered, `output ${i} lost ${table}.${column}\n  ${q.sql}\n  sources: ${got.map((x) => `${x.table}.${x.column}`).join(', ')}`);
          }
        });
      }),
      { numRuns: 1000, seed: Number(process.env.FC_SEED ?? 20250101) },
    );
  });

  it('arbitrary text never throws (null or an array)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constantFrom('SELECT ', 'WITH x AS (', 'RETURNING *', '(SELECT', 'c.*', ' UNION ').chain((p) => fc.string().map((t) => p + t))), (text) => {
        const out = outputLineage(text);
        assert.ok(out === null || Array.isArray(out));
      }),
      { numRuns: 500 },
    );
  });

  it('deeply nested expressions and subqueries stay bounded', () => {
    const deep = `SELECT ${'upper('.repeat(200)}email${')'.repeat(200)} FROM customers`;
    assert.deepEqual(shown(lineage(deep)), [c('upper', 'customers.email')]);
    const nested = `SELECT e FROM ${'(SELECT e FROM '.repeat(30)}(SELECT email AS e FROM customers) s0${') s'.repeat(30)}`;
    assert.deepEqual(shown(lineage(nested)), [c('e', 'customers.email')]);
  });
});

describe('functions called on the way to each output', () => {
  const functions = (sql: string): string[][] => lineage(sql).map((o) => [...o.functions]);

  it('names every call, as written, through expressions, CTEs, subqueries, set operations and FROM', () => {
    assert.deepEqual(functions('SELECT email FROM customers'), [[]]);
    assert.deepEqual(functions('SELECT email_of(1) AS e, upper(lower(email)) FROM customers'), [['email_of'], ['lower', 'upper']]);
    assert.deepEqual(functions('SELECT public.email_of(id), "Mixed"(id) FROM customers'), [['public.email_of'], ['Mixed']]);
    assert.deepEqual(functions('WITH x AS (SELECT f(id) AS e, id FROM t) SELECT e, id FROM x'), [['f'], []]);
    assert.deepEqual(functions('SELECT (SELECT g(b) FROM u LIMIT 1) AS v'), [['g']]);
    assert.deepEqual(functions('SELECT a FROM t UNION ALL SELECT h(b) FROM u'), [['h']]);
    assert.deepEqual(functions('SELECT * FROM rows_of(1)'), [['rows_of']]);
    assert.deepEqual(functions('SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY k(salary)) FROM staff'), [['k', 'percentile_disc']]);
  });

  it('keeps calls out of the source columns', () => {
    assert.deepEqual(shown(lineage('SELECT upper(email_of(id)) AS e FROM customers')), [c('e', 'customers.id')]);
  });
});
