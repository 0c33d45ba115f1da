/**
 * Mutual TLS through the real proxy: a verified client certificate authenticates without a
 * password (CN -> the local user of that name; SPIFFE URI SAN -> a service), untrusted or
 * mismatched certificates are refused, and `client_certs: required` refuses connections without one.
 * Keys and certificates are generated per run (test-only).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Identity } from '../src/identity/identity.js';
import { createTestDatabase, run } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { makeTestCertificate } from './helpers/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-mtls-'));
const f = (n: string) => join(dir, n);
const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });

function clientCert(name: string, subject: string, ca: 'ca' | 'rogue', san?: string): { cert: string; key: string } {
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', subject, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
  const ext = f(`${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n${san ? `subjectAltName=${san}\n` : ''}`);
  ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', f(`${name}.crt`));
  chmodSync(f(`${name}.key`), 0o600);
  return { cert: f(`${name}.crt`), key: f(`${name}.key`) };
}

describe('client certificates (mutual TLS)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let optional: TestProxy;
  let required: TestProxy;
  const seen: Identity[] = [];
  const server = makeTestCertificate();
  let carol: { cert: string; key: string };
  let spiffe: { cert: string; key: string };
  let rogue: { cert: string; key: string };

  before(async () => {
    for (const ca of ['ca', 'rogue']) {
      ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=Gatehouse test ${ca}`, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`));
    }
    carol = clientCert('carol', '/CN=carol', 'ca');
    spiffe = clientCert('billing', '/CN=billing-workload', 'ca', 'URI:spiffe://example.org/ns/prod/sa/billing');
    rogue = clientCert('rogue-carol', '/CN=carol', 'rogue');
    db = await createTestDatabase();
    const listener = (mode: string) => `    host: 127.0.0.1\n    port: 0\n    tls: { cert: ${server.cert}, key: ${server.key}, client_ca: ${f('ca.crt')}, client_certs: ${mode} }`;
    const probe = { name: 'probe', sessionStart: (s: { identity: Identity }) => void seen.push(s.identity) };
    optional = await startProxy({ database: db.name, listenerYaml: listener('optional'), plugins: [probe] });
    required = await startProxy({ database: db.name, listenerYaml: listener('required'), plugins: [probe] });
  });
  after(async () => {
    await optional?.close();
    await required?.close();
    await db?.drop();
  });

  const connect = async (p: TestProxy, user: string, cert?: { cert: string; key: string }, password?: string): Promise<pg.Client> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: p.port,
      user,
      password,
      database: 'dev',
      ssl: cert ? { rejectUnauthorized: false, cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : { rejectUnauthorized: false },
    });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  it('a certificate with CN of a local user authenticates as that user, without a password', async () => {
    seen.length = 0;
    const c = await connect(optional, 'carol', carol);
    assert.equal((await c.query('select 1 as n')).rows[0].n, 1);
    await c.end();
    const id = seen.at(-1)!;
    assert.equal(id.name, 'carol');
    assert.deepEqual(id.groups, ['analysts'], 'inherits the local user');
    assert.equal(id.authMethod, 'certificate');
    assert.match(id.credentialId, /^cert:[0-9a-f]{32}$/);
  });

  it('psql authenticates with sslcert/sslkey', async () => {
    const r = await run('psql', ['-XAtc', 'select 2'], { env: { ...optional.env('carol'), PGPASSWORD: '', PGSSLMODE: 'require', PGSSLCERT: carol.cert, PGSSLKEY: carol.key } });
    assert.equal(r.stdout.trim(), '2', r.stderr);
  });

  it('a SPIFFE URI SAN is a service identity', async () => {
    seen.length = 0;
    const c = await connect(optional, 'spiffe://example.org/ns/prod/sa/billing', spiffe);
    await c.end();
    const id = seen.at(-1)!;
    assert.equal(id.kind, 'service');
    assert.equal(id.attributes.spiffe_id, 'spiffe://example.org/ns/prod/sa/billing');
  });

  it('refuses an untrusted certificate and a user name the certificate does not name', async () => {
    await assert.rejects(connect(optional, 'carol', rogue), (e: Error & { code?: string }) => e.code === '28P01' && /certificate authentication failed/.test(e.message));
    await assert.rejects(connect(optional, 'alice', carol), (e: Error & { code?: string }) => e.code === '28P01');
  });

  it('without a certificate, optional mode falls back to passwords; required mode refuses', async () => {
    const c = await connect(optional, 'alice', undefined, 'alice-pw');
    await c.end();
    await assert.rejects(connect(required, 'alice', undefined, 'alice-pw'), (e: Error & { code?: string }) => e.code === '28000' && /client_certs: required/.test(e.message));
    const ok = await connect(required, 'carol', carol);
    await ok.end();
  });
});
