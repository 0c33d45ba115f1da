import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../errors.js';
import { GUARDRAILS } from './guardrails.js';
import { compileRule } from './rules.js';

const compile = (when: string) => compileRule({ id: 'r', when, action: 'deny' }, 'policy.yaml', false);

describe('condition fields are checked at load', () => {
  for (const [when, message] of [
    ['statement.tabls.exists(t, t == "x")', /rule "r": invalid condition: unknown field "statement\.tabls" \(did you mean "statement\.tables"\?\)/],
    ['statment.kind == "DROP"', /unknown variable "statment" \(did you mean "statement"\?\)/],
    ['identity.on_behalf_of.nam == "a"', /unknown field "identity\.on_behalf_of\.nam"/],
    ['connection.env == "production"', /unknown field "connection\.env" \(did you mean "connection\.name"\?\)|unknown field "connection\.env"/],
    ['context.hours > 9', /unknown field "context\.hours" \(did you mean "context\.hour"\?\)/],
  ] as const) {
    it(`rejects ${when}`, () => {
      assert.throws(() => compile(when), (err: Error) => err instanceof ConfigError && message.test(err.message) && err.message.startsWith('policy.yaml: '));
    });
  }

  for (const when of [
    'statement.writes.exists(w, w.kind == "DELETE" && w.bounded)',
    'identity.attributes.team == "x" && connection.labels.env == "p"',
    'has(identity.attributes.team)',
    'context.hour > 9 && "dba" in identity.groups',
    'statement.tables.all(t, t.startsWith("pg_")) || statement.kind in ["A"]',
    'identity.on_behalf_of.name == "alice" && identity.delegated',
  ]) {
    it(`accepts ${when}`, () => assert.doesNotThrow(() => compile(when)));
  }

  it('accepts every built-in guardrail', () => {
    for (const g of GUARDRAILS) assert.doesNotThrow(() => compileRule(g, 'built-in', true), g.id);
  });
});
