import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { statementLog } from './statement-log.js';
import { testSession } from './session.test-helper.js';
import type { Execution, Statement } from './types.js';

/** A statement-log stage over a pino logger whose lines are kept: as UTF-8 (as written to the log), parsed. */
function capture(): { plugin: ReturnType<typeof statementLog>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info', base: { node: 'n1' } }, { write: (l: string) => void lines.push(JSON.parse(Buffer.from(l, 'utf8').toString('utf8')) as Record<string, unknown>) });
  return { plugin: statementLog(logger), lines };
}

const session = testSession({
  id: 'n1-7',
  identity: { id: 'user:al"ice', name: 'al"ice', credentialId: 'local:alice' },
  connection: { name: 'prod', environment: 'production' },
  applicationName: 'psql',
});

const execution = (statement: Statement, extra: Partial<Execution> = {}): Execution =>
  ({ statement, startedAt: 0, rows: 3, command: 'SELECT 3', sqlstate: undefined, refusedBy: undefined, durationMs: 1.23456, dataRows: 3, ...extra }) as Execution;

describe('statement log', () => {
  it('writes one JSON line per statement whatever the text holds', () => {
    const { plugin, lines } = capture();
    plugin.sessionStart!(session);
    const texts = [
      'SELECT 1',
      "SELECT 'it''s' AS \"quoted\"",
      'SELECT E\'\\\\x\' -- backslash',
      'SELECT 1;\nSELECT\t2;\r\n',
      `SELECT '${String.fromCharCode(1)}${String.fromCharCode(0x1f)}'`,
      "SELECT 'Zürich €, 😀'",
      `SELECT '${'\ud800'}' -- lone surrogate`,
      `SELECT '${'x'.repeat(3000)}'`,
    ];
    for (const text of texts) plugin.complete!(session, execution({ text, protocol: 'simple', name: '', decision: { action: 'allow' } }));
    const statements = lines.filter((l) => l.event === 'statement');
    assert.equal(statements.length, texts.length);
    for (let i = 0; i < texts.length; i++) {
      const line = statements[i]!;
      const text = texts[i]!;
      const expected = text.length > 2048 ? text.slice(0, 2048) + '…' : text;
      // A lone surrogate survives UTF-8 only escaped (\ud800), so it comes back as it was.
      assert.equal(line.statement, expected, `text ${i}`);
      assert.equal(line.user, 'al"ice');
      assert.equal(line.session, 'n1-7');
      assert.equal(line.node, 'n1');
      assert.equal(line.duration_ms, 1.235);
      assert.equal(line.rows, 3);
      assert.equal(line.command, 'SELECT 3');
      assert.equal(line.decision, 'allow');
    }
  });

  it('records the refusing rule, the SQLSTATE and the row cap', () => {
    const { plugin, lines } = capture();
    plugin.sessionStart!(session);
    const st: Statement = { text: 'DELETE FROM t', protocol: 'extended', name: 's1', decision: { action: 'deny', ruleId: 'no.delete', message: 'no' } };
    plugin.complete!(session, execution(st, { rows: 0, command: '', sqlstate: '42501', refusedBy: 'no.delete' }));
    const capped: Statement = { text: 'UPDATE t SET a = 1', protocol: 'simple', name: '', decision: { action: 'allow', rowCap: { limit: 100, ruleId: 'cap', message: 'too many' } } };
    plugin.complete!(session, execution(capped, { command: 'UPDATE 3' }));
    const [deny, cap] = lines.filter((l) => l.event === 'statement');
    assert.equal(deny!.decision, 'deny');
    assert.equal(deny!.rule, 'no.delete');
    assert.equal(deny!.sqlstate, '42501');
    assert.equal(deny!.command, undefined);
    assert.equal(cap!.row_cap, 100);
    assert.equal(cap!.command, 'UPDATE 3');
  });
});
