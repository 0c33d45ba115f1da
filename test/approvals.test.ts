/**
 * Approvals end to end, through the real proxy to the real PostgreSQL, with node-postgres and
 * psql: wait mode approved (result returned), denied, expired, cancelled by the client (psql's
 * Ctrl-C); retry mode; separation of duties (the requester, and the human behind an agent);
 * a quorum of two; auto-approval by a rule; both notifications reaching webhook receivers; the
 * CLI approving through the HTTP API; and a request outliving a restart of the Gatehouse process.
 * Each test asserts what reached the database (the table was altered or not) directly.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { ApprovalRequest } from '../src/approvals/request.js';
import type { AuditEvent } from '../src/audit/event.js';
import { createTestDatabase, direct, run } from './helpers/pg.js';
import { BIN, startProxy, waitFor, type spawnCli, type TestProxy } from './helpers/proxy.js';

type Db = Awaited<ReturnType<typeof createTestDatabase>>;

const POLICY = `
defaults: { action: allow }
rules:
  - id: guard.ddl-approval
    enabled: false
  - id: t.wait
    when: 'statement.category == "ddl" && statement.tables.exists(t, t.contains("wait_"))'
    action: require_approval
    message: DDL on wait tables needs a dba
    approval: { mode: wait, groups: [dba], expires: 30s }
  - id: t.short
    when: 'statement.category == "ddl" && statement.tables.exists(t, t.contains("short_"))'
    action: require_approval
    approval: { mode: wait, groups: [dba], expires: 1500ms }
  - id: t.retry
    when: 'statement.category == "ddl" && statement.tables.exists(t, t.contains("retry_"))'
    action: require_approval
    message: DDL on retry tables needs a dba
    approval: { mode: retry, groups: [dba], run_window: 1m }
  - id: t.quorum
    when: 'statement.category == "ddl" && statement.tables.exists(t, t.contains("quorum_"))'
    action: require_approval
    approval: { mode: wait, groups: [dba], count: 2 }
  - id: t.auto
    when: 'statement.category == "ddl" && statement.tables.exists(t, t.contains("auto_"))'
    action: require_approval
    approval: { mode: wait, groups: [dba] }
  - id: t.ci-window
    description: carol's changes to auto_ tables are approved by policy (stands in for a CI identity in a change window)
    when: 'identity.name == "carol" && statement.tables.exists(t, t.contains("auto_"))'
    action: auto_approve
`;

const TABLES = ['wait_a', 'wait_b', 'wait_c', 'wait_d', 'wait_e', 'wait_f', 'short_a', 'retry_a', 'quorum_a', 'auto_a', 'wait_ext', 'wait_agent'];

/** A webhook receiver: every JSON body it got. */
async function receiver(): Promise<{ server: Server; url: string; bodies: Array<Record<string, unknown>> }> {
  const bodies: Array<Record<string, unknown>> = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      bodies.push(JSON.parse(text) as Record<string, unknown>);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}/hook`, bodies };
}

describe('approvals through the proxy', () => {
  let db: Db;
  let dir: string;
  let proxy: TestProxy;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let slack: Awaited<ReturnType<typeof receiver>>;
  let agentToken: string;

  const columns = async (table: string): Promise<string[]> =>
    (await direct<{ c: string }>(db.name, `SELECT column_name AS c FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [table])).rows.map((r) => r.c);

  const api = async (method: string, path: string, user: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`http://127.0.0.1:${proxy.httpPort}${path}`, {
      method,
      headers: { authorization: `Basic ${Buffer.from(`${user}:${user}-pw`).toString('base64')}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };

  /** Run `sql` as `user` on prod, resolving with the first NOTICE's request id and the outcome. */
  const held = async (user: string, sql: string, client?: pg.Client): Promise<{ id: string; outcome: Promise<pg.QueryResult | Error>; client: pg.Client }> => {
    const c = client ?? (await proxy.client({ user, database: 'prod' }));
    let id = '';
    const noticed = new Promise<void>((resolve) =>
      c.once('notice', (n: { message?: string }) => {
        id = /apr_[a-z2-7]{20}/.exec(n.message ?? '')?.[0] ?? '';
        resolve();
      }),
    );
    const outcome = c.query(sql).then(
      (r) => r,
      (e: Error) => e,
    );
    await Promise.race([noticed, outcome.then((r) => assert.fail(`finished without a notice: ${r instanceof Error ? r.message : 'ok'}`))]);
    assert.match(id, /^apr_/);
    return { id, outcome, client: c };
  };

  const request = async (id: string): Promise<ApprovalRequest> => {
    const r = await proxy.node.store.approvals.get(id);
    assert.ok(r, `request ${id} exists`);
    return r;
  };

  before(async () => {
    db = await createTestDatabase('gh_appr');
    for (const t of TABLES) await direct(db.name, `CREATE TABLE ${t} (id int)`);
    dir = mkdtempSync(join(tmpdir(), 'gh-appr-'));
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    hook = await receiver();
    slack = await receiver();
    proxy = await startProxy({
      database: db.name,
      stateDir: join(dir, 'state'),
      logStatements: false,
      extraYaml: `policy: { files: [${join(dir, 'policy.yaml')}], watch: false }
auth: { tokens: true, cleartext_from_loopback: true }
audit: { flush_delay: 20ms }
approvals:
  poll_interval: 200ms
  notify:
    - { type: webhook, name: hook, url: ${hook.url} }
    - { type: slack, name: slack, url: ${slack.url} }
`,
    });
    agentToken = (await proxy.node.store.tokens.create({ kind: 'agent', name: 'alice-bot', onBehalfOf: 'alice', groups: [], ttlMs: 3_600_000 })).token;
  });

  after(async () => {
    await proxy?.close();
    await db?.drop();
    await new Promise((r) => hook?.server.close(r));
    await new Promise((r) => slack?.server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('wait mode: the statement is held with a NOTICE, approved through the CLI, then runs and returns its result', async () => {
    const { id, outcome, client } = await held('carol', 'ALTER TABLE wait_a ADD COLUMN note text');
    const pending = await request(id);
    assert.equal(pending.status, 'pending');
    assert.equal(pending.requester.name, 'carol');
    assert.equal(pending.statement, 'ALTER TABLE wait_a ADD COLUMN note text');
    assert.equal(pending.rule, 't.wait');
    assert.deepEqual(pending.groups, ['dba']);
    assert.deepEqual(await columns('wait_a'), ['id'], 'nothing reached the database while pending');
    const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${proxy.httpPort}/metrics`)).text();
    assert.match(await metrics(), /^gatehouse_approvals_waiting 1$/m);

    const cli = await run(process.execPath, [BIN, 'approvals', 'approve', id, '--reason', 'looks fine'], {
      env: { GATEHOUSE_URL: `http://127.0.0.1:${proxy.httpPort}`, GATEHOUSE_USER: 'bob', GATEHOUSE_PASSWORD: 'bob-pw' },
    });
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    const r = await outcome;
    assert.ok(!(r instanceof Error), `ran: ${(r as Error).message}`);
    assert.equal(r.command, 'ALTER');
    assert.deepEqual(await columns('wait_a'), ['id', 'note']);
    assert.equal((await request(id)).status, 'executed');
    // The session goes on.
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    const m = await metrics();
    assert.match(m, /^gatehouse_approvals_waiting 0$/m);
    for (const step of ['request', 'approve', 'execute']) assert.match(m, new RegExp(`^gatehouse_approval_events_total\\{step="${step}"\\} [1-9]`, 'm'));

    // Every step is an audit event.
    await waitFor(async () => {
      const types = (await proxy.node.store.audit.search({}, 1000, 'asc')).map((e) => JSON.parse(e.body) as AuditEvent).filter((e) => e.detail?.request === id).map((e) => e.type);
      return ['approval.request', 'approval.approve', 'approval.execute'].every((t) => types.includes(t as AuditEvent['type']));
    }, 5000, 'approval audit events');
  });

  it('extended protocol (a named prepared statement) waits and runs the same way', async () => {
    const c = await proxy.client({ user: 'carol', database: 'prod' });
    let id = '';
    c.once('notice', (n: { message?: string }) => (id = /apr_[a-z2-7]{20}/.exec(n.message ?? '')?.[0] ?? ''));
    const outcome = c.query({ name: 'ddl1', text: 'ALTER TABLE wait_ext ADD COLUMN x int' });
    await waitFor(() => id !== '', 5000, 'notice');
    assert.equal((await api('POST', `/api/approvals/${id}/approve`, 'alice')).status, 200);
    await outcome;
    assert.deepEqual(await columns('wait_ext'), ['id', 'x']);
  });

  it('wait mode denied: 42501 naming who denied and why; nothing ran; the session stays usable', async () => {
    const { id, outcome, client } = await held('carol', 'ALTER TABLE wait_b ADD COLUMN note text');
    const d = await api('POST', `/api/approvals/${id}/deny`, 'bob', { reason: 'not during the freeze' });
    assert.equal(d.status, 200);
    assert.equal((d.json as ApprovalRequest).status, 'denied');
    const e = (await outcome) as Error & { code?: string };
    assert.ok(e instanceof Error);
    assert.equal(e.code, '42501');
    assert.match(e.message, /denied by bob: not during the freeze/);
    assert.deepEqual(await columns('wait_b'), ['id']);
    assert.equal((await client.query('SELECT 2 AS two')).rows[0].two, 2);
    // A decided request cannot be decided again.
    assert.equal((await api('POST', `/api/approvals/${id}/approve`, 'alice')).status, 409);
  });

  it('wait mode expired: an error after the expiry, the request is expired, the session stays usable', async () => {
    const t0 = Date.now();
    const { id, outcome, client } = await held('carol', 'ALTER TABLE short_a ADD COLUMN note text');
    const e = (await outcome) as Error & { code?: string };
    assert.ok(e instanceof Error);
    assert.equal(e.code, '42501');
    assert.match(e.message, /expired/);
    assert.ok(Date.now() - t0 >= 1400, 'not before the expiry');
    assert.equal((await request(id)).status, 'expired');
    assert.deepEqual(await columns('short_a'), ['id']);
    assert.equal((await client.query('SELECT 3 AS three')).rows[0].three, 3);
    assert.equal((await api('POST', `/api/approvals/${id}/approve`, 'bob')).status, 409);
  });

  it("psql's Ctrl-C (CancelRequest) cancels the request; nothing ran", async () => {
    const psql = spawnAny('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'ALTER TABLE wait_c ADD COLUMN note text'], proxy.env('carol', 'prod'));
    const id = (await waitFor(() => /apr_[a-z2-7]{20}/.exec(psql.output())?.[0], 10_000, 'the NOTICE in psql output'))!;
    psql.child.kill('SIGINT');
    const code = await psql.exited;
    assert.notEqual(code, 0);
    assert.match(psql.output(), /cancel/i);
    await waitFor(async () => (await request(id)).status === 'cancelled', 5000, 'cancelled');
    assert.deepEqual(await columns('wait_c'), ['id']);
  });

  it('retry mode: refused at once with the request id; after approval the same statement runs once', async () => {
    const c = await proxy.client({ user: 'carol', database: 'prod' });
    const sql = 'ALTER TABLE retry_a ADD COLUMN note text';
    const first = (await c.query(sql).catch((e: Error) => e)) as Error & { code?: string };
    assert.ok(first instanceof Error);
    assert.equal(first.code, '42501');
    const id = /apr_[a-z2-7]{20}/.exec(first.message)?.[0];
    assert.ok(id, first.message);
    // Sent again before approval: the same request, not a new one.
    const again = (await c.query(sql).catch((e: Error) => e)) as Error;
    assert.match(again.message, new RegExp(`${id} is pending`));
    assert.equal((await api('POST', `/api/approvals/${id}/approve`, 'alice')).status, 200);
    // A different text (or person) does not spend it.
    const other = (await c.query(`${sql}2`).catch((e: Error) => e)) as Error;
    assert.ok(other instanceof Error && !other.message.includes(id));
    await c.query(sql);
    assert.deepEqual(await columns('retry_a'), ['id', 'note']);
    assert.equal((await request(id)).status, 'executed');
    // Spent: the next one needs a new approval.
    const third = (await c.query('ALTER TABLE retry_a DROP COLUMN note').catch((e: Error) => e)) as Error & { code?: string };
    assert.equal(third.code, '42501');
  });

  it('separation of duties: nobody approves their own request, nor the human behind an agent', async () => {
    const own = await held('alice', 'ALTER TABLE wait_d ADD COLUMN note text');
    const self = await api('POST', `/api/approvals/${own.id}/approve`, 'alice');
    assert.equal(self.status, 403);
    assert.match((self.json as { error: string }).error, /separation of duties/);
    // carol (not a dba) may not decide either; she does not even see it.
    assert.equal((await api('POST', `/api/approvals/${own.id}/approve`, 'carol')).status, 404);
    assert.equal((await api('POST', `/api/approvals/${own.id}/approve`, 'bob')).status, 200);
    await own.outcome;

    const agent = await proxy.client({ user: 'alice-bot', password: agentToken, database: 'prod' });
    const viaAgent = await held('alice-bot', 'ALTER TABLE wait_agent ADD COLUMN note text', agent);
    assert.equal((await request(viaAgent.id)).requester.onBehalfOf, 'alice');
    const behind = await api('POST', `/api/approvals/${viaAgent.id}/approve`, 'alice');
    assert.equal(behind.status, 403);
    assert.match((behind.json as { error: string }).error, /on behalf of alice/);
    assert.deepEqual(await columns('wait_agent'), ['id']);
    assert.equal((await api('POST', `/api/approvals/${viaAgent.id}/approve`, 'bob')).status, 200);
    const r = await viaAgent.outcome;
    assert.ok(!(r instanceof Error));
    assert.deepEqual(await columns('wait_agent'), ['id', 'note']);
  });

  it('a quorum of two distinct approvers', async () => {
    const { id, outcome } = await held('carol', 'ALTER TABLE quorum_a ADD COLUMN note text');
    const one = await api('POST', `/api/approvals/${id}/approve`, 'alice');
    assert.equal((one.json as ApprovalRequest).status, 'pending');
    assert.equal((await api('POST', `/api/approvals/${id}/approve`, 'alice')).status, 409, 'the same person twice does not count');
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(await columns('quorum_a'), ['id'], 'one approval of two is not enough');
    const two = await api('POST', `/api/approvals/${id}/approve`, 'bob');
    assert.equal((two.json as ApprovalRequest).status, 'approved');
    assert.ok(!((await outcome) instanceof Error));
    assert.deepEqual(await columns('quorum_a'), ['id', 'note']);
  });

  it('auto-approval by a rule runs at once and is recorded as approved by policy', async () => {
    const c = await proxy.client({ user: 'carol', database: 'prod' });
    let noticed = false;
    c.on('notice', () => (noticed = true));
    await c.query('ALTER TABLE auto_a ADD COLUMN note text');
    assert.equal(noticed, false);
    assert.deepEqual(await columns('auto_a'), ['id', 'note']);
    const list = (await api('GET', '/api/approvals?status=executed', 'bob')).json as ApprovalRequest[];
    const r = list.find((x) => x.statement.includes('auto_a'));
    assert.ok(r);
    assert.deepEqual(r.votes.map((v) => [v.name, v.rule]), [['policy', 't.ci-window']]);
  });

  it('webhook and Slack receivers get the created and decided messages', async () => {
    const { id, outcome } = await held('carol', 'ALTER TABLE wait_e ADD COLUMN note text');
    await api('POST', `/api/approvals/${id}/approve`, 'bob');
    await outcome;
    await waitFor(() => hook.bodies.filter((b) => (b.request as ApprovalRequest).id === id).length >= 2, 5000, 'webhook messages');
    const events = hook.bodies.filter((b) => (b.request as ApprovalRequest).id === id).map((b) => b.event);
    assert.deepEqual(events.slice(0, 2), ['approval.created', 'approval.approved']);
    await waitFor(() => slack.bodies.filter((b) => JSON.stringify(b).includes(id)).length >= 2, 5000, 'slack messages');
    const text = JSON.stringify(slack.bodies.find((b) => JSON.stringify(b).includes(id)));
    for (const s of ['wait_e', 'carol', 't.wait']) assert.ok(text.includes(s), `slack message names ${s}`);
  });

  it('an approver authenticated with a Bearer token (a person\'s issued token) approves through the CLI', async () => {
    const { token } = await proxy.node.store.tokens.create({ kind: 'human', name: 'dave', groups: ['dba'], ttlMs: 3_600_000 });
    const { id, outcome } = await held('carol', 'ALTER TABLE wait_f ADD COLUMN note text');
    const cli = await run(process.execPath, [BIN, 'approvals', 'approve', id], { env: { GATEHOUSE_URL: `http://127.0.0.1:${proxy.httpPort}`, GATEHOUSE_TOKEN: token } });
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    assert.ok(!((await outcome) instanceof Error));
    assert.deepEqual((await request(id)).votes.map((v) => v.name), ['dave']);
  });

  it('lists and shows requests to approvers; refuses bad input with 400', async () => {
    const list = await api('GET', '/api/approvals?status=denied', 'alice');
    assert.equal(list.status, 200);
    assert.ok((list.json as ApprovalRequest[]).every((r) => r.status === 'denied'));
    assert.equal((await api('GET', '/api/approvals?status=nope', 'alice')).status, 400);
    assert.equal((await api('GET', '/api/approvals/apr_nonexistentnonexist', 'alice')).status, 404);
    const unauth = await fetch(`http://127.0.0.1:${proxy.httpPort}/api/approvals`);
    assert.equal(unauth.status, 401);
  });
});

describe('approvals across nodes sharing a PostgreSQL store', () => {
  it('an approval given through one node wakes the statement held on another at once (LISTEN/NOTIFY, not the poll)', async () => {
    const db = await createTestDatabase('gh_appr_nodes');
    const store = await createTestDatabase('gh_appr_store');
    const dir = mkdtempSync(join(tmpdir(), 'gh-appr-nodes-'));
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    await direct(db.name, 'CREATE TABLE wait_n (id int)');
    const yaml = (n: string): string =>
      `policy: { files: [${join(dir, 'policy.yaml')}], watch: false }\naudit: { enabled: false }\napprovals: { poll_interval: 60s }\nstate: { dir: ${join(dir, n)}, postgres_url: "postgres://postgres@127.0.0.1:5432/${store.name}" }\n`;
    const a = await startProxy({ database: db.name, logStatements: false, extraYaml: yaml('a') });
    const b = await startProxy({ database: db.name, logStatements: false, extraYaml: yaml('b') });
    try {
      const c = await a.client({ user: 'carol', database: 'prod' });
      let id = '';
      c.on('notice', (n: { message?: string }) => (id = /apr_[a-z2-7]{20}/.exec(n.message ?? '')?.[0] ?? id));
      const outcome = c.query('ALTER TABLE wait_n ADD COLUMN note text');
      await waitFor(() => id !== '', 5000, 'notice');
      // Node b sees the request node a made, and takes the approval.
      const res = await fetch(`http://127.0.0.1:${b.httpPort}/api/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('bob:bob-pw').toString('base64')}` } });
      assert.equal(res.status, 200);
      const t0 = Date.now();
      await outcome;
      // The poll runs once a minute here: only the store's notification can wake it this soon
      // (the bound leaves room for a loaded machine).
      assert.ok(Date.now() - t0 < 20_000, `woken ${Date.now() - t0} ms after the approval`);
      const cols = (await direct<{ c: string }>(db.name, "SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'wait_n' ORDER BY ordinal_position")).rows.map((r) => r.c);
      assert.deepEqual(cols, ['id', 'note']);
      assert.equal((await b.node.store.approvals.get(id))?.status, 'executed');
    } finally {
      await a.close();
      await b.close();
      await db.drop();
      await store.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('approvals across a restart of the Gatehouse process', () => {
  it('the waiting client gets an error instead of hanging; the request stays approvable and the statement runs when sent again', async () => {
    const db = await createTestDatabase('gh_appr_rs');
    const dir = mkdtempSync(join(tmpdir(), 'gh-appr-rs-'));
    const stateDir = join(dir, 'state');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    const opts = { database: db.name, stateDir, logStatements: false, extraYaml: `policy: { files: [${join(dir, 'policy.yaml')}], watch: false }\napprovals: { poll_interval: 200ms }\n` };
    await direct(db.name, 'CREATE TABLE wait_r (id int)');
    let proxy = await startProxy(opts);
    try {
      const c = await proxy.client({ user: 'carol', database: 'prod' });
      let id = '';
      c.on('notice', (n: { message?: string }) => (id = /apr_[a-z2-7]{20}/.exec(n.message ?? '')?.[0] ?? id));
      const outcome = c.query('ALTER TABLE wait_r ADD COLUMN note text').catch((e: Error) => e);
      await waitFor(() => id !== '', 5000, 'notice');
      // The node stops while the client waits (the client itself is not closed first).
      await proxy.node.shutdown();
      const e = (await outcome) as Error & { code?: string };
      assert.ok(e instanceof Error, 'the held statement ended with an error');
      assert.equal(e.code, '57P01');
      assert.match(e.message, /stays pending/);

      await proxy.close();
      proxy = await startProxy(opts);
      const res = await fetch(`http://127.0.0.1:${proxy.httpPort}/api/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('bob:bob-pw').toString('base64')}` } });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as ApprovalRequest).status, 'approved');
      const c2 = await proxy.client({ user: 'carol', database: 'prod' });
      await c2.query('ALTER TABLE wait_r ADD COLUMN note text');
      const cols = (await direct<{ c: string }>(db.name, "SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'wait_r' ORDER BY ordinal_position")).rows.map((r) => r.c);
      assert.deepEqual(cols, ['id', 'note']);
      assert.equal((await proxy.node.store.approvals.get(id))?.status, 'executed');
    } finally {
      await proxy.close();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Spawn any command, collecting its output. */
function spawnAny(cmd: string, args: string[], env: Record<string, string>): ReturnType<typeof spawnCli> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}
