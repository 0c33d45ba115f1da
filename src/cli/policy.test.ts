/**
 * `gatehouse policy explain` and `gatehouse policy test` as users run them (the real CLI in a
 * child process), and `gatehouse check` on broken policy files: one line naming the file, the
 * rule and the key, exit 1, no stack trace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/gatehouse.js');
const EXAMPLE = join(ROOT, 'examples/local.yaml');
const FIXTURES = join(ROOT, 'examples/policies/fixtures.yaml');
const VERIFIER = 'SCRAM-SHA-256$4096:TYdnR/DnbPySrBeOGtdT2w==$O1fxtE4ZhPsdepvNkFYm0ccfyzWCB6Gp8ot0CPVejlI=:Sbyi+Gljpkep/oOXTQGO7CNNT05rB+2odN4mPHv4fw0=';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Exit 1 with exactly one line on stderr, no stack trace, and that line contains every part. */
function oneLineError(r: Result, parts: string[]): string {
  assert.equal(r.code, 1, `exit code\n${r.stdout}${r.stderr}`);
  assert.ok(!`${r.stdout}${r.stderr}`.includes('    at '), `no stack trace:\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.startsWith('gatehouse: '), lines[0]);
  for (const p of parts) assert.ok(lines[0]!.includes(p), `"${p}" in: ${lines[0]}`);
  return lines[0]!;
}

/** A configuration with connections dev and prod (production) using policy file `policy.yaml`. */
function config(dir: string, policy: string): string {
  writeFileSync(join(dir, 'policy.yaml'), policy);
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(
    file,
    `connections:
  - name: dev
    upstream: { host: db.internal, database: app, user: app }
  - name: prod
    environment: production
    upstream: { host: db.internal, database: app, user: app }
users:
  - { name: ann, password: "${VERIFIER}", groups: [dba] }
policy:
  files: [policy.yaml]
`,
  );
  return file;
}

describe('gatehouse policy', { concurrency: true }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-policy-cli-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('explain: prints the facts, every matched rule id and the decision', async () => {
    const r = await cli(['policy', 'explain', '--config', EXAMPLE, '--connection', 'prod', '--user', 'carol', '--sql', 'SELECT * FROM customers JOIN payments p ON p.customer_id = customers.id']);
    assert.equal(r.code, 0, r.stderr);
    for (const id of ['prod.allow-reads', 'customers.no-select-star', 'payments.audit-reads']) assert.ok(r.stdout.includes(id), `${id} in:\n${r.stdout}`);
    assert.match(r.stdout, /kind "SELECT"\s+category "read"/);
    assert.match(r.stdout, /tables_read \["customers", "payments"\]/);
    assert.match(r.stdout, /^decision: deny \(rule customers\.no-select-star\)$/m);
    assert.match(r.stdout, /client sees: ERROR 42501: analysts must name the columns .* \(rule customers\.no-select-star\)/);
  });

  it('explain: the same DROP TABLE is refused on prod and allowed on dev', async () => {
    const prod = await cli(['policy', 'explain', '-c', EXAMPLE, '--connection', 'prod', '--user', 'alice', '--sql', 'DROP TABLE orders']);
    assert.equal(prod.code, 0, prod.stderr);
    assert.match(prod.stdout, /guard\.drop\s+deny\s+enforce/);
    // DROP is owned by guard.drop alone, so a dry-run of guard.drop lets it through.
    assert.doesNotMatch(prod.stdout, /guard\.ddl-approval/);
    assert.match(prod.stdout, /^decision: deny \(rule guard\.drop\)$/m);
    const dev = await cli(['policy', 'explain', '-c', EXAMPLE, '--connection', 'dev', '--user', 'alice', '--sql', 'DROP TABLE orders']);
    assert.equal(dev.code, 0, dev.stderr);
    assert.match(dev.stdout, /guardrails off/);
    assert.match(dev.stdout, /matched rules: none/);
    assert.match(dev.stdout, /^decision: allow /m);
  });

  it('explain --json: one JSON document with facts, matches and decisions per statement', async () => {
    const r = await cli(['policy', 'explain', '-c', EXAMPLE, '--connection', 'prod', '--user', 'alice', '--sql', "UPDATE orders SET status = 'x' WHERE id = 1; DELETE FROM orders", '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      connection: { name: string; guardrails: boolean };
      identity: { name: string; groups: string[] };
      statements: Array<{ text: string; facts: Record<string, unknown>; matches: Array<{ id: string }>; decision: { action: string; rule: string | null; row_cap: { limit: number } | null } }>;
      decision: { action: string; rule: string; sqlstate: string; row_cap: unknown };
    };
    assert.deepEqual(doc.connection, { ...doc.connection, name: 'prod', guardrails: true });
    assert.deepEqual(doc.identity.groups, ['dba']);
    assert.equal(doc.statements.length, 2);
    const [update, del] = doc.statements;
    assert.equal(update!.facts.kind, 'UPDATE');
    assert.equal(update!.facts.multi_statement, true);
    assert.equal(update!.decision.action, 'allow');
    assert.equal(update!.decision.row_cap?.limit, 500);
    assert.equal(del!.facts.unbounded_write, true);
    assert.ok(del!.matches.some((m) => m.id === 'guard.unbounded-write'));
    assert.deepEqual(doc.decision, { ...doc.decision, action: 'deny', rule: 'guard.unbounded-write', sqlstate: '42501', row_cap: null });
  });

  it('explain: an unknown connection or user is one line naming the flag and the valid names', async () => {
    oneLineError(await cli(['policy', 'explain', '-c', EXAMPLE, '--connection', 'staging', '--user', 'alice', '--sql', 'select 1']), ['--connection', '"staging"', 'dev, prod']);
    oneLineError(await cli(['policy', 'explain', '-c', EXAMPLE, '--connection', 'prod', '--user', 'zed', '--sql', 'select 1']), ['--user', '"zed"', 'alice, bob, carol']);
  });

  it('test: the shipped fixtures pass', async () => {
    const r = await cli(['policy', 'test', FIXTURES]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.ok(!r.stdout.includes('FAIL'), r.stdout);
    const m = /(\d+) case\(s\): (\d+) passed, 0 failed/.exec(r.stdout);
    assert.ok(m && Number(m[1]) >= 15 && m[1] === m[2], r.stdout);
  });

  it('test: a wrong expectation fails with exit 1 and shows expected vs actual', async () => {
    const file = join(dir, 'wrong.yaml');
    writeFileSync(
      file,
      `config: ${JSON.stringify(EXAMPLE)}
cases:
  - name: drop is refused
    user: alice
    connection: prod
    sql: DROP TABLE orders
    expect: deny
  - name: wrongly expected to be allowed
    user: alice
    connection: prod
    sql: DELETE FROM orders
    expect: { action: allow, rule: prod.allow-dba-writes, row_cap: 500 }
`,
    );
    const r = await cli(['policy', 'test', file]);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^ok +drop is refused$/m);
    assert.match(r.stdout, /^FAIL wrongly expected to be allowed$/m);
    assert.match(r.stdout, /action: +expected allow, got deny/);
    assert.match(r.stdout, /rule: +expected prod\.allow-dba-writes, got guard\.unbounded-write/);
    assert.match(r.stdout, /row cap: +expected 500, got \(none\)/);
    assert.match(r.stdout, /2 case\(s\): 1 passed, 1 failed/);
  });

  it('test: a schema error names the file, the case and the key', async () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, `config: ${JSON.stringify(EXAMPLE)}\ncases:\n  - { name: fine, user: alice, connection: dev, sql: select 1, expect: allow }\n  - { name: typo, user: alice, connection: dev, sql: select 1, expct: allow }\n`);
    oneLineError(await cli(['policy', 'test', file]), [file, 'cases[1] ("typo")', 'unknown key "expct"']);
    const bad = join(dir, 'action.yaml');
    writeFileSync(bad, `cases:\n  - { name: a, user: alice, connection: dev, sql: select 1, expect: denied }\n`);
    oneLineError(await cli(['policy', 'test', bad, '--config', EXAMPLE]), [bad, 'cases[0] ("a").expect.action']);
    const who = join(dir, 'who.yaml');
    writeFileSync(who, `config: ${JSON.stringify(EXAMPLE)}\ncases:\n  - { name: a, user: zed, connection: dev, sql: select 1, expect: allow }\n`);
    oneLineError(await cli(['policy', 'test', who]), [who, 'cases[0] ("a").user', 'unknown user "zed"']);
  });

  it('check: an invalid CEL condition exits 1 naming the policy file and the rule id', async () => {
    const sub = mkdtempSync(join(dir, 'cel-'));
    const file = config(sub, 'rules:\n  - id: no-bulk-export\n    when: statement.kind == \n    action: deny\n');
    oneLineError(await cli(['check', '--config', file]), [join(sub, 'policy.yaml'), 'rule "no-bulk-export"', 'invalid condition']);
  });

  it('check: an unknown key in a policy rule names the key and the rule', async () => {
    const sub = mkdtempSync(join(dir, 'key-'));
    const file = config(sub, 'rules:\n  - id: no-drops\n    when: statement.kind == "DROP"\n    action: deny\n    severity: high\n');
    oneLineError(await cli(['check', '--config', file]), [join(sub, 'policy.yaml'), 'unknown key "severity"', 'rule "no-drops"']);
  });
});
