/**
 * Tokens issued with `gatehouse token create`, end to end: the real CLI writes the embedded
 * store, the real proxy accepts the token from psql and pg; only a hash is stored; list shows
 * last use; revoked, expired, wrong-connection and wrong-secret tokens are refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Identity } from '../src/identity/identity.js';
import { createTestDatabase, run } from './helpers/pg.js';
import { BIN, startProxy, type TestProxy } from './helpers/proxy.js';

describe('issued tokens', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  const stateDir = mkdtempSync(join(tmpdir(), 'gh-state-'));
  const seen: Identity[] = [];

  before(async () => {
    db = await createTestDatabase();
    proxy = await startProxy({
      database: db.name,
      extraYaml: `auth: { tokens: true, cleartext_from_loopback: true }\nstate: { dir: ${stateDir} }\n`,
      plugins: [{ name: 'probe', sessionStart: (s) => void seen.push(s.identity) }],
    });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  const cli = async (...args: string[]) => run(process.execPath, [BIN, ...args, '--config', proxy.loaded.file]);
  const create = async (...args: string[]): Promise<{ id: string; token: string; out: string }> => {
    const r = await cli('token', 'create', ...args);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const token = lines.at(-1)!;
    return { id: /^token ([0-9a-f]{12}) /.exec(lines[0]!)![1]!, token, out: r.stdout };
  };
  const connect = async (user: string, password: string, database = 'dev'): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user, password, database });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const refusal = async (user: string, password: string, database = 'dev'): Promise<Error & { code?: string; detail?: string }> => {
    try {
      (await connect(user, password, database)).end();
    } catch (err) {
      return err as Error & { code?: string; detail?: string };
    }
    throw new Error('not refused');
  };

  it('creates an agent token acting for alice; psql and pg connect with it; the identity carries the delegation', async () => {
    const { token, out } = await create('--kind', 'agent', '--name', 'report-bot', '--on-behalf-of', 'alice', '--model', 'claude-x', '--ttl', '8h');
    assert.match(out, /token [0-9a-f]{12} for agent "report-bot" on behalf of alice, expires /);
    assert.match(token, /^ghtk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const r = await run('psql', ['-XAtc', 'select 9'], { env: { ...proxy.env('report-bot'), PGPASSWORD: token } });
    assert.equal(r.stdout.trim(), '9', r.stderr);
    const c = await connect('report-bot', token);
    await c.end();
    const id = seen.at(-1)!;
    assert.equal(id.kind, 'agent');
    assert.equal(id.onBehalfOf?.name, 'alice');
    assert.equal(id.attributes.model, 'claude-x');
    assert.equal(id.authMethod, 'token');
    assert.match(id.credentialId, /^token:[0-9a-f]{12}$/);
  });

  it('stores only a hash of the secret; list shows the last use and never the token', async () => {
    const { id, token } = await create('--kind', 'service', '--name', 'etl');
    (await connect('etl', token)).end();
    const secret = token.split('_').slice(2).join('_');
    // Searched from another process: opening the database files in this one (which holds the
    // proxy's SQLite connection) would drop SQLite's POSIX locks.
    assert.ok(readdirSync(stateDir).some((f) => f.startsWith('gatehouse.db')));
    // grep exits 2 when a file it listed vanished meanwhile (SQLite's transient files): look again.
    // -e: a secret may begin with '-' (base64url), which grep would take for an option.
    let grep = await run('grep', ['-rqF', '-e', secret, stateDir]);
    for (let i = 0; i < 5 && grep.code === 2; i++) grep = await run('grep', ['-rqF', '-e', secret, stateDir]);
    assert.equal(grep.code, 1, `no file of the store holds the secret ${grep.stderr}`);
    const r = await cli('token', 'list');
    const line = r.stdout.split('\n').find((l) => l.startsWith(id))!;
    assert.ok(line, r.stdout);
    assert.doesNotMatch(r.stdout, /ghtk_/);
    assert.match(line, /\tservice\tetl\t.*\t\d{4}-\d\d-\d\dT[\d:]+Z\tactive$/, 'last use recorded');
  });

  it('refuses revoked, expired, wrong-connection, wrong-secret and wrong-user tokens with 28P01', async () => {
    const revoked = await create('--kind', 'agent', '--name', 'old-bot');
    assert.equal((await cli('token', 'revoke', revoked.id)).code, 0);
    let e = await refusal('old-bot', revoked.token);
    assert.equal(e.code, '28P01');
    assert.match(e.detail ?? '', /was revoked/);

    const short = await create('--kind', 'agent', '--name', 'brief-bot', '--ttl', '1s');
    await new Promise((r) => setTimeout(r, 1200));
    e = await refusal('brief-bot', short.token);
    assert.match(e.detail ?? '', /expired/);

    const devOnly = await create('--kind', 'agent', '--name', 'dev-bot', '--connections', 'dev');
    (await connect('dev-bot', devOnly.token, 'dev')).end();
    e = await refusal('dev-bot', devOnly.token, 'prod');
    assert.match(e.detail ?? '', /not valid for connection "prod"/);

    e = await refusal('dev-bot', devOnly.token.slice(0, -4) + 'AAAA');
    assert.equal(e.code, '28P01');
    e = await refusal('someone-else', devOnly.token);
    assert.match(e.detail ?? '', /the token is for "dev-bot"/);

    const bad = await cli('token', 'revoke', 'ffffffffffff');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /token "ffffffffffff" does not exist/);
  });
});
