/**
 * pgbench through the proxy, in each query mode (simple, extended, prepared), for the
 * TPC-B-like and the select-only scripts: every transaction is processed without failure, and
 * the data written through the proxy is exactly what PostgreSQL holds afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, direct, PG_HOST, PG_PORT, run } from './helpers/pg.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';

const CLIENTS = 4;
const TX_PER_CLIENT = 200;
const TOTAL = CLIENTS * TX_PER_CLIENT;

describe('fidelity: pgbench through the proxy', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;

  const historyRows = async (): Promise<number> => (await direct(db.name, 'select count(*)::int as n from pgbench_history')).rows[0].n;

  before(async () => {
    db = await createTestDatabase('gh_fid_bench');
    const init = await run('pgbench', ['-i', '-s', '1', '-q', '-h', PG_HOST, '-p', String(PG_PORT), '-U', 'postgres', db.name]);
    assert.equal(init.code, 0, init.stderr);
    proxy = await startProxy({ database: db.name, logStatements: false });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  /** Run pgbench through the proxy and check its report. */
  async function bench(mode: string, extra: string[]): Promise<string> {
    const r = await run('pgbench', ['-n', '-M', mode, '-c', String(CLIENTS), '-j', '2', '-t', String(TX_PER_CLIENT), ...extra], {
      env: proxy.env('alice'),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, `pgbench failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`query mode: ${mode}\\n`));
    assert.match(r.stdout, new RegExp(`number of clients: ${CLIENTS}\\n`));
    assert.match(r.stdout, new RegExp(`number of transactions actually processed: ${TOTAL}/${TOTAL}\\n`));
    const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
    if (failed) assert.equal(failed[1], '0', 'no failed transactions');
    assert.doesNotMatch(r.stderr, /error|abort/i);
    return r.stdout;
  }

  for (const mode of ['simple', 'extended', 'prepared']) {
    it(`runs the TPC-B-like script with -M ${mode}`, async () => {
      const start = await historyRows();
      const out = await bench(mode, []);
      assert.match(out, /transaction type: <builtin: TPC-B \(sort of\)>/);
      assert.equal(await historyRows(), start + TOTAL, 'one pgbench_history row per transaction');
    });

    it(`runs the select-only script with -M ${mode}`, async () => {
      const start = await historyRows();
      const out = await bench(mode, ['-S']);
      assert.match(out, /transaction type: <builtin: select only>/);
      assert.equal(await historyRows(), start, 'select-only writes nothing');
    });
  }

  it('leaves the database consistent: balances equal the sum of the history', async () => {
    const r = await direct(
      db.name,
      `select (select count(*)::int from pgbench_history) as tx,
              (select coalesce(sum(delta), 0)::text from pgbench_history) as history,
              (select sum(abalance)::text from pgbench_accounts) as accounts,
              (select sum(bbalance)::text from pgbench_branches) as branches,
              (select sum(tbalance)::text from pgbench_tellers) as tellers,
              (select count(*)::int from pgbench_accounts) as naccounts`,
    );
    const row = r.rows[0];
    assert.equal(row.tx, 3 * TOTAL);
    assert.equal(row.naccounts, 100_000);
    assert.equal(row.accounts, row.history);
    assert.equal(row.branches, row.history);
    assert.equal(row.tellers, row.history);
  });
});
