/**
 * Keeps src/errors.ts and docs/errors.md in sync: every class in ERROR_CLASSES has a unique
 * stable code, and a row of the docs table that carries both its code and its SQLSTATE.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CLASSES, GatehouseError } from './errors.js';

const DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));

/** Table rows of the doc, as arrays of cell texts without surrounding backticks. */
function tableRows(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((line) => line.trimStart().startsWith('|') && !/^\|\s*-/.test(line.trim()))
    .map((line) =>
      line
        .trim()
        .replace(/^\||\|$/g, '')
        .split('|')
        .map((cell) => cell.trim().replace(/^`(.*)`$/, '$1')),
    );
}

const instances = ERROR_CLASSES.map((C) => new C('message', { detail: 'detail', hint: 'hint', cause: new Error('cause') }));

describe('errors', () => {
  const rows = tableRows(readFileSync(DOC, 'utf8'));
  const header = rows[0]!;
  const codeCol = header.indexOf('Code');
  const stateCol = header.indexOf('SQLSTATE');
  const classCol = header.indexOf('Class');
  const whenCol = header.findIndex((h) => h.startsWith('When'));
  const body = rows.slice(1);

  it('the docs table has Code, SQLSTATE, Class and When columns', () => {
    assert.ok(codeCol >= 0 && stateCol >= 0 && classCol >= 0 && whenCol >= 0, `header: ${header.join(' | ')}`);
  });

  for (const err of instances) {
    it(`${err.name} (${err.code}, ${err.sqlstate}) is documented in one row`, () => {
      const matching = body.filter((r) => r[codeCol] === err.code);
      assert.equal(matching.length, 1, `exactly one row of docs/errors.md has code ${err.code}`);
      const row = matching[0]!;
      assert.equal(row[stateCol], err.sqlstate, `row of ${err.code} has SQLSTATE ${err.sqlstate}`);
      assert.equal(row[classCol], err.name, `row of ${err.code} names class ${err.name}`);
      assert.ok((row[whenCol] ?? '').length > 40, `row of ${err.code} says when it happens`);
    });
  }

  it('the docs list no code that the code does not have', () => {
    const known = new Set<string>(instances.map((e) => e.code));
    for (const r of body) assert.ok(known.has(r[codeCol]!), `docs/errors.md documents unknown code ${r[codeCol]}`);
  });

  it('codes and class names are unique', () => {
    const codes = instances.map((e) => e.code);
    assert.equal(new Set(codes).size, codes.length, `duplicate code in ${codes.join(', ')}`);
    const names = instances.map((e) => e.name);
    assert.equal(new Set(names).size, names.length);
  });

  it('every class is a GatehouseError with a GH_ code, a SQLSTATE and its own name', () => {
    ERROR_CLASSES.forEach((C, i) => {
      const err = instances[i]!;
      assert.ok(err instanceof GatehouseError && err instanceof Error);
      assert.match(err.code, /^GH_[A-Z_]+$/);
      assert.match(err.sqlstate, /^[0-9A-Z]{5}$/);
      assert.equal(err.name, C.name);
      assert.equal(err.message, 'message');
      assert.equal(err.detail, 'detail');
      assert.equal(err.hint, 'hint');
      assert.equal((err.cause as Error).message, 'cause');
      assert.ok(String(err.stack).startsWith(`${C.name}: message`));
    });
  });

  it('detail, hint and cause are absent unless given', () => {
    for (const C of ERROR_CLASSES) {
      const err = new C('m');
      assert.ok(!('detail' in err) || err.detail === undefined);
      assert.equal(err.hint, undefined);
      assert.equal(err.cause, undefined);
    }
  });
});
