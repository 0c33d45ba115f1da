import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { LineBatcher } from '../server/logger.js';
import { putMillis, putUint, statementLog } from './statement-log.js';
import { testSession } from './session.test-helper.js';
import type { Execution, Statement } from './types.js';

type Captured = { plugin: ReturnType<typeof statementLog>; lines: Array<Record<string, unknown>> };

/**
 * A statement-log stage whose lines are kept, parsed. `batcher`: through the production
 * LineBatcher, which the stage writes its bytes straight into; `string`: through a plain pino
 * destination that takes strings. The lines are read back as UTF-8, as written to the log.
 */
function capture(via: 'batcher' | 'string'): Captured {
  const lines: Array<Record<string, unknown>> = [];
  const keep = (text: string): void => {
    for (const l of text.split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
  };
  if (via === 'string') {
    const logger = pino({ level: 'info', base: { node: 'n1' } }, { write: (l: string) => keep(Buffer.from(l, 'utf8').toString('utf8')) });
    return { plugin: statementLog(logger), lines };
  }
  // Handed-on batches are decoded at once (the batcher may write into its buffer again later).
  const batcher = new LineBatcher({ write: (b: Buffer) => (keep(b.toString('utf8')), true), flush: () => {}, flushSync: () => {} });
  const logger = pino({ level: 'info', base: { node: 'n1' } }, batcher);
  const plugin = statementLog(logger);
  // Lines are handed on in batches: flush before every read of `lines`.
  const complete = plugin.complete!;
  return { plugin: { ...plugin, complete: (s, e) => (complete(s, e), batcher.flush()) }, lines };
}

const session = testSession({
  id: 'n1-7',
  identity: { id: 'user:al"ice', name: 'al"ice', credentialId: 'local:alice' },
  connection: { name: 'prod', environment: 'production' },
  applicationName: 'psql',
});

const execution = (statement: Statement, extra: Partial<Execution> = {}): Execution =>
  ({ statement, startedAt: 0, rows: 3, command: 'SELECT 3', sqlstate: undefined, refusedBy: undefined, durationMs: 1.23456, dataRows: 3, ...extra }) as Execution;

for (const via of ['batcher', 'string'] as const) describe(`statement log (${via} destination)`, () => {
  it('writes one JSON line per statement whatever the text holds', () => {
    const { plugin, lines } = capture(via);
    plugin.sessionStart!(session);
    const texts = [
      'SELECT 1',
      "SELECT 'it''s' AS \"quoted\"",
      'SELECT E\'\\\\x\' -- backslash',
      'SELECT 1;\nSELECT\t2;\r\n',
      `SELECT '${String.fromCharCode(1)}${String.fromCharCode(0x1f)}'`,
      "SELECT 'Zürich €, 😀'",
      `SELECT '${String.fromCharCode(0x7f)}~'`,
      `SELECT '${'\ud800'}' -- lone surrogate`,
      `SELECT '${'x'.repeat(3000)}'`,
    ];
    // Simple queries are escaped on every line; a prepared statement's text once, then reused.
    const prepared = texts.map((text, i): Statement => ({ text, protocol: 'extended', name: `s${i}`, decision: { action: 'allow' } }));
    const before = Date.now();
    for (const text of texts) plugin.complete!(session, execution({ text, protocol: 'simple', name: '', decision: { action: 'allow' } }));
    for (const st of [...prepared, ...prepared]) plugin.complete!(session, execution(st));
    const after = Date.now();
    const statements = lines.filter((l) => l.event === 'statement');
    assert.equal(statements.length, 3 * texts.length);
    for (const l of statements) {
      // ISO 8601 with milliseconds, as pino's isoTime writes it.
      assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const t = Date.parse(String(l.time));
      assert.ok(t >= before && t <= after, `${String(l.time)} within the test`);
    }
    for (let i = 0; i < statements.length; i++) {
      const line = statements[i]!;
      const text = texts[i % texts.length]!;
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
    const { plugin, lines } = capture(via);
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

describe('statement log: pieces kept while they repeat', () => {
  // Each session keeps its last text and its last fields after the duration encoded; whatever
  // order statements come in, every line must say what its own execution says.
  const sessions = [session, testSession({ id: 'n1-8', identity: { id: 'user:bob', name: 'bob' }, connection: { name: 'dev', environment: 'development' } })];
  const texts = ['SELECT 1', 'SELECT 2', "SELECT 'é'", 'SELECT "q"'];
  const decisions: Statement['decision'][] = [
    { action: 'allow' },
    { action: 'allow', ruleId: 'r.allow' },
    { action: 'deny', ruleId: 'r.deny', message: 'no' },
    { action: 'allow', rowCap: { limit: 5, ruleId: 'r.cap', message: 'cap' } },
  ];
  const step = fc.record({
    session: fc.integer({ min: 0, max: 1 }),
    text: fc.integer({ min: 0, max: texts.length - 1 }),
    // A text equal to an earlier one but another string (decoded anew) must be treated the same.
    copy: fc.boolean(),
    rows: fc.integer({ min: 0, max: 2 }),
    command: fc.constantFrom('SELECT 1', 'SELECT 2', 'UPDATE 1', ''),
    sqlstate: fc.constantFrom(undefined, '42501', '23505'),
    refusedBy: fc.constantFrom(undefined, 'r.deny'),
    decision: fc.integer({ min: 0, max: decisions.length - 1 }),
    ms: fc.double({ min: 0, max: 100, noNaN: true }),
  });

  it('every line matches its own execution (property)', () => {
    fc.assert(
      // Steps come in runs of one to three alike (the same session, text and fields; a new
      // duration), so pieces are kept, reused and dropped in every order.
      fc.property(fc.array(fc.tuple(step, fc.integer({ min: 1, max: 3 })), { minLength: 1, maxLength: 30 }), (runs) => {
        const steps = runs.flatMap(([x, k]) => Array.from({ length: k }, (_, i) => ({ ...x, ms: x.ms + i })));
        const { plugin, lines } = capture('batcher');
        for (const x of steps) {
          const text = x.copy ? texts[x.text]!.split('').join('') : texts[x.text]!;
          const st: Statement = { text, protocol: 'simple', name: '', decision: decisions[x.decision]! };
          plugin.complete!(sessions[x.session]!, execution(st, { rows: x.rows, command: x.command, sqlstate: x.sqlstate, refusedBy: x.refusedBy, durationMs: x.ms }));
        }
        assert.equal(lines.length, steps.length);
        steps.forEach((x, i) => {
          const l = lines[i]!;
          const d = decisions[x.decision]!;
          assert.equal(l.session, sessions[x.session]!.id);
          assert.equal(l.statement, texts[x.text]);
          assert.equal(l.duration_ms, Math.round(x.ms * 1000) / 1000);
          assert.equal(l.rows, x.rows);
          assert.equal(l.command, x.command === '' ? undefined : x.command);
          assert.equal(l.sqlstate, x.sqlstate);
          assert.equal(l.decision, d.action);
          assert.equal(l.rule, x.refusedBy ?? d.ruleId);
          assert.equal(l.row_cap, d.rowCap?.limit);
          assert.equal(l.refused, x.refusedBy !== undefined && d.action !== 'deny' ? true : undefined);
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('statement log numbers', () => {
  const write = (put: (b: Buffer, p: number, n: number) => number, n: number): string => {
    const b = Buffer.alloc(64);
    return b.toString('latin1', 3, put(b, 3, n));
  };

  it('prints durations as JSON prints them rounded to the microsecond', () => {
    for (const ms of [0, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.12, 0.123, 1, 1.5, 1.05, 1.005, 10.2, 999.9996, 1234567.891]) {
      assert.equal(write(putMillis, ms), String(Math.round(ms * 1000) / 1000), `${ms}`);
    }
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e9, noNaN: true }), (ms) => write(putMillis, ms) === String(Math.round(ms * 1000) / 1000)),
      { numRuns: 5000 },
    );
  });

  it('prints whole numbers in decimal, and anything else as JavaScript does', () => {
    fc.assert(fc.property(fc.maxSafeNat(), (n) => write(putUint, n) === String(n)), { numRuns: 5000 });
    for (const n of [0, 9, 10, 99, 100, Number.MAX_SAFE_INTEGER, -1, 1.5, Number.MAX_SAFE_INTEGER + 2]) assert.equal(write(putUint, n), String(n));
  });
});
