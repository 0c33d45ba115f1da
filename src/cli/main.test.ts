/**
 * The `gatehouse` command as users run it: `check` prints one line and exits 1 on a bad file (no
 * stack trace), 0 on a good one; `user add` stores only a SCRAM verifier, keeps the file's
 * comments and leaves a file that passes `check`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../config/load.js';
import { parseVerifier, ScramClient, ScramServer } from '../identity/scram.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/gatehouse.js');
const EXAMPLE = join(ROOT, 'examples/local.yaml');

const CONNECTION = `connections:
  - name: dev
    upstream: { host: db.internal, database: app, user: app }
`;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

function noStack(r: Result): void {
  assert.ok(!`${r.stdout}${r.stderr}`.includes('    at '), `no stack trace:\n${r.stderr}`);
}

describe('gatehouse CLI', { concurrency: true }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-cli-test-'));
    // examples/local.yaml refers to its policy files relative to itself.
    cpSync(join(ROOT, 'examples/policies'), join(dir, 'policies'), { recursive: true });
    cpSync(join(ROOT, 'examples/dev-jwks.json'), join(dir, 'dev-jwks.json'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('check: a bad file exits 1 with one line naming the file and the key, no stack trace', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `listeners:\n  postgres:\n    port: "abc"\n${CONNECTION}`);
    const r = await cli(['check', '--config', file]);
    assert.equal(r.code, 1);
    noStack(r);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.includes(file) && lines[0]!.includes('listeners.postgres.port'), lines[0]);
    assert.equal(r.stdout, '');
  });

  it('check: a good file exits 0', async () => {
    const r = await cli(['check', '--config', EXAMPLE]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok — 2 connection\(s\)/);
  });

  it('user add: stores a SCRAM verifier (never the password), keeps comments, and the file passes check', async () => {
    const file = join(dir, 'users.yaml');
    copyFileSync(EXAMPLE, file);
    const before = readFileSync(file, 'utf8');
    const password = 'dave-Pw 42!';
    const r = await cli(['user', 'add', 'dave', '-c', file, '--groups', 'a,b'], `${password}\n`);
    assert.equal(r.code, 0, r.stderr);
    noStack(r);
    assert.match(r.stdout, /added user "dave"/);
    const after = readFileSync(file, 'utf8');
    assert.ok(!after.includes(password), 'the plain password is not stored');
    for (const line of before.split('\n').filter((l) => l.trimStart().startsWith('#'))) {
      assert.ok(after.includes(line), `comment kept: ${line}`);
    }
    const loaded = loadConfig(file, {});
    const dave = loaded.config.users.find((u) => u.name === 'dave')!;
    assert.ok(dave, 'dave was added');
    assert.deepEqual(dave.groups, ['a', 'b']);
    assert.equal(dave.kind, 'human');
    assert.equal(loaded.config.users.length, 4);
    const verifier = parseVerifier(dave.password);
    assert.ok(verifier, dave.password);
    // The verifier authenticates the password.
    const server = new ScramServer(verifier);
    const client = new ScramClient(password);
    client.verify(server.final(client.final(server.first(client.first()))));
    const bad = new ScramServer(verifier);
    const wrong = new ScramClient('dave-pw');
    assert.throws(() => bad.final(wrong.final(bad.first(wrong.first()))));

    const checked = await cli(['check', '--config', file]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /4 user\(s\)/);
  });

  it('user add: an empty password exits 1 and leaves the file alone', async () => {
    const file = join(dir, 'empty.yaml');
    copyFileSync(EXAMPLE, file);
    const before = readFileSync(file, 'utf8');
    const r = await cli(['user', 'add', 'eve', '-c', file], '\n');
    assert.equal(r.code, 1);
    noStack(r);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(readFileSync(file, 'utf8'), before);
  });
});
