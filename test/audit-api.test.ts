/**
 * The audit API over a real proxy's store: statements go through the real proxy to the real
 * PostgreSQL, then /api/audit answers from the same store. Authentication (Basic against the SCRAM
 * verifier, Bearer with a Gatehouse token), authorization by group, filters, parameter
 * validation, checkpoints, and an export that verifies offline.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pino from 'pino';
import { ExportFile } from '../src/audit/export.js';
import type { AuditEvent } from '../src/audit/event.js';
import { ensureSigningKey } from '../src/audit/setup.js';
import { verifyAudit } from '../src/audit/verify.js';
import { createAuditApi } from '../src/http/audit-api.js';
import { createHttpServer } from '../src/http/server.js';
import { CredentialAuthenticator } from '../src/identity/credentials.js';
import { JwtAuthenticator } from '../src/identity/jwt.js';
import { LocalUsers } from '../src/identity/local-users.js';
import { openStore, storeSpec } from '../src/store/open.js';
import type { Store } from '../src/store/sqlite-store.js';
import { createTestDatabase, direct } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('audit API', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  let store: Store;
  let http: Server;
  let base: string;
  let botToken: string;
  let dbaToken: string;
  let mint: (claims: Record<string, unknown>, signer?: 'trusted' | 'stranger') => Promise<string>;
  const tmp = mkdtempSync(join(tmpdir(), 'gh-api-'));

  before(async () => {
    db = await createTestDatabase();
    await direct(db.name, 'CREATE TABLE items (id int primary key, note text); CREATE TABLE other (x int)');
    proxy = await startProxy({ database: db.name, extraYaml: 'api: { auditor_groups: [analysts] }\naudit: { flush_delay: 20ms }\n' });
    store = await openStore(storeSpec(proxy.loaded));
    const { key } = ensureSigningKey(proxy.loaded);
    const config = proxy.loaded.config;
    botToken = (await store.tokens.create({ kind: 'agent', name: 'audit-bot', groups: ['analysts'], ttlMs: 3_600_000 })).token;
    dbaToken = (await store.tokens.create({ kind: 'service', name: 'etl', groups: ['dba'], ttlMs: 3_600_000 })).token;
    // An identity provider whose JWKS is a file.
    const trusted = await generateKeyPair('ES256', { extractable: true });
    const stranger = await generateKeyPair('ES256', { extractable: true });
    writeFileSync(join(tmp, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(trusted.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    mint = (claims, signer = 'trusted') =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuedAt()
        .setIssuer('https://idp.test')
        .setAudience('gatehouse')
        .setExpirationTime('10m')
        .sign(signer === 'trusted' ? trusted.privateKey : stranger.privateKey);
    const jwt = new JwtAuthenticator(
      [
        {
          name: 'idp',
          issuer: 'https://idp.test',
          audience: 'gatehouse',
          jwks_file: join(tmp, 'jwks.json'),
          jwks_cache: 600_000,
          algorithms: ['ES256'],
          clock_tolerance: 30_000,
          kind: 'human',
          claims: { name: 'preferred_username', groups: 'groups', kind: 'gatehouse_kind', model: 'model' },
        },
      ],
      (p) => p,
    );
    http = createHttpServer({
      ready: () => true,
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      api: createAuditApi({
        store: store.audit,
        users: new LocalUsers(config.users, proxy.loaded.file),
        credentials: new CredentialAuthenticator(jwt, store.tokens),
        auditorGroups: config.api.auditor_groups,
        adminGroups: config.api.admin_groups,
        logger: pino({ level: 'silent' }),
        publicKeys: { [key.keyId]: key.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
      }),
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

    const alice = await proxy.client({ user: 'alice', database: 'prod' });
    await alice.query("INSERT INTO items VALUES (1, 'a')");
    await alice.query('SELECT * FROM items');
    await alice.query('SELECT * FROM other');
    await alice.end();
    const carol = await proxy.client({ user: 'carol', database: 'dev' });
    await carol.query('SELECT 1');
    await carol.end();
    await waitFor(async () => (await store.audit.search({ identity: 'carol', type: 'session.end' }, 1, 'desc')).length === 1, 10_000, 'events committed');
  });
  after(async () => {
    await new Promise<void>((r) => (http ? http.close(() => r()) : r()));
    await store?.close();
    await proxy?.close();
    await db?.drop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const get = (path: string, auth?: string, method = 'GET'): Promise<Response> => fetch(`${base}${path}`, { method, headers: auth === undefined ? {} : { authorization: auth } });
  const carol = basic('carol', 'carol-pw');
  const ndjson = async (res: Response): Promise<AuditEvent[]> =>
    (await res.text())
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as AuditEvent);

  it('answers 401 with a Basic challenge without credentials or with wrong ones', async () => {
    for (const auth of [undefined, basic('carol', 'wrong'), basic('nobody', 'carol-pw'), 'Basic !!!', 'Digest abc', `Bearer ghtk_000000000000_${'A'.repeat(43)}`, 'Bearer not-a-token']) {
      const res = await get('/api/audit/events', auth);
      assert.equal(res.status, 401, `auth ${auth}`);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="gatehouse"');
      assert.match(((await res.json()) as { error: string }).error, /authenticat|credentials|scheme/);
    }
  });

  it('answers 403 to an authenticated identity outside the auditor and admin groups', async () => {
    for (const auth of [basic('alice', 'alice-pw'), `Bearer ${dbaToken}`]) {
      const res = await get('/api/audit/events', auth);
      assert.equal(res.status, 403);
      assert.match(((await res.json()) as { error: string }).error, /may not read the audit trail/);
    }
  });

  it('serves the events to an auditor as NDJSON of canonical bodies, newest first', async () => {
    const res = await get('/api/audit/events', carol);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const text = await res.text();
    const lines = text.split('\n').filter(Boolean);
    const events = lines.map((l) => JSON.parse(l) as AuditEvent);
    assert.ok(events.some((e) => e.type === 'statement' && e.identity?.name === 'alice' && e.statement?.kind === 'INSERT'), 'alice\'s INSERT is there');
    assert.ok(events.some((e) => e.type === 'node.start'));
    for (let i = 1; i < events.length; i++) assert.ok(events[i - 1]!.ts >= events[i]!.ts, 'newest first');
    // The bodies are the stored canonical bytes.
    const stored = await store.audit.search({}, 1000, 'desc');
    assert.deepEqual(lines, stored.map((e) => e.body));
    // Repeated requests are served from the password cache and still answer correctly.
    assert.equal((await get('/api/audit/events?limit=1', carol)).status, 200);
    assert.equal((await get('/api/audit/events?limit=1', basic('carol', 'carol-pw2'))).status, 401);
  });

  it('filters by identity, type, table, kind, connection, environment, decision, session, node and time, with limit and order', async () => {
    const q = async (query: string): Promise<AuditEvent[]> => {
      const res = await get(`/api/audit/events?${query}`, carol);
      assert.equal(res.status, 200, `${query}: ${res.status}`);
      return ndjson(res);
    };
    const statements = await q('identity=alice&type=statement');
    assert.ok(statements.length >= 3);
    assert.ok(statements.every((e) => e.identity?.name === 'alice' && e.type === 'statement'));
    const items = await q('identity=alice&type=statement&table=items');
    assert.ok(items.length >= 2 && items.every((e) => e.statement!.tables.includes('items')));
    assert.ok(!items.some((e) => e.statement!.tables.includes('other')));
    const inserts = await q('kind=insert&type=statement');
    assert.equal(inserts.length, 1);
    assert.match(inserts[0]!.statement!.text, /^insert into items values/i);
    assert.ok((await q('connection=prod&type=statement')).every((e) => e.connection?.name === 'prod'));
    const dev = await q('environment=development&type=statement');
    assert.ok(dev.length >= 1 && dev.every((e) => e.identity?.name === 'carol'));
    const action = inserts[0]!.decision!.action;
    const allowed = await q(`decision=${action}&identity=alice`);
    assert.ok(allowed.length >= 3 && allowed.every((e) => e.decision?.action === action));
    const session = statements[0]!.session!;
    assert.ok((await q(`session=${session}`)).every((e) => e.session === session));
    const node = statements[0]!.node;
    assert.ok((await q(`node=${encodeURIComponent(node)}&limit=5`)).every((e) => e.node === node));
    const asc = await q('order=asc&limit=2');
    assert.equal(asc.length, 2);
    assert.equal(asc[0]!.type, 'node.start', 'oldest first');
    assert.ok(asc[0]!.ts <= asc[1]!.ts);
    const insert = inserts[0]!;
    assert.deepEqual((await q(`since=${insert.ts}&until=${insert.ts + 1}&type=statement`)).map((e) => e.seq), [insert.seq]);
    assert.deepEqual(await q(`since=${new Date(Date.now() + 3_600_000).toISOString()}`), []);
    assert.deepEqual(await q('identity=nobody'), []);
  });

  it('returns a JSON array of events with format=json', async () => {
    const res = await get('/api/audit/events?format=json&type=statement&identity=alice&order=asc', carol);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const events = (await res.json()) as AuditEvent[];
    assert.ok(Array.isArray(events) && events.length >= 3);
    assert.equal(events[0]!.statement!.kind, 'INSERT');
  });

  it('rejects bad parameters with 400 naming the parameter', async () => {
    const cases: Array<[string, RegExp]> = [
      ['limit=0', /^limit:/],
      ['limit=abc', /^limit:/],
      ['limit=100001', /^limit:/],
      ['order=up', /^order:/],
      ['format=xml', /^format:/],
      ['type=nope', /^type:.*statement/],
      ['since=yesterday', /^since:/],
      ['until=2024-13-45T00:00:00Z', /^until:/],
      ['since=2000&until=1000', /^until:/],
      ['identity=', /^identity:/],
      ['identity=a&identity=b', /^identity:.*more than once/],
      ['colour=red', /^colour: unknown parameter/],
    ];
    for (const [query, message] of cases) {
      const res = await get(`/api/audit/events?${query}`, carol);
      assert.equal(res.status, 400, query);
      assert.match(((await res.json()) as { error: string }).error, message, query);
    }
    assert.equal((await get('/api/audit/checkpoints?nodes=x', carol)).status, 400);
  });

  it('accepts a Gatehouse token as Bearer or as the Basic password of its name', async () => {
    const res = await get('/api/audit/events?limit=3', `Bearer ${botToken}`);
    assert.equal(res.status, 200);
    assert.equal((await ndjson(res)).length, 3);
    assert.equal((await get('/api/audit/events?limit=1', basic('audit-bot', botToken))).status, 200);
    assert.equal((await get('/api/audit/events?limit=1', basic('someone-else', botToken))).status, 401, 'the name must be the token\'s');
  });

  it('accepts a JWT from a configured provider as Bearer (user from `sub`), with its groups deciding', async () => {
    const auditor = await mint({ sub: 'dana', preferred_username: 'dana', groups: ['analysts'] });
    assert.equal((await get('/api/audit/events?limit=1', `Bearer ${auditor}`)).status, 200);
    assert.equal((await get('/api/audit/events?limit=1', basic('dana', auditor))).status, 200);
    assert.equal((await get('/api/audit/events?limit=1', `Bearer ${await mint({ sub: 'erin', groups: ['dba'] })}`)).status, 403);
    assert.equal((await get('/api/audit/events?limit=1', `Bearer ${await mint({ sub: 'dana', groups: ['analysts'] }, 'stranger')}`)).status, 401);
    assert.equal((await get('/api/audit/events?limit=1', `Bearer ${await mint({ groups: ['analysts'] })}`)).status, 401, 'no sub: no user name');
  });

  it('lists the signed checkpoints, per writer or all', async () => {
    const node = (await store.audit.nodes())[0]!;
    // The writer signs its head at least every checkpoint.interval; ask it now.
    proxy.node.audit!.checkpoint();
    await waitFor(async () => (await store.audit.checkpoints(node)).length > 0, 10_000, 'a checkpoint');
    const res = await get(`/api/audit/checkpoints?node=${encodeURIComponent(node)}`, carol);
    assert.equal(res.status, 200);
    const cps = (await res.json()) as Array<{ node: string; seq: number; signature: string; key_id: string }>;
    assert.ok(cps.length > 0 && cps.every((c) => c.node === node && c.signature.length > 0));
    assert.deepEqual(cps, await store.audit.checkpoints(node));
    const all = (await (await get('/api/audit/checkpoints', carol)).json()) as unknown[];
    assert.ok(all.length >= cps.length);
  });

  it('streams an export that verifies offline against the public key', async () => {
    proxy.node.audit!.checkpoint();
    const head = (await store.audit.head((await store.audit.nodes())[0]!))!.seq;
    await waitFor(async () => (await store.audit.checkpoints((await store.audit.nodes())[0]!)).some((c) => c.seq >= head), 10_000, 'head signed');
    const res = await get('/api/audit/export', carol);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename="gatehouse-audit-\d{8}T\d{6}Z\.jsonl"/);
    const file = join(tmp, 'export.jsonl');
    writeFileSync(file, await res.text());
    const exported = await ExportFile.open(file);
    try {
      assert.equal(exported.malformedCount, 0);
      const result = await verifyAudit(exported, exported.headerKeys());
      assert.deepEqual(result.problems, []);
      assert.ok(result.writers[0]!.events >= head);
    } finally {
      exported.close();
    }
    assert.equal((await get('/api/audit/export', basic('alice', 'alice-pw'))).status, 403);
  });

  it('leaves other paths to the built-in routes and only allows GET and HEAD', async () => {
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/api/other')).status, 404);
    assert.equal((await get('/api/audit/nope', carol)).status, 404);
    assert.equal((await get('/api/audit/nope')).status, 401, 'authentication comes first');
    assert.equal((await get('/api/audit/events', carol, 'POST')).status, 405);
    const head = await get('/api/audit/events?limit=1', carol, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });
});
