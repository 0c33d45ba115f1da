/**
 * Configuration loading: a valid file resolves with its defaults; every kind of mistake is a
 * ConfigError naming the file, the key path and what was expected. The CLI's `check` and
 * `user add` run as the real command in src/cli/main.test.ts (kept apart: spawning is slow).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../errors.js';
import { loadConfig, parseConfig } from './load.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/local.yaml');
const FILE = '/etc/gatehouse/test.yaml';
const VERIFIER = 'SCRAM-SHA-256$4096:TYdnR/DnbPySrBeOGtdT2w==$O1fxtE4ZhPsdepvNkFYm0ccfyzWCB6Gp8ot0CPVejlI=:Sbyi+Gljpkep/oOXTQGO7CNNT05rB+2odN4mPHv4fw0=';

const CONNECTION = `connections:
  - name: dev
    upstream: { host: db.internal, database: app, user: app }
`;

/** parseConfig must throw a ConfigError whose message names the file and contains every part. */
function rejects(text: string, parts: Array<string | RegExp>, env: NodeJS.ProcessEnv = {}, file = FILE): string {
  let message = '';
  assert.throws(
    () => parseConfig(text, file, env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.code, 'GH_CONFIG');
      message = err.message;
      return true;
    },
  );
  assert.ok(message.startsWith(`${file}: `), `names the file first: ${message}`);
  for (const p of parts) {
    if (typeof p === 'string') assert.ok(message.includes(p), `message ${JSON.stringify(message)} should contain ${JSON.stringify(p)}`);
    else assert.match(message, p);
  }
  assert.ok(!message.includes('\n'), 'one line');
  return message;
}

describe('parseConfig', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-load-test-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a minimal config and fills in the defaults', () => {
    const loaded = parseConfig(CONNECTION, FILE, {});
    const c = loaded.config;
    assert.equal(loaded.file, FILE);
    assert.deepEqual(
      { host: c.listeners.postgres.host, port: c.listeners.postgres.port, http: c.listeners.http },
      { host: '127.0.0.1', port: 6432, http: undefined },
    );
    assert.equal(c.listeners.postgres.handshake_timeout, 15_000);
    assert.deepEqual(c.users, []);
    assert.equal(c.server.workers, 1);
    assert.equal(c.server.shutdown_timeout, 30_000);
    assert.equal(c.log.level, 'info');
    const dev = loaded.connections.get('dev')!;
    assert.equal(dev.engine, 'postgres');
    assert.equal(dev.environment, 'development');
    assert.equal(dev.upstream.port, 5432);
    assert.equal(dev.upstream.tls.mode, 'disable');
    assert.equal(dev.upstream.connect_timeout, 10_000);
    assert.equal(dev.upstreamPassword, undefined);
    assert.equal(dev.upstreamCa, undefined);
    assert.equal(loaded.listenerTls, undefined);
    assert.ok(isAbsolute(loaded.stateDir));
  });

  it('accepts the shipped example', () => {
    const loaded = loadConfig(EXAMPLE, {});
    assert.deepEqual([...loaded.connections.keys()], ['dev', 'prod']);
    assert.equal(loaded.config.users.length, 3);
  });

  it('normalises durations to milliseconds', () => {
    for (const [text, ms] of [
      ['500ms', 500],
      ['30s', 30_000],
      ['10m', 600_000],
      ['8h', 28_800_000],
      ['1d', 86_400_000],
      ['1.5s', 1500],
      ['2', null],
    ] as const) {
      const yaml = `${CONNECTION}server: { shutdown_timeout: ${JSON.stringify(text)} }\n`;
      if (ms === null) rejects(yaml, ['server.shutdown_timeout', 'expected a duration']);
      else assert.equal(parseConfig(yaml, FILE, {}).config.server.shutdown_timeout, ms, text);
    }
    assert.equal(parseConfig(`${CONNECTION}server: { shutdown_timeout: 2.5 }\n`, FILE, {}).config.server.shutdown_timeout, 2500, 'a number is seconds');
  });

  describe('errors name the file, the key and what was expected', () => {
    it('missing connections', () => {
      rejects('listeners: {}\n', ['connections', 'expected array']);
      rejects('', ['connections', 'expected array']);
      rejects('connections: []\n', ['connections', 'expected at least one connection']);
    });

    it('not a mapping at all', () => {
      rejects('- a\n- b\n', ['(top level)', 'expected a mapping']);
    });

    it('wrong type (port: "abc")', () => {
      rejects(`listeners:\n  postgres:\n    port: "abc"\n${CONNECTION}`, ['listeners.postgres.port', 'expected number', 'received string']);
      rejects(CONNECTION.replace('user: app', 'user: app, port: 70000'), ['connections[0].upstream.port']);
    });

    it('unknown key (a typo)', () => {
      rejects(`listeners:\n  postgres:\n    prot: 6432\n${CONNECTION}`, ['listeners.postgres', 'unknown key "prot"']);
      rejects(`${CONNECTION}log: { levle: debug }\n`, ['log', 'unknown key "levle"']);
      rejects(`${CONNECTION}conections: []\n`, ['(top level)', 'unknown key "conections"']);
    });

    it('bad duration', () => {
      rejects(`${CONNECTION}server:\n  shutdown_timeout: 5 minutes\n`, ['server.shutdown_timeout', 'expected a duration such as "30s"', 'got "5 minutes"']);
      rejects(`listeners:\n  postgres:\n    handshake_timeout: -3\n${CONNECTION}`, ['listeners.postgres.handshake_timeout']);
    });

    it('plain-text user password', () => {
      rejects(`${CONNECTION}users:\n  - name: alice\n    password: hunter2\n`, ['users[0].password', 'expected a SCRAM-SHA-256 verifier', 'not a plain password']);
    });

    it('the message never echoes the plain-text password', () => {
      const m = rejects(`${CONNECTION}users:\n  - name: alice\n    password: hunter2\n`, []);
      assert.ok(!m.includes('hunter2'), m);
    });

    it('duplicate connection names (and users)', () => {
      rejects(`${CONNECTION}  - name: dev\n    upstream: { host: h, database: d, user: u }\n`, ['connections[1].name', 'duplicate connection name "dev"']);
      rejects(`${CONNECTION}users:\n  - { name: a, password: "${VERIFIER}" }\n  - { name: a, password: "${VERIFIER}" }\n`, ['users[1].name', 'duplicate user name "a"']);
    });

    it('several problems: the first is named and the rest counted', () => {
      rejects(`listeners:\n  postgres:\n    port: x\n    prot: 1\n${CONNECTION}`, [/\(and 1 more problem\)$/]);
    });

    it('${VAR} missing names the variable and the key', () => {
      const text = CONNECTION.replace('db.internal', '"${DB_HOST}"');
      rejects(text, ['connections[0].upstream.host', 'DB_HOST', 'is not set']);
      rejects(text, ['DB_HOST'], { DB_HOST: '' });
    });

    it('invalid YAML reports line and column', () => {
      rejects(`${CONNECTION}users:\n  - name: a\n   password: [\n`, [/line \d+, column \d+/, 'invalid YAML']);
      rejects('connections: {a: 1\n', [/line \d+, column \d+/, 'invalid YAML']);
    });

    it('password_env naming a missing variable', () => {
      rejects(CONNECTION.replace('user: app', 'user: app, password_env: DB_PASSWORD'), ['connections[0].upstream.password_env', 'DB_PASSWORD', 'is not set']);
    });

    it('password_file that cannot be read', () => {
      rejects(CONNECTION.replace('user: app', 'user: app, password_file: secrets/missing'), ['connections[0].upstream.password_file', 'cannot read password file "secrets/missing"', 'ENOENT'], {}, join(dir, 'gh.yaml'));
    });

    it('more than one password source', () => {
      rejects(CONNECTION.replace('user: app', 'user: app, password: a, password_env: B'), ['connections[0].upstream', 'at most one of password_env, password_file and password']);
    });

    it('TLS certificate or key file missing', () => {
      const tls = (cert: string, key: string): string => `listeners:\n  postgres:\n    tls: { cert: ${cert}, key: ${key} }\n${CONNECTION}`;
      rejects(tls('/nonexistent/server.crt', '/nonexistent/server.key'), ['listeners.postgres.tls.cert', 'cannot read certificate "/nonexistent/server.crt"', 'ENOENT']);
      const cert = join(dir, 'garbage.crt');
      writeFileSync(cert, 'not a certificate');
      rejects(tls(cert, '/nonexistent/server.key'), ['listeners.postgres.tls.key', 'cannot read private key', 'ENOENT']);
      rejects(tls(cert, cert), ['listeners.postgres.tls', 'not a valid PEM pair']);
      rejects(tls('/nonexistent/server.crt', '/nonexistent/server.key').replace('key: /nonexistent/server.key', 'key: k, mode: sometimes'), ['listeners.postgres.tls.mode']);
    });

    it('a CA file that cannot be read', () => {
      rejects(CONNECTION.replace('user: app', 'user: app, tls: { mode: verify-full, ca: /nonexistent/ca.pem }'), ['connections[0].upstream.tls.ca', 'cannot read CA file']);
    });

    it('a missing file (loadConfig)', () => {
      assert.throws(() => loadConfig(join(dir, 'nope.yaml'), {}), (err: unknown) => err instanceof ConfigError && err.message.includes('nope.yaml') && err.message.includes('ENOENT'));
    });
  });

  describe('interpolation', () => {
    it('${VAR} and ${VAR:-default}', () => {
      const text = CONNECTION.replace('db.internal', '"${DB_HOST}"').replace('database: app', 'database: "${DB_NAME:-fallback}"');
      const a = parseConfig(text, FILE, { DB_HOST: 'pg.example' }).connections.get('dev')!;
      assert.equal(a.upstream.host, 'pg.example');
      assert.equal(a.upstream.database, 'fallback');
      const b = parseConfig(text, FILE, { DB_HOST: 'h', DB_NAME: 'set' }).connections.get('dev')!;
      assert.equal(b.upstream.database, 'set');
      const c = parseConfig(text, FILE, { DB_HOST: 'h', DB_NAME: '' }).connections.get('dev')!;
      assert.equal(c.upstream.database, 'fallback', 'an empty variable takes the default, as in the shell');
      const d = parseConfig(CONNECTION.replace('database: app', 'database: "x${E:-}y"'), FILE, {}).connections.get('dev')!;
      assert.equal(d.upstream.database, 'xy', 'an empty default');
    });

    it('several variables in one value', () => {
      const text = CONNECTION.replace('db.internal', '"${A}.${B:-b}.${A}"');
      assert.equal(parseConfig(text, FILE, { A: 'a' }).connections.get('dev')!.upstream.host, 'a.b.a');
    });

    it('$${ escapes a literal ${', () => {
      const text = CONNECTION.replace('database: app', () => 'database: "pre$${NOT_A_VAR}post"');
      assert.equal(parseConfig(text, FILE, {}).connections.get('dev')!.upstream.database, 'pre${NOT_A_VAR}post');
    });

    it('comments and keys are not interpolated', () => {
      const text = `# uses \${UNSET_IN_COMMENT}\n${CONNECTION}`;
      assert.ok(parseConfig(text, FILE, {}));
    });

    it('resolves password_env, password_file (relative to the file, newline stripped) and password', () => {
      writeFileSync(join(dir, 'pw.txt'), 's3cret\n');
      const file = join(dir, 'gh.yaml');
      const viaEnv = parseConfig(CONNECTION.replace('user: app', 'user: app, password_env: DB_PW'), file, { DB_PW: 'from-env' });
      assert.equal(viaEnv.connections.get('dev')!.upstreamPassword, 'from-env');
      const viaFile = parseConfig(CONNECTION.replace('user: app', 'user: app, password_file: pw.txt'), file, {});
      assert.equal(viaFile.connections.get('dev')!.upstreamPassword, 's3cret');
      const viaText = parseConfig(CONNECTION.replace('user: app', 'user: app, password: "${P}"'), file, { P: 'interp' });
      assert.equal(viaText.connections.get('dev')!.upstreamPassword, 'interp');
    });
  });

  it('loads a valid TLS certificate and key', () => {
    const cert = join(dir, 'server.crt');
    const key = join(dir, 'server.key');
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    } catch {
      return; // no openssl binary: covered by the error cases above
    }
    const loaded = parseConfig(`listeners:\n  postgres:\n    tls: { cert: server.crt, key: server.key, mode: required }\n${CONNECTION}`, join(dir, 'gh.yaml'), {});
    assert.ok(loaded.listenerTls);
    assert.equal(loaded.config.listeners.postgres.tls!.mode, 'required');
  });
});
