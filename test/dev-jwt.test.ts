/** `gatehouse dev-jwt` with the example's TEST-ONLY key, end to end through the proxy with psql. */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, run } from './helpers/pg.js';
import { BIN, startProxy, type TestProxy } from './helpers/proxy.js';

describe('gatehouse dev-jwt', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;
  const sessions: Array<{ kind: string; name: string; onBehalfOf?: string; model?: string }> = [];
  before(async () => {
    db = await createTestDatabase();
    proxy = await startProxy({
      database: db.name,
      extraYaml: `auth:\n  cleartext_from_loopback: true\n  jwt:\n    - { name: dev, issuer: "https://dev.gatehouse.local", audience: gatehouse, jwks_file: ${resolve('examples/dev-jwks.json')}, workload: {} }\n`,
      plugins: [{ name: 'probe', sessionStart: (s) => void sessions.push({ kind: s.identity.kind, name: s.identity.name, onBehalfOf: s.identity.onBehalfOf?.name, model: s.identity.attributes.model }) }],
    });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  const mint = async (...args: string[]): Promise<string> => {
    const r = await run(process.execPath, [BIN, 'dev-jwt', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').at(-1)!;
  };

  it('mints an agent token acting for alice that psql can use', async () => {
    const token = await mint('--sub', 'alice', '--act', 'claude-agent', '--model', 'claude-x');
    const r = await run('psql', ['-XAtc', 'select 7'], { env: { ...proxy.env('claude-agent', 'prod'), PGPASSWORD: token } });
    assert.equal(r.stdout.trim(), '7', r.stderr);
    assert.deepEqual(sessions.at(-1), { kind: 'agent', name: 'claude-agent', onBehalfOf: 'alice', model: 'claude-x' });
  });

  it('mints a CI workload token: a service acting for its actor', async () => {
    const token = await mint('--sub', 'ci', '--repository', 'org/app', '--workflow', 'deploy', '--actor', 'bob');
    const r = await run('psql', ['-XAtc', 'select 8'], { env: { ...proxy.env('org/app:deploy', 'dev'), PGPASSWORD: token } });
    assert.equal(r.stdout.trim(), '8', r.stderr);
    assert.deepEqual(sessions.at(-1), { kind: 'service', name: 'org/app:deploy', onBehalfOf: 'bob', model: undefined });
  });
});
