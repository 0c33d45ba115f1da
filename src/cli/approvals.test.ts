/**
 * `gatehouse approvals`: the pure formatters and the connection settings, then the commands
 * against a stand-in HTTP API on 127.0.0.1 (requests sent, output, errors and exit codes).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Command, CommanderError } from 'commander';
import type { ApprovalRequest } from '../approvals/request.js';
import { formatDecision, formatDuration, formatList, formatRequest, registerApprovalCommands, resolveConnection, statementPreview, terminalSafe } from './approvals.js';
import { FIXTURE_NOW, sampleRequest } from '../approvals/fixture.test-helper.js';

const NOW = FIXTURE_NOW;

const request = (o: Partial<ApprovalRequest> = {}): ApprovalRequest => sampleRequest({ createdAt: NOW - 180_000, expiresAt: NOW + 420_000, ...o });

describe('approvals CLI formatting', () => {
  it('formats durations for people', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(-5000), '0s');
    assert.equal(formatDuration(45_000), '45s');
    assert.equal(formatDuration(420_000), '7m');
    assert.equal(formatDuration(3_600_000), '1h');
    assert.equal(formatDuration(3_900_000), '1h 5m');
    assert.equal(formatDuration(2 * 86_400_000 + 4 * 3_600_000), '2d 4h');
  });

  it('previews the first line of a statement, cut to 60 characters', () => {
    assert.equal(statementPreview('SELECT 1'), 'SELECT 1');
    assert.equal(statementPreview('\n\n  UPDATE t\tSET a = 1\nWHERE id = 2'), 'UPDATE t SET a = 1 …');
    const long = statementPreview(`SELECT ${'col, '.repeat(40)}`);
    assert.equal(Array.from(long).length, 60);
    assert.ok(long.endsWith('…'));
    assert.equal(statementPreview(' \n '), '');
  });

  it('lists requests as an aligned table with status, requester (for whom), connection, rule, age, expiry and statement', () => {
    const rows = [
      request(),
      request({
        id: 'apr_zzzzzzzzzzzzzzzzzzzz',
        status: 'approved',
        requester: { name: 'carol', kind: 'human', groups: [] },
        connection: 'staging',
        environment: 'staging',
        statement: `UPDATE orders SET state = 'x' WHERE created_at < now() - interval '30 days' AND state = 'open'`,
        votes: [{ name: 'bob', verdict: 'approve', at: NOW - 60_000 }],
        createdAt: NOW - 7_200_000,
      }),
      request({ id: 'apr_expiredexpiredexpir', expiresAt: NOW - 1 }),
    ];
    const text = formatList(rows, NOW);
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^ID\s+STATUS\s+REQUESTER\s+CONNECTION\s+RULE\s+AGE\s+EXPIRES\s+STATEMENT$/);
    assert.match(lines[1]!, /^apr_abcdefghijklmnopqrst\s+pending \(0\/1\)\s+agent-7 \(for alice\)\s+prod-db\/production\s+guard\.ddl-approval\s+3m\s+in 7m\s+ALTER TABLE users ADD COLUMN nickname text$/);
    assert.match(lines[2]!, /^apr_zzzzzzzzzzzzzzzzzzzz\s+approved\s+carol\s+staging\/staging\s+guard\.ddl-approval\s+2h\s+-\s+UPDATE orders SET state = 'x' WHERE created_at < now\(\) - in…$/);
    // Past its expiry, a stored "pending" reads as expired.
    assert.match(lines[3]!, /^apr_expiredexpiredexpir\s+expired\s/);
    // Columns line up: STATUS starts at the same offset on every line.
    const at = lines[0]!.indexOf('STATUS');
    for (const l of lines.slice(1)) assert.ok(/\S/.test(l[at]!) && l[at - 1] === ' ', l);
  });

  it('shows a request with every field, the full statement and the votes', () => {
    const r = request({
      statement: 'ALTER TABLE users\n  ADD COLUMN nickname text;',
      quorum: 2,
      groups: ['dba', 'sre'],
      votes: [{ name: 'bob', verdict: 'approve', at: NOW - 30_000, reason: 'CHG-1234' }],
    });
    const text = formatRequest(r, NOW);
    for (const part of [
      'id:',
      'apr_abcdefghijklmnopqrst',
      'pending: 1 of 2 approvals, expires in 7m',
      'wait',
      'agent-7 (agent) on behalf of alice; groups: ci',
      'prod-db (production)',
      'guard.ddl-approval: DDL on production requires approval',
      'ddl; tables: public.users',
      '2 from dba, sre',
      '2024-05-01T11:57:00Z (3m ago)',
      '2024-05-01T12:07:00Z (in 7m)',
      's-1 on node-a',
      'votes:\n  2024-05-01T11:59:30Z  approved by bob: CHG-1234',
      'statement:\n  ALTER TABLE users\n    ADD COLUMN nickname text;\n',
    ]) {
      assert.ok(text.includes(part), `"${part}" in:\n${text}`);
    }
    assert.ok(!text.includes('decided:'));
    const denied = formatRequest(
      request({ status: 'denied', decidedAt: NOW - 1000, reason: 'not during the freeze', votes: [{ name: 'bob', verdict: 'deny', at: NOW - 1000, reason: 'not during the freeze' }] }),
      NOW,
    );
    assert.match(denied, /status:\s+denied\n/);
    assert.match(denied, /decided:\s+2024-05-01T11:59:59Z/);
    assert.match(denied, /reason:\s+not during the freeze/);
    assert.match(denied, /denied by bob: not during the freeze/);
    assert.match(formatRequest(request({ votes: [{ name: 'policy', verdict: 'approve', at: NOW, rule: 'ci.window' }], status: 'approved' }), NOW), /approved by policy \(rule ci\.window\)/);
    assert.match(formatRequest(request(), NOW), /votes:\n {2}\(none yet\)/);
  });

  it('never prints control characters or bidi overrides from requests raw', () => {
    const evil = 'SELECT 1;\u001b[2K\r-- harmless\u202e\u009b31m';
    assert.equal(terminalSafe(evil), 'SELECT 1;\\x1b[2K\\x0d-- harmless\\u202e\\x9b31m');
    assert.equal(terminalSafe('a\n\tb'), 'a\n\tb');
    const r = request({ statement: evil, requester: { name: 'x\u001b]0;pwned\u0007', kind: 'agent', groups: [] } });
    for (const text of [formatList([r], NOW), formatRequest(r, NOW), formatDecision('approve', r, NOW)]) {
      assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(text), JSON.stringify(text));
    }
  });

  it('says what an approval or a denial did', () => {
    const one = request({ status: 'approved', votes: [{ name: 'bob', verdict: 'approve', at: NOW }], decidedAt: NOW, runUntil: NOW + 3_600_000 });
    assert.equal(formatDecision('approve', one, NOW), 'approved apr_abcdefghijklmnopqrst (1 of 1 approvals): the statement may run\n');
    const retry = { ...one, mode: 'retry' as const };
    assert.equal(formatDecision('approve', retry, NOW), 'approved apr_abcdefghijklmnopqrst (1 of 1 approvals): the statement may run once, when sent again before 2024-05-01T13:00:00Z\n');
    const half = request({ quorum: 2, votes: [{ name: 'bob', verdict: 'approve', at: NOW }] });
    assert.equal(formatDecision('approve', half, NOW), 'recorded your approval of apr_abcdefghijklmnopqrst (1 of 2); 1 more needed from dba\n');
    const denied = request({ status: 'denied', votes: [{ name: 'bob', verdict: 'deny', at: NOW, reason: 'freeze' }], reason: 'freeze' });
    assert.equal(formatDecision('deny', denied, NOW), 'denied apr_abcdefghijklmnopqrst: freeze; the statement will not run\n');
    assert.equal(formatDecision('deny', { ...denied, votes: [{ name: 'bob', verdict: 'deny', at: NOW }] }, NOW), 'denied apr_abcdefghijklmnopqrst; the statement will not run\n');
  });
});

describe('approvals CLI connection settings', () => {
  const problem = (fn: () => unknown, exitCode: number, re: RegExp): void => {
    assert.throws(fn, (err: Error & { exitCode?: number }) => {
      assert.equal(err.exitCode, exitCode);
      assert.match(err.message, re);
      return true;
    });
  };

  it('defaults to 127.0.0.1:8080 and prefers --url over GATEHOUSE_URL', () => {
    assert.equal(resolveConnection({}, { GATEHOUSE_TOKEN: 't' }).base, 'http://127.0.0.1:8080');
    assert.equal(resolveConnection({}, { GATEHOUSE_TOKEN: 't', GATEHOUSE_URL: 'https://gh.example.com/base/' }).base, 'https://gh.example.com/base');
    assert.equal(resolveConnection({ url: 'http://10.0.0.1:9000' }, { GATEHOUSE_TOKEN: 't', GATEHOUSE_URL: 'https://gh.example.com' }).base, 'http://10.0.0.1:9000');
  });

  it('sends a token as Bearer, a user and password as Basic, a user with a token as Basic', () => {
    assert.equal(resolveConnection({}, { GATEHOUSE_TOKEN: 'ght_abc' }).authorization, 'Bearer ght_abc');
    assert.equal(resolveConnection({}, { GATEHOUSE_USER: 'bob', GATEHOUSE_PASSWORD: 'pw' }).authorization, `Basic ${Buffer.from('bob:pw').toString('base64')}`);
    assert.equal(resolveConnection({ user: 'carol' }, { GATEHOUSE_USER: 'bob', GATEHOUSE_PASSWORD: 'pw' }).authorization, `Basic ${Buffer.from('carol:pw').toString('base64')}`);
    assert.equal(resolveConnection({ user: 'ci-bot' }, { GATEHOUSE_TOKEN: 'eyJ' }).authorization, `Basic ${Buffer.from('ci-bot:eyJ').toString('base64')}`);
  });

  it('names the variables when credentials are missing (exit 2)', () => {
    problem(() => resolveConnection({}, {}), 2, /GATEHOUSE_TOKEN.*GATEHOUSE_USER.*GATEHOUSE_PASSWORD/);
    problem(() => resolveConnection({}, { GATEHOUSE_TOKEN: '' }), 2, /no credentials/);
    problem(() => resolveConnection({ user: 'bob' }, {}), 2, /no password for "bob": set GATEHOUSE_PASSWORD/);
    problem(() => resolveConnection({ url: 'ftp://x' }, { GATEHOUSE_TOKEN: 't' }), 2, /--url: expected an http/);
    problem(() => resolveConnection({}, { GATEHOUSE_TOKEN: 't', GATEHOUSE_URL: 'not a url' }), 2, /GATEHOUSE_URL: expected/);
    problem(() => resolveConnection({ url: 'http://bob:pw@host' }, { GATEHOUSE_TOKEN: 't' }), 2, /not in the URL/);
  });
});

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

describe('approvals CLI commands (stand-in API)', () => {
  let server: Server;
  let base = '';
  const seen: Seen[] = [];
  /** The next answer: status and body. */
  let answer: { status: number; body: string } = { status: 200, body: '[]' };

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(answer.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function cli(args: string[], env: NodeJS.ProcessEnv = { GATEHOUSE_URL: base, GATEHOUSE_TOKEN: 'tok' }): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const program = new Command('gatehouse').exitOverride().configureOutput({ writeErr: (s) => (err += s), writeOut: (s) => (out += s) });
    registerApprovalCommands(program, { env, out: (s) => (out += s) });
    seen.length = 0;
    try {
      await program.parseAsync(args, { from: 'user' });
      return { code: 0, out, err };
    } catch (e) {
      if (e instanceof CommanderError) return { code: e.exitCode, out, err };
      throw e;
    }
  }

  it('list asks for pending requests and prints the table; --all drops the filter; --json prints the array', async () => {
    const r = request({ createdAt: Date.now() - 60_000, expiresAt: Date.now() + 600_000 });
    answer = { status: 200, body: JSON.stringify([r]) };
    let res = await cli(['approvals', 'list']);
    assert.equal(res.code, 0, res.err);
    assert.equal(seen[0]!.method, 'GET');
    assert.equal(seen[0]!.url, '/api/approvals?status=pending');
    assert.equal(seen[0]!.headers.authorization, 'Bearer tok');
    assert.match(res.out, /^ID\s+STATUS/);
    assert.match(res.out, /apr_abcdefghijklmnopqrst\s+pending/);
    res = await cli(['approvals', 'list', '--all', '--json', '--limit', '5']);
    assert.equal(seen[0]!.url, '/api/approvals?limit=5');
    assert.deepEqual(JSON.parse(res.out), [r]);
    res = await cli(['approvals', 'list', '--status', 'denied']);
    assert.equal(seen[0]!.url, '/api/approvals?status=denied');
    answer = { status: 200, body: '[]' };
    res = await cli(['approvals', 'list']);
    assert.equal(res.out, 'no pending approval requests\n');
  });

  it('show prints the request; --json prints it as JSON', async () => {
    answer = { status: 200, body: JSON.stringify(request()) };
    let res = await cli(['approvals', 'show', 'apr_abcdefghijklmnopqrst'], { GATEHOUSE_URL: base, GATEHOUSE_USER: 'bob', GATEHOUSE_PASSWORD: 'pw' });
    assert.equal(res.code, 0, res.err);
    assert.equal(seen[0]!.url, '/api/approvals/apr_abcdefghijklmnopqrst');
    assert.equal(seen[0]!.headers.authorization, `Basic ${Buffer.from('bob:pw').toString('base64')}`);
    assert.match(res.out, /statement:\n {2}ALTER TABLE users ADD COLUMN nickname text/);
    res = await cli(['approvals', 'show', 'apr_abcdefghijklmnopqrst', '--json']);
    assert.equal(JSON.parse(res.out).id, 'apr_abcdefghijklmnopqrst');
  });

  it('approve and deny POST the reason (or {}) and say what happened', async () => {
    answer = { status: 200, body: JSON.stringify(request({ status: 'approved', votes: [{ name: 'bob', verdict: 'approve', at: NOW }] })) };
    let res = await cli(['approvals', 'approve', 'apr_abcdefghijklmnopqrst', '--reason', 'CHG-1234']);
    assert.equal(res.code, 0, res.err);
    assert.equal(seen[0]!.method, 'POST');
    assert.equal(seen[0]!.url, '/api/approvals/apr_abcdefghijklmnopqrst/approve');
    assert.equal(seen[0]!.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(seen[0]!.body), { reason: 'CHG-1234' });
    assert.equal(res.out, 'approved apr_abcdefghijklmnopqrst (1 of 1 approvals): the statement may run\n');
    answer = { status: 200, body: JSON.stringify(request({ status: 'denied', votes: [{ name: 'bob', verdict: 'deny', at: NOW }] })) };
    res = await cli(['approvals', 'deny', 'apr_abcdefghijklmnopqrst', '--url', base]);
    assert.equal(seen[0]!.url, '/api/approvals/apr_abcdefghijklmnopqrst/deny');
    assert.deepEqual(JSON.parse(seen[0]!.body), {});
    assert.match(res.out, /^denied apr_abcdefghijklmnopqrst/);
  });

  it('reports API errors as one line with the HTTP status, exit 1', async () => {
    for (const [status, error] of [
      [403, 'agent-7 acted on behalf of alice, so alice cannot decide this request (separation of duties)'],
      [404, 'no approval request "apr_x"'],
      [409, 'request apr_x is denied, not pending'],
      [401, 'authentication failed'],
    ] as const) {
      answer = { status, body: JSON.stringify({ error }) };
      const res = await cli(['approvals', 'approve', 'apr_x']);
      assert.equal(res.code, 1);
      assert.equal(res.err, `gatehouse approvals: ${error} (HTTP ${status})\n`);
      assert.equal(res.out, '');
    }
    answer = { status: 502, body: '<html>bad gateway</html>' };
    const res = await cli(['approvals', 'list']);
    assert.equal(res.code, 1);
    assert.match(res.err, /^gatehouse approvals: GET .*\/api\/approvals\?status=pending: .* \(HTTP 502\)\n$/);
    answer = { status: 200, body: '{"not": "a request"}' };
    const odd = await cli(['approvals', 'show', 'apr_x']);
    assert.equal(odd.code, 1);
    assert.match(odd.err, /is not an approval request/);
  });

  it('exits 2 naming the variables when there are no credentials, without calling the API', async () => {
    const res = await cli(['approvals', 'list'], { GATEHOUSE_URL: base });
    assert.equal(res.code, 2);
    assert.equal(seen.length, 0);
    assert.match(res.err, /^gatehouse approvals: no credentials: set GATEHOUSE_TOKEN .*GATEHOUSE_USER .*GATEHOUSE_PASSWORD\n$/);
  });

  it('names the URL and the reason when Gatehouse cannot be reached, exit 1', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const dead = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((r) => probe.close(r));
    const res = await cli(['approvals', 'list'], { GATEHOUSE_URL: dead, GATEHOUSE_TOKEN: 't' });
    assert.equal(res.code, 1);
    assert.ok(res.err.startsWith(`gatehouse approvals: cannot reach Gatehouse at ${dead}: `), res.err);
    assert.match(res.err, /ECONNREFUSED/);
    assert.ok(!res.err.includes('    at '), 'no stack trace');
  });
});
