/**
 * The node-relay reference target carries a PostgreSQL session unchanged, large results (its
 * backpressure path) included, so the benchmark's floor measures a working relay.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { freePort, PG_HOST, PG_PORT, PG_SOCKET_DIR } from './targets.js';

const PROGRAM = fileURLToPath(new URL('./relay-process.js', import.meta.url));

describe('node-relay (benchmark reference)', () => {
  let port = 0;
  let child: ReturnType<typeof spawn>;
  before(async () => {
    port = await freePort();
    child = spawn(process.execPath, [PROGRAM, String(port), PG_SOCKET_DIR, String(PG_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    assert.match(line.toString(), /^listening on /);
  });
  after(() => {
    child.kill('SIGTERM');
  });

  it('relays queries, errors and a 4 MB result both ways', { timeout: 20_000 }, async () => {
    const c = new pg.Client({ host: PG_HOST, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5_000 });
    await c.connect();
    try {
      const r = await c.query('SELECT $1::int + 1 AS n', [41]);
      assert.equal(r.rows[0].n, 42);
      await assert.rejects(c.query('SELECT * FROM no_such_table_here'), /does not exist/);
      const big = await c.query("SELECT repeat('x', 4 * 1024 * 1024) AS v");
      assert.equal((big.rows[0].v as string).length, 4 * 1024 * 1024);
      const sent = 'y'.repeat(2 * 1024 * 1024);
      const echo = await c.query('SELECT length($1::text) AS n', [sent]);
      assert.equal(echo.rows[0].n, sent.length);
      const many = await Promise.all(Array.from({ length: 200 }, (_, i) => c.query('SELECT $1::int AS i', [i])));
      assert.deepEqual(many.map((x) => x.rows[0].i), Array.from({ length: 200 }, (_, i) => i));
    } finally {
      await c.end();
    }
  });
});
