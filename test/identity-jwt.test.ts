/**
 * OIDC/JWT authentication through the real proxy with pg and psql: tokens verified against a
 * JWKS served by a local HTTP server (and one from a file), delegation (RFC 8693 `act`) and CI
 * workload identities visible to policy, every way a token is rejected, key rotation, rate
 * limiting, and cleartext refused without TLS unless allowed for loopback.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

type KeyLike = Parameters<SignJWT['sign']>[0];
import pg from 'pg';
import { createTestDatabase, run } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';

const IDP = 'https://idp.test';
const CI = 'https://ci.test';
const AUD = 'gatehouse';

interface Key {
  kid: string;
  priv: KeyLike;
  jwk: JWK;
}

async function key(kid: string, alg: 'RS256' | 'ES256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, priv: privateKey as KeyLike, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

async function mint(k: Key, claims: Record<string, unknown>, o: { iss?: string; aud?: string; exp?: string | number; nbf?: string | number; alg?: string } = {}): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: o.alg ?? (k.jwk.alg as string), kid: k.kid }).setIssuedAt().setIssuer(o.iss ?? IDP).setAudience(o.aud ?? AUD).setExpirationTime(o.exp ?? '10m');
  if (o.nbf !== undefined) jwt = jwt.setNotBefore(o.nbf);
  return jwt.sign(k.priv);
}

describe('JWT authentication', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  let strict: TestProxy;
  let jwksServer: Server;
  const served: JWK[] = [];
  let k1: Key;
  let k2: Key;
  let kci: Key;

  before(async () => {
    db = await createTestDatabase();
    [k1, k2, kci] = await Promise.all([key('k1', 'RS256'), key('k2', 'ES256'), key('ci1', 'ES256')]);
    served.push(k1.jwk);
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: served }));
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
    const port = (jwksServer.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'gh-jwt-'));
    writeFileSync(join(dir, 'ci-jwks.json'), JSON.stringify({ keys: [kci.jwk] }));
    writeFileSync(
      join(dir, 'policy.yaml'),
      `rules:
  - id: agents.no-catalog
    when: 'identity.kind == "agent" && statement.tables.exists(t, t == "pg_class")'
    action: deny
    message: agents may not read the catalog
  - id: ci.no-version
    when: 'identity.kind == "service" && identity.on_behalf_of.name == "octocat" && statement.functions.exists(f, f == "version")'
    action: deny
    message: CI jobs acting for octocat may not call version()
`,
    );
    const auth = (loopback: boolean) => `auth:
  cleartext_from_loopback: ${loopback}
  rate_limit: { max_failures: 3, max_failures_per_address: 1000, window: 60s, lockout: 60s }
  jwt:
    - { name: idp, issuer: "${IDP}", audience: ${AUD}, jwks_url: "http://127.0.0.1:${port}/jwks" }
    - { name: ci, issuer: "${CI}", audience: ${AUD}, jwks_file: ${join(dir, 'ci-jwks.json')}, kind: service, workload: {} }
policy: { files: [${join(dir, 'policy.yaml')}] }
`;
    proxy = await startProxy({ database: db.name, extraYaml: auth(true) });
    strict = await startProxy({ database: db.name, extraYaml: auth(false) });
  });
  after(async () => {
    await proxy?.close();
    await strict?.close();
    jwksServer?.close();
    await db?.drop();
  });

  const connect = async (user: string, password: string, p = proxy): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port: p.port, user, password, database: 'dev' });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const refused = async (user: string, password: string, p = proxy): Promise<Error & { code?: string; detail?: string }> => {
    try {
      const c = await connect(user, password, p);
      await c.end();
    } catch (err) {
      return err as Error & { code?: string };
    }
    throw new Error(`connection as ${user} was not refused`);
  };

  it('a human token works with pg and psql; the startup user must match it', async () => {
    const token = await mint(k1, { sub: 'u-100', preferred_username: 'dave', groups: ['analysts'] });
    const c = await connect('dave', token);
    assert.equal((await c.query('select 1 as n')).rows[0].n, 1);
    await c.end();
    const r = await run('psql', ['-XAtc', 'select 2'], { env: { ...proxy.env('dave'), PGPASSWORD: token } });
    assert.equal(r.stdout.trim(), '2', r.stderr);
    const e = await refused('mallory', token);
    assert.equal(e.code, '28P01');
    assert.match(e.message, /token authentication failed for user "mallory"/);
  });

  it('delegation (act claim): an agent acting for alice is seen by policy as an agent', async () => {
    const agent = await mint(k1, { sub: 'alice', act: { sub: 'claude-agent', model: 'claude-x' } });
    const c = await connect('claude-agent', agent);
    const err = await c.query('select relname from pg_class limit 1').catch((e: Error) => e);
    assert.match((err as Error).message, /agents may not read the catalog \(rule agents\.no-catalog\)/);
    assert.equal((await c.query('select 3 as n')).rows[0].n, 3);
    await c.end();
    const human = await connect('alice-h', await mint(k1, { sub: 'alice-h' }));
    assert.ok((await human.query('select relname from pg_class limit 1')).rowCount === 1, 'the rule only hits agents');
    await human.end();
  });

  it('a CI workload token is a service acting for its actor', async () => {
    const token = await mint(kci, { sub: 'repo:org/app:ref:refs/heads/main', repository: 'org/app', workflow: 'deploy', ref: 'refs/heads/main', actor: 'octocat' }, { iss: CI });
    const c = await connect('org/app:deploy', token);
    const err = await c.query('select version()').catch((e: Error) => e);
    assert.match((err as Error).message, /rule ci\.no-version/);
    assert.equal((await c.query('select 4 as n')).rows[0].n, 4);
    await c.end();
  });

  it('refuses wrong audience, unknown issuer, expired, not yet valid, tampered, unknown key, alg none, garbage — with 28P01 naming no secret', async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = await mint(k1, { sub: 'zed' });
    const parts = good.split('.');
    const tampered = `${parts[0]}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()), sub: 'root' })).toString('base64url')}.${parts[2]}`;
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${parts[1]}.`;
    const cases: Array<[string, string]> = [
      ['audience', await mint(k1, { sub: 'zed' }, { aud: 'other' })],
      ['issuer', await mint(k1, { sub: 'zed' }, { iss: 'https://evil.test' })],
      ['expired', await mint(k1, { sub: 'zed' }, { exp: now - 3600 })],
      ['not before', await mint(k1, { sub: 'zed' }, { nbf: now + 3600 })],
      ['tampered', tampered],
      ['unknown key', await mint(k2, { sub: 'zed' })],
      ['alg none', none],
      ['garbage', 'not-a-jwt'],
    ];
    for (const [what, token] of cases) {
      const e = await refused(`zed${what.replace(/\W/g, '')}`, token);
      assert.equal(e.code, '28P01', what);
      assert.match(e.message, /token authentication failed/, what);
      assert.ok(!e.message.includes(token) && !(e.detail ?? '').includes(token), `${what}: the token is not echoed`);
    }
  });

  it('fetches the JWKS again when a token names an unknown key id (rotation)', async () => {
    const token = await mint(k2, { sub: 'rot' });
    await new Promise((r) => setTimeout(r, 1100)); // past the refetch cooldown
    served.push(k2.jwk);
    const c = await connect('rot', token);
    assert.equal((await c.query('select 5 as n')).rows[0].n, 5);
    await c.end();
  });

  it('rate-limits repeated failures per user name without slowing other users', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await refused('eve', 'wrong')).code, '28P01');
    const valid = await mint(k1, { sub: 'eve' });
    const e = await refused('eve', valid);
    assert.match(e.message, /too many failed authentication attempts/);
    const other = await connect('frank', await mint(k1, { sub: 'frank' }));
    await other.end();
    // Local SCRAM users are unaffected too.
    const alice = await proxy.client();
    assert.equal((await alice.query('select 6 as n')).rows[0].n, 6);
  });

  it('without TLS, tokens are refused unless auth.cleartext_from_loopback allows loopback clients', async () => {
    const e = await refused('dave', await mint(k1, { sub: 'u-100', preferred_username: 'dave' }), strict);
    assert.equal(e.code, '28000');
    assert.match(e.message, /requires TLS \(or auth\.cleartext_from_loopback for loopback clients\)/);
  });
});
