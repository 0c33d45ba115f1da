import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadPostgresParser } from './pg-analyzer.js';
import { predicateColumns } from './pg-predicates.js';

describe('predicateColumns', () => {
  before(async () => {
    await loadPostgresParser();
  });

  const cases: Array<[string, string[]]> = [
    ['SELECT id FROM customers WHERE email = $1', ['email']],
    ["SELECT id FROM customers c WHERE lower(c.email) LIKE '%x%'", ['email']],
    ['SELECT id, email FROM customers ORDER BY phone', ['phone']],
    ['SELECT count(*) FROM customers GROUP BY ssn HAVING count(*) > 1', ['ssn']],
    ['SELECT o.id FROM orders o JOIN customers c ON c.email = o.contact', ['email', 'contact']],
    ['SELECT o.id FROM orders o JOIN customers c USING (email)', ['email']],
    ['SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE note = $1)', ['id', 'customer_id', 'note']],
    ['WITH x AS (SELECT * FROM customers WHERE phone IS NOT NULL) SELECT id FROM x', ['phone']],
    ['SELECT DISTINCT ON (email) id FROM customers', ['email']],
    ['SELECT id, row_number() OVER (PARTITION BY card_number ORDER BY born) FROM customers', ['card_number', 'born']],
    ['UPDATE customers SET name = $1 WHERE email = $2', ['email']],
    ['SELECT id, email FROM customers', []],
  ];
  for (const [sql, expected] of cases) {
    it(sql, () => {
      assert.deepEqual(new Set(predicateColumns(sql)), new Set(expected));
    });
  }

  it('null for text that does not parse', () => {
    assert.equal(predicateColumns('SELEC nonsense'), null);
  });
});
