/**
 * Wire-level transparency: where meaningful, the same frontend frames are sent once directly
 * to PostgreSQL (trust, user postgres, the same database) and once through the proxy (SCRAM,
 * alice), and the backend messages received after the handshake must be identical, byte for
 * byte. Each scenario also asserts the concrete sequence it expects, so it cannot pass by both
 * sides failing alike. The rest (cancel, Terminate, backpressure, shutdown, the pipeline's
 * accounting) concern the proxy alone and assert their outcome directly.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { messages } from '../src/protocol/postgres/index.js';
import { createTestDatabase, direct, PG_HOST, PG_PORT, untilActive } from './helpers/pg.js';
import { startProxy, waitFor, type TestProxy } from './helpers/proxy.js';
import { dataRow, dataRowRaw, errorFields, fe, pbe, RawClient, rowDescription, summary, type BackendMessage } from './helpers/raw-client.js';

const INT4 = 23;
const TEXT = 25;

describe('fidelity: raw protocol through the proxy matches PostgreSQL', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TestProxy;

  before(async () => {
    db = await createTestDatabase('gh_fid_proto');
    await direct(db.name, `create table items (id int primary key, name text not null)`);
    await direct(db.name, `insert into items select g, 'item-' || g from generate_series(1, 20) g`);
    proxy = await startProxy({ database: db.name });
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });

  const viaProxy = (o: { handshakeChunk?: number; params?: Record<string, string> } = {}): Promise<RawClient> =>
    RawClient.connect({ port: proxy.port, user: 'alice', password: 'alice-pw', database: 'dev', ...o });
  const viaDirect = (o: { handshakeChunk?: number; params?: Record<string, string> } = {}): Promise<RawClient> =>
    RawClient.connect({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: db.name, ...o });

  /**
   * Run `scenario` directly and through the proxy; assert identical messages (summaries first,
   * for a readable diff, then the raw bytes); return the summaries of what came through the proxy.
   */
  async function compare(
    scenario: (c: RawClient) => Promise<BackendMessage[]>,
    o: { handshakeChunk?: number } = {},
  ): Promise<string[]> {
    const d = await viaDirect(o);
    const p = await viaProxy(o);
    try {
      const expected = await scenario(d);
      const actual = await scenario(p);
      assert.deepEqual(actual.map(summary), expected.map(summary), 'message sequence through the proxy differs from PostgreSQL');
      for (let i = 0; i < expected.length; i++) {
        assert.ok(actual[i]!.raw.equals(expected[i]!.raw), `message #${i} (${summary(expected[i]!)}) differs in its bytes`);
      }
      return actual.map(summary);
    } finally {
      await d.terminate();
      await p.terminate();
    }
  }

  it('pipelines several Parse/Bind/Execute groups sent in one write before a single Sync', async () => {
    const seq = await compare(async (c) => {
      c.write(
        fe.parse('s_add', 'select $1::int + $2::int as sum', [INT4, INT4]),
        fe.bind('', 's_add', ['40', '2']),
        fe.execute(),
        fe.bind('', 's_add', ['1', '1']),
        fe.execute(),
        pbe('select name from items where id = $1', ['3']),
        pbe('select id from items where id <= 3 order by id'),
        fe.sync(),
      );
      return c.untilReady(1);
    });
    assert.deepEqual(seq, [
      '1', '2', 'D:["42"]', 'C:SELECT 1',
      '2', 'D:["2"]', 'C:SELECT 1',
      '1', '2', 'D:["item-3"]', 'C:SELECT 1',
      '1', '2', 'D:["1"]', 'D:["2"]', 'D:["3"]', 'C:SELECT 3',
      'Z:I',
    ]);
  });

  it('answers several Sync segments and a multi-statement Query sent in one write, in order', async () => {
    const seq = await compare(async (c) => {
      c.write(pbe('select 1'), fe.sync(), pbe('select 2'), fe.sync(), fe.query('select 3; select 4'), pbe('select 5'), fe.sync());
      return c.untilReady(4);
    });
    assert.deepEqual(seq, [
      '1', '2', 'D:["1"]', 'C:SELECT 1', 'Z:I',
      '1', '2', 'D:["2"]', 'C:SELECT 1', 'Z:I',
      'T:?column?', 'D:["3"]', 'C:SELECT 1', 'T:?column?', 'D:["4"]', 'C:SELECT 1', 'Z:I',
      '1', '2', 'D:["5"]', 'C:SELECT 1', 'Z:I',
    ]);
  });

  it('keeps named and unnamed statements and portals, Describe and Close as the server does', async () => {
    let described: BackendMessage[] = [];
    const seq = await compare(async (c) => {
      // Segment 1: a named statement, described.
      c.write(fe.parse('st_named', 'select id, name from items where id > $1 order by id limit 2', [INT4]), fe.describe('S', 'st_named'), fe.sync());
      const first = await c.untilReady(1);
      described = first;
      // Segment 2: a named portal of it and an unnamed statement/portal, interleaved.
      c.write(
        fe.bind('portal_a', 'st_named', ['5']),
        fe.describe('P', 'portal_a'),
        fe.parse('', 'select $1::text as echo'),
        fe.describe('S', ''),
        fe.bind('', '', ['hello']),
        fe.describe('P', ''),
        fe.execute('portal_a'),
        fe.execute(''),
        fe.close('P', 'portal_a'),
        fe.bind('', 'st_named', ['18']),
        fe.execute(''),
        fe.close('S', 'st_named'),
        fe.close('S', 'never_existed'),
        fe.sync(),
      );
      const second = await c.untilReady(1);
      // Segment 3: the closed statement is gone.
      c.write(fe.bind('', 'st_named', ['1']), fe.execute(''), fe.sync());
      return [...first, ...second, ...(await c.untilReady(1))];
    });
    assert.deepEqual(seq, [
      '1', 't', 'T:id,name', 'Z:I',
      '2', 'T:id,name', '1', 't', 'T:echo', '2', 'T:echo',
      'D:["6","item-6"]', 'D:["7","item-7"]', 'C:SELECT 2',
      'D:["hello"]', 'C:SELECT 1',
      '3',
      '2', 'D:["19","item-19"]', 'D:["20","item-20"]', 'C:SELECT 2',
      '3', '3', 'Z:I',
      'E:26000', 'Z:I',
    ]);
    const params = described.find((m) => m.type === 't')!;
    assert.equal(params.body.readInt16BE(0), 1);
    assert.equal(params.body.readUInt32BE(2), INT4);
    assert.deepEqual(
      rowDescription(described.find((m) => m.type === 'T')!).map((c) => [c.name, c.typeId]),
      [['id', INT4], ['name', TEXT]],
    );
  });

  it('answers up to a Flush without a Sync, and nothing before it', async () => {
    const seq = await compare(async (c) => {
      const out: BackendMessage[] = [];
      c.write(pbe('select 7 as seven'));
      assert.deepEqual((await c.drainFor(150)).map(summary), [], 'no answer is due before Flush or Sync');
      c.write(fe.flush());
      out.push(...(await c.collect((m) => m.type === 'C')));
      c.write(pbe('select 8'), fe.flush());
      out.push(...(await c.collect((m) => m.type === 'C')));
      assert.deepEqual((await c.drainFor(100)).map(summary), [], 'no ReadyForQuery before Sync');
      c.write(fe.sync());
      out.push(...(await c.untilReady(1)));
      return out;
    });
    assert.deepEqual(seq, ['1', '2', 'D:["7"]', 'C:SELECT 1', '1', '2', 'D:["8"]', 'C:SELECT 1', 'Z:I']);
  });

  it('suspends a portal at the Execute row limit and continues it', async () => {
    const seq = await compare(async (c) => {
      const out: BackendMessage[] = [];
      c.write(fe.parse('', 'select g from generate_series(1, 10) g'), fe.bind('cur', '', []), fe.execute('cur', 4), fe.flush());
      out.push(...(await c.collect((m) => m.type === 's')));
      c.write(fe.execute('cur', 4), fe.flush());
      out.push(...(await c.collect((m) => m.type === 's')));
      c.write(fe.execute('cur', 0), fe.sync());
      out.push(...(await c.untilReady(1)));
      // A named portal lives across Syncs inside an explicit transaction.
      c.write(fe.query('begin'), fe.parse('', 'select g from generate_series(1, 5) g'), fe.bind('c2', '', []), fe.execute('c2', 3), fe.sync());
      out.push(...(await c.untilReady(2)));
      c.write(fe.execute('c2', 3), fe.sync(), fe.query('commit'));
      out.push(...(await c.untilReady(2)));
      return out;
    });
    assert.deepEqual(seq, [
      '1', '2', 'D:["1"]', 'D:["2"]', 'D:["3"]', 'D:["4"]', 's',
      'D:["5"]', 'D:["6"]', 'D:["7"]', 'D:["8"]', 's',
      'D:["9"]', 'D:["10"]', 'C:SELECT 2', 'Z:I',
      'C:BEGIN', 'Z:T', '1', '2', 'D:["1"]', 'D:["2"]', 'D:["3"]', 's', 'Z:T',
      'D:["4"]', 'D:["5"]', 'C:SELECT 2', 'Z:T', 'C:COMMIT', 'Z:I',
    ]);
  });

  it('skips to the Sync after an error in a pipeline, and the next segment works', async () => {
    const seq = await compare(async (c) => {
      c.write(
        pbe('select 1'),
        fe.sync(),
        pbe('select 1/0'),
        pbe('select 2'),
        fe.parse('named_after_error', 'select 3'),
        fe.sync(),
        pbe('select 4'),
        fe.sync(),
        fe.parse('', 'selec 5'),
        fe.bind('', '', []),
        fe.execute(),
        fe.sync(),
        pbe('select * from no_such_table'),
        fe.sync(),
        fe.bind('', 'named_after_error', []),
        fe.execute(),
        fe.sync(),
        pbe('select 10 / (g - 3) from generate_series(1, 5) g'),
        pbe('select 5'),
        fe.sync(),
        pbe('select 6'),
        fe.sync(),
      );
      return c.untilReady(8);
    });
    assert.deepEqual(seq, [
      '1', '2', 'D:["1"]', 'C:SELECT 1', 'Z:I',
      // 1/0 is folded by the planner, which runs at Bind for the unnamed statement.
      '1', 'E:22012', 'Z:I',
      '1', '2', 'D:["4"]', 'C:SELECT 1', 'Z:I',
      'E:42601', 'Z:I',
      'E:42P01', 'Z:I',
      'E:26000', 'Z:I',
      // An error during execution, after rows were sent.
      '1', '2', 'D:["-5"]', 'D:["-10"]', 'E:22012', 'Z:I',
      '1', '2', 'D:["6"]', 'C:SELECT 1', 'Z:I',
    ]);
  });

  it('reports a failed explicit transaction (ReadyForQuery E) until ROLLBACK', async () => {
    const seq = await compare(async (c) => {
      c.write(
        fe.query('begin'),
        pbe(`insert into items values (1, 'duplicate')`),
        pbe('select 2'),
        fe.sync(),
        pbe('select 3'),
        fe.sync(),
        fe.query('rollback'),
        pbe('select 4'),
        fe.sync(),
      );
      return c.untilReady(5);
    });
    assert.deepEqual(seq, [
      'C:BEGIN', 'Z:T',
      '1', '2', 'E:23505', 'Z:E',
      'E:25P02', 'Z:E',
      'C:ROLLBACK', 'Z:I',
      '1', '2', 'D:["4"]', 'C:SELECT 1', 'Z:I',
    ]);
  });

  it('relays simple-query edge cases: empty query, error mid-string, ParameterStatus, notices', async () => {
    const seq = await compare(async (c) => {
      c.write(
        fe.query(''),
        fe.query('select 1; select 1/0; select 3'),
        fe.query(`set application_name = 'fidelity-raw'`),
        fe.query(`DO $$BEGIN RAISE NOTICE 'hi'; END$$`),
        pbe(''),
        fe.sync(),
      );
      return c.untilReady(5);
    });
    assert.deepEqual(seq, [
      'I', 'Z:I',
      'T:?column?', 'D:["1"]', 'C:SELECT 1', 'E:22012', 'Z:I',
      'C:SET', 'S:application_name=fidelity-raw', 'Z:I',
      'N:00000', 'C:DO', 'Z:I',
      '1', '2', 'I', 'Z:I',
    ]);
  });

  it('relays binary parameters and binary result columns byte for byte', async () => {
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(-123456);
    let rows: BackendMessage[] = [];
    await compare(async (c) => {
      c.write(
        fe.parse('', `select $1::int4 as p, 1.5::float8 as f, '2020-01-02 03:04:05+00'::timestamptz as ts, '\\x00ff10'::bytea as b, null::int4 as n`, [INT4]),
        fe.bind('', '', [int4], [1]),
        fe.describe('P', ''),
        fe.execute(),
        fe.sync(),
      );
      rows = await c.untilReady(1);
      return rows;
    });
    const desc = rowDescription(rows.find((m) => m.type === 'T')!);
    assert.deepEqual(desc.map((c) => c.format), [1, 1, 1, 1, 1]);
    const [p, f, ts, b, n] = dataRowRaw(rows.find((m) => m.type === 'D')!);
    assert.equal(p!.readInt32BE(0), -123456);
    assert.equal(f!.readDoubleBE(0), 1.5);
    // timestamptz: microseconds since 2000-01-01 UTC.
    assert.equal(ts!.readBigInt64BE(0), BigInt(Date.UTC(2020, 0, 2, 3, 4, 5) - Date.UTC(2000, 0, 1)) * 1000n);
    assert.deepEqual([...b!], [0x00, 0xff, 0x10]);
    assert.equal(n, null);
  });

  it('works when every byte (handshake included) arrives in its own write', async () => {
    const big = 'x'.repeat(200_000);
    const seq = await compare(
      async (c) => {
        await c.writeSplit(
          [
            fe.query('select 1 as a; select 2 as b'),
            fe.parse('split_stmt', 'select $1::text || $2::text as joined', [TEXT, TEXT]),
            fe.describe('S', 'split_stmt'),
            fe.bind('', 'split_stmt', ['ab', null]),
            fe.execute(),
            fe.bind('', 'split_stmt', ['ab', 'cd']),
            fe.execute(),
            fe.sync(),
          ],
          1,
        );
        const out = await c.untilReady(2);
        // A large frame split in odd-sized pieces (held frames spanning chunks).
        await c.writeSplit([...pbe('select length($1::text) as len', [big]), fe.sync()], 997);
        return [...out, ...(await c.untilReady(1))];
      },
      { handshakeChunk: 1 },
    );
    assert.deepEqual(seq, [
      'T:a', 'D:["1"]', 'C:SELECT 1', 'T:b', 'D:["2"]', 'C:SELECT 1', 'Z:I',
      '1', 't', 'T:joined', '2', 'D:[null]', 'C:SELECT 1', '2', 'D:["abcd"]', 'C:SELECT 1', 'Z:I',
      '1', '2', 'D:["200000"]', 'C:SELECT 1', 'Z:I',
    ]);
  });

  it('holds and resumes under backpressure both ways: a slow reader of 40 MB, a 32 MB COPY in one write', async () => {
    const c = await viaProxy();
    try {
      // The client stops reading while the server streams; nothing may be lost or reordered.
      c.socket.pause();
      c.write(fe.query(`select g, repeat(chr(64 + g), 1000000) as s from generate_series(1, 40) g`));
      await new Promise((r) => setTimeout(r, 400));
      c.socket.resume();
      const got = await c.untilReady(1, 30_000);
      assert.deepEqual(got.map((m) => m.type).join(''), 'T' + 'D'.repeat(40) + 'CZ');
      got.filter((m) => m.type === 'D').forEach((m, i) => {
        const [g, v] = dataRowRaw(m);
        assert.equal(g!.toString(), String(i + 1));
        assert.equal(v!.length, 1_000_000);
        assert.ok(v![0] === 65 + i && v![999_999] === 65 + i, `row ${i + 1} content`);
      });

      // Client -> server: one huge write of CopyData frames while the server is slower.
      c.write(fe.query('create temp table bulk (id int, pad text)'), fe.query('copy bulk from stdin'));
      assert.deepEqual((await c.collect((m) => m.type === 'G')).map(summary), ['C:CREATE TABLE', 'Z:I', 'G']);
      const pad = 'p'.repeat(1000);
      const frames: Buffer[] = [];
      for (let i = 0; i < 32; i++) frames.push(fe.copyData(Array.from({ length: 1000 }, (_, j) => `${i * 1000 + j}\t${pad}\n`).join('')));
      c.write(frames, fe.copyDone(), fe.query('select count(*), sum(id), sum(length(pad)) from bulk'));
      const done = await c.untilReady(2, 30_000);
      assert.deepEqual(done.map(summary), ['C:COPY 32000', 'Z:I', 'T:count,sum,sum', `D:["32000","${(31999 * 32000) / 2}","32000000"]`, 'C:SELECT 1', 'Z:I']);
    } finally {
      await c.terminate();
    }
  });

  it('answers queries a client pipelines behind its authentication, before ReadyForQuery', async () => {
    const early = [fe.query('select 1 as early'), ...pbe('select $1::text as x', ['pipelined']), fe.sync()];
    const run = async (c: RawClient): Promise<string[]> => {
      try {
        return (await c.untilReady(2)).map(summary);
      } finally {
        await c.terminate();
      }
    };
    const expected = await run(await RawClient.connect({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: db.name, early }));
    const actual = await run(await RawClient.connect({ port: proxy.port, user: 'alice', password: 'alice-pw', database: 'dev', early }));
    assert.deepEqual(actual, expected);
    assert.deepEqual(actual, ['T:early', 'D:["1"]', 'C:SELECT 1', 'Z:I', '1', '2', 'D:["pipelined"]', 'C:SELECT 1', 'Z:I']);
  });

  it('relays a FunctionCall (the fast path of libpq large objects) like PostgreSQL', async () => {
    const abs = Number((await direct(db.name, `select 'abs(integer)'::regprocedure::oid as oid`)).rows[0].oid);
    let result: BackendMessage[] = [];
    const seq = await compare(async (c) => {
      c.write(fe.functionCall(abs, ['-42']), fe.query('select 2'), fe.functionCall(abs, ['not a number']), fe.functionCall(abs, [null]));
      result = await c.untilReady(4);
      return result;
    });
    assert.deepEqual(seq, ['V', 'Z:I', 'T:?column?', 'D:["2"]', 'C:SELECT 1', 'Z:I', 'E:22P02', 'Z:I', 'V', 'Z:I']);
    // FunctionCallResponse: int32 length of the result (-1 = NULL), then the value.
    assert.equal(result[0]!.body.readInt32BE(0), 2);
    assert.equal(result[0]!.body.toString('utf8', 4), '42');
    assert.equal(result[8]!.body.readInt32BE(0), -1);
  });

  it('accounts a FunctionCall as an execution and keeps accounting statements after it', async () => {
    const completed: string[] = [];
    const probe = await startProxy({ database: db.name, plugins: [{ name: 'probe', complete: (_s, e) => void completed.push(e.statement.text) }] });
    const c = await RawClient.connect({ port: probe.port, user: 'alice', password: 'alice-pw', database: 'dev' });
    try {
      const abs = Number((await direct(db.name, `select 'abs(integer)'::regprocedure::oid as oid`)).rows[0].oid);
      c.write(fe.query(`select 'before-fastpath'`));
      await c.untilReady(1);
      c.write(fe.functionCall(abs, ['-7']));
      assert.deepEqual((await c.untilReady(1)).map(summary), ['V', 'Z:I']);
      c.write(fe.query(`select 'after-fastpath'`), pbe(`select 'extended-after-fastpath'`), fe.sync());
      assert.deepEqual((await c.untilReady(2)).map(summary).filter((m) => m.startsWith('D')), ['D:["after-fastpath"]', 'D:["extended-after-fastpath"]']);
      await waitFor(() => completed.length >= 4, 10_000, 'completions').catch(() => undefined);
      // The fastpath call is an execution of its own (so policy and audit see it too).
      assert.deepEqual(completed, [`select 'before-fastpath'`, `-- fastpath function call, function oid ${abs}`, `select 'after-fastpath'`, `select 'extended-after-fastpath'`]);
    } finally {
      await c.terminate();
      await probe.close();
    }
  });

  it('closes a session that made a FunctionCall at once on graceful shutdown, as it is idle', async () => {
    const probe = await startProxy({ database: db.name, shutdownTimeout: '30s' });
    const connectProbe = (): Promise<RawClient> => RawClient.connect({ port: probe.port, user: 'alice', password: 'alice-pw', database: 'dev' });
    const plain = await connectProbe();
    const fast = await connectProbe();
    const abs = Number((await direct(db.name, `select 'abs(integer)'::regprocedure::oid as oid`)).rows[0].oid);
    plain.write(fe.query('select 1'));
    fast.write(fe.functionCall(abs, ['-7']), fe.query('select 1'));
    assert.deepEqual((await plain.untilReady(1)).map(summary), ['T:?column?', 'D:["1"]', 'C:SELECT 1', 'Z:I']);
    assert.deepEqual((await fast.untilReady(2)).map(summary), ['V', 'Z:I', 'T:?column?', 'D:["1"]', 'C:SELECT 1', 'Z:I']);
    const t0 = Date.now();
    const closedAt = (c: RawClient): Promise<number> => c.closed.then(() => Date.now() - t0);
    const [plainMs, fastMs] = await Promise.all([closedAt(plain), closedAt(fast), probe.close()]);
    // Control: an idle session is closed at once with 57P01.
    const plainGot = await plain.drainFor(0);
    assert.deepEqual(plainGot.map(summary), ['E:57P01']);
    assert.equal(errorFields(plainGot[0]!).M, 'terminating connection due to administrator command');
    // Well before the 30 s shutdown deadline (with room for a loaded machine).
    assert.ok(plainMs < 10_000, `the plain idle session closed after ${plainMs} ms`);
    // The session that made a FunctionCall is just as idle.
    const fastGot = await fast.drainFor(0);
    assert.deepEqual(fastGot.map(summary), ['E:57P01']);
    assert.equal(errorFields(fastGot[0]!).M, 'terminating connection due to administrator command', 'closed as idle, not at the shutdown deadline');
    assert.ok(fastMs < 10_000, `the idle session that made a FunctionCall closed after ${fastMs} ms`);
  });

  it('closes cleanly on Terminate, also when pipelined behind a query, and ends the server session', async () => {
    const app = `fid-term-${process.pid}`;
    const c = await viaProxy({ params: { application_name: app } });
    const live = async (): Promise<number> =>
      Number((await direct(db.name, `select count(*)::int as n from pg_stat_activity where application_name = $1`, [app])).rows[0].n);
    assert.equal(await live(), 1);
    c.write(fe.query('select 42'), fe.terminate());
    const got = await c.untilReady(1);
    assert.deepEqual(got.map(summary), ['T:?column?', 'D:["42"]', 'C:SELECT 1', 'Z:I']);
    const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]);
    assert.ok(closed, 'the proxy closed the connection after Terminate');
    assert.equal(c.error, null, 'closed without a socket error');
    assert.deepEqual((await c.drainFor(0)).map(summary), [], 'nothing (no error) sent after Terminate');
    await waitFor(async () => (await live()) === 0, 5000, 'the upstream backend to exit');
  });

  it('relays the server ending a session (FATAL, then close) without adding an error of its own', async () => {
    const ended = async (c: RawClient, app: string, how: 'terminate' | 'idle-timeout'): Promise<string[]> => {
      if (how === 'terminate') {
        await waitFor(async () => (await direct(db.name, `select pg_terminate_backend(pid) as t from pg_stat_activity where application_name = $1`, [app])).rowCount === 1, 5000, 'the backend');
      } else {
        c.write(fe.query('begin'));
        assert.deepEqual((await c.untilReady(1)).map(summary), ['C:BEGIN', 'Z:T']);
      }
      await c.closed;
      return (await c.drainFor(0)).map((m) => `${summary(m)} ${errorFields(m).M}`);
    };
    for (const how of ['terminate', 'idle-timeout'] as const) {
      const app = `fid-fatal-${how}-${process.pid}`;
      const params = { application_name: app, idle_in_transaction_session_timeout: '200' };
      const expected = await ended(await viaDirect({ params }), app, how);
      const actual = await ended(await viaProxy({ params }), app, how);
      assert.deepEqual(expected, [
        how === 'terminate' ? 'E:57P01 terminating connection due to administrator command' : 'E:25P03 terminating connection due to idle-in-transaction timeout',
      ]);
      assert.deepEqual(actual, expected, `${how}: the client sees the server's FATAL only`);
    }
  });

  it('routes a CancelRequest with the key the client was given to the running query', async () => {
    const c = await viaProxy();
    try {
      assert.ok(c.backendKey, 'BackendKeyData received');
      const marker = `fid-cancel-${process.pid}`;
      c.write(fe.query(`select pg_sleep(20) /* ${marker} */`));
      await untilActive(db.name, marker);
      const s = connect({ host: '127.0.0.1', port: proxy.port });
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.end(messages.cancelRequest(c.backendKey!.pid, c.backendKey!.secret));
      const t0 = Date.now();
      const got = await c.untilReady(1, 5000);
      assert.ok(Date.now() - t0 < 5000);
      // RowDescription goes out when execution starts; no row ever comes.
      assert.deepEqual(got.map(summary), ['T:pg_sleep', 'E:57014', 'Z:I']);
      assert.match(errorFields(got[1]!).M!, /canceling statement due to user request/);
      c.write(fe.query('select 1'));
      assert.deepEqual(dataRow((await c.untilReady(1))[1]!), ['1']);
    } finally {
      await c.terminate();
    }
  });
});
