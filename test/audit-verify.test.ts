/**
 * The audit trail's tamper evidence and its CLI, end to end: a real proxy in front of the
 * machine's PostgreSQL records reads, production writes, a refused DROP, a failed login and a
 * token agent's work (checkpoints every 5 events, and at shutdown); then the real `gatehouse`
 * CLI verifies the store, and verifies copies of it tampered with directly in SQLite (one copy
 * per kind of tampering), naming the first broken sequence number each time. Also: export and
 * offline verification, search filters, tail (and --follow), keys generate/show.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync as mkdtemp, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { chainHash, GENESIS, generateSigningKey, keyId, publicKeyFromPem } from '../src/audit/chain.js';
import { canonicalJson, eventColumns, type AuditEvent } from '../src/audit/event.js';
import { createTestDatabase, direct, run, type CommandResult } from './helpers/pg.js';
import { BIN, configYaml, spawnCli, startProxy, waitFor } from './helpers/proxy.js';

const EXTRA = 'audit: { checkpoint: { every: 5 } }\nauth: { tokens: true, cleartext_from_loopback: true }';

interface Row {
  id: number;
  node: string;
  seq: number;
  ts: number;
  identity: string | null;
  body: string;
  hash: string;
}

/** Temporary directories, removed at the end. */
const dirs: string[] = [];
const mkdtempSync = (prefix: string): string => {
  const dir = mkdtemp(prefix);
  dirs.push(dir);
  return dir;
};

const cli = (...args: string[]): Promise<CommandResult> => run(process.execPath, [BIN, ...args], { timeoutMs: 30_000 });

describe('audit verify, export, search, tail and keys', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const stateDir = mkdtempSync(join(tmpdir(), 'gh-audit-state-'));
  let config: string;
  /** The proxy's writer, and its rows and checkpoint seqs after shutdown. */
  let node: string;
  let rows: Row[];
  let cps: number[];
  let last: number;
  /** Every event of every writer (pristine copy), and the --follow run. */
  let all: Row[];
  let followOut = '';
  let followCode: number | null = null;

  before(async () => {
    db = await createTestDatabase();
    await direct(db.name, 'CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int)');
    await direct(db.name, "INSERT INTO accounts VALUES (1, 'ann', 10), (2, 'ben', 20)");
    const proxy = await startProxy({ database: db.name, stateDir, extraYaml: EXTRA });
    config = proxy.loaded.file;
    try {
      const issued = await cli('token', 'create', '--config', config, '--kind', 'agent', '--name', 'report-bot', '--on-behalf-of', 'carol', '--ttl', '1h');
      assert.equal(issued.code, 0, issued.stderr);
      const token = issued.stdout.trim().split('\n').at(-1)!;
      const tail = spawnCli(['audit', 'tail', '--config', config, '--follow', '--interval', '100ms', '-n', '1']);
      // Its first line (the latest event) means it has taken its starting point.
      await waitFor(() => tail.output().includes('\n'), 15_000, 'tail --follow to start');
      const alice = await proxy.client({ user: 'alice', database: 'dev' });
      await alice.query('SELECT owner, balance FROM accounts WHERE id = 1');
      await alice.query('SELECT count(*) FROM accounts');
      const bob = await proxy.client({ user: 'bob', database: 'prod' });
      await bob.query('UPDATE accounts SET balance = balance + 1 WHERE id = 1');
      await bob.query("INSERT INTO accounts VALUES (3, 'cy', 30)");
      await bob.query('UPDATE accounts SET balance = balance - 1 WHERE id = 2');
      await assert.rejects(bob.query('DROP TABLE accounts'), /DROP is not allowed/);
      await bob.query('SELECT balance FROM accounts WHERE id = 3');
      await assert.rejects(proxy.client({ user: 'carol', password: 'wrong', database: 'dev' }), /password/);
      const agent = await proxy.client({ user: 'report-bot', password: token, database: 'dev' });
      await agent.query('SELECT owner FROM accounts');
      await agent.end();
      await alice.query('SELECT 1 AS follow_marker');
      await waitFor(() => tail.output().includes('follow_marker'), 15_000, 'tail --follow to print the marker');
      tail.child.kill('SIGINT');
      followCode = await tail.exited;
      followOut = tail.output();
    } finally {
      await proxy.close();
    }
    const pristine = copyState('pristine');
    const sql = new Database(join(pristine, 'gatehouse.db'), { readonly: true });
    all = sql.prepare('SELECT id, node, seq, ts, identity, body, hash FROM audit_events ORDER BY node, seq').all() as Row[];
    const writers = [...new Set(all.map((r) => r.node))];
    node = writers.find((n) => !n.endsWith('.cli'))!;
    rows = all.filter((r) => r.node === node);
    cps = (sql.prepare('SELECT seq FROM audit_checkpoints WHERE node = ? ORDER BY seq').all(node) as Array<{ seq: number }>).map((c) => c.seq);
    sql.close();
    last = rows.at(-1)!.seq;
  });
  after(async () => {
    await db?.drop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A copy of the state dir after shutdown (db, -wal/-shm if any, keys) with its own config. */
  function copyState(label: string, extraYaml = EXTRA, from = stateDir): string {
    const dir = mkdtempSync(join(tmpdir(), `gh-audit-${label}-`));
    for (const f of ['gatehouse.db', 'gatehouse.db-wal', 'gatehouse.db-shm', 'audit-signing.key', 'audit-signing.pub']) {
      if (existsSync(join(from, f))) copyFileSync(join(from, f), join(dir, f));
    }
    writeFileSync(join(dir, 'gatehouse.yaml'), configYaml({ database: db.name, stateDir: dir, extraYaml }));
    return dir;
  }

  /** Tamper with a fresh copy; returns its config file. */
  function tampered(label: string, fn: (sql: Database.Database) => void, extraYaml = EXTRA, from = stateDir): string {
    const dir = copyState(label, extraYaml, from);
    const sql = new Database(join(dir, 'gatehouse.db'));
    try {
      fn(sql);
    } finally {
      sql.close();
    }
    return join(dir, 'gatehouse.yaml');
  }

  const rowAt = (seq: number): Row => rows.find((r) => r.seq === seq)!;
  /** A statement by bob on prod, after the first checkpoint and before the last event. */
  const target = (): number => rows.find((r) => r.seq > cps[0]! && r.seq < last - 1 && r.identity === 'bob' && JSON.parse(r.body).type === 'statement')!.seq;
  const setBody = (sql: Database.Database, seq: number, event: AuditEvent, hash?: string): void => {
    const body = canonicalJson(event);
    const c = eventColumns(event);
    sql.prepare('UPDATE audit_events SET body = ?, identity = ?, hash = COALESCE(?, hash) WHERE node = ? AND seq = ?').run(body, c.identity, hash ?? null, node, seq);
  };
  const renamed = (seq: number, name: string): AuditEvent => {
    const e = JSON.parse(rowAt(seq).body) as AuditEvent;
    return { ...e, identity: { ...e.identity!, name } };
  };

  async function assertBroken(r: CommandResult, seq: number, reason: RegExp, writer = node): Promise<void> {
    assert.equal(r.code, 1, `verify must fail:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^FAILED: ${escape(writer)} seq ${seq}: `, 'm'), r.stdout);
    assert.match(r.stdout.split('\n').find((l) => l.startsWith(`FAILED: ${writer} seq`))!, reason);
    assert.match(r.stderr, new RegExp(`TAMPERING DETECTED.*first broken sequence number: seq ${seq} of writer ${escape(writer)}`), r.stderr);
    assert.ok(!r.stderr.includes('    at '), 'no stack trace');
  }
  const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('the run produced several checkpoints, a signed tail (shutdown checkpoint) and a CLI writer', () => {
    assert.ok(cps.length >= 3, `checkpoints at ${cps.join(',')}`);
    assert.equal(cps.at(-1), last, 'the shutdown checkpoint signs the last event');
    assert.ok(all.some((r) => r.node === `${node}.cli` && JSON.parse(r.body).type === 'token.issue'));
    const types = new Set(rows.map((r) => JSON.parse(r.body).type as string));
    for (const t of ['node.start', 'session.start', 'statement', 'statement.intent', 'auth.failure', 'node.stop']) assert.ok(types.has(t), `has ${t}: ${[...types].join(',')}`);
  });

  it('verify --config passes on the untouched store and reports each writer', async () => {
    const r = await cli('audit', 'verify', '--config', config, '--require-signed-tail');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^writer ${escape(node)}: ${rows.length} event\\(s\\), seq 1\\.\\.${last}, ${cps.length} checkpoint\\(s\\), signed through seq ${last}, unsigned tail 0 event\\(s\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^writer ${escape(node)}\\.cli: 1 event\\(s\\)`, 'm'));
    assert.match(r.stdout, /^OK$/m);
  });

  describe('tampering with the SQLite store is detected at the first broken seq', { concurrency: true }, () => {
    it('(a) an event body rewritten (identity inside the body and its column, stored hash kept)', async () => {
      const k = target();
      const cfg = tampered('a', (sql) => setBody(sql, k, renamed(k, 'mallory')));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, /does not match its chain hash/);
    });

    it('(a2) an event body rewritten, its indexed column left alone', async () => {
      const k = target();
      const body = rowAt(k).body.replace('"name":"bob"', '"name":"mallory"');
      assert.notEqual(body, rowAt(k).body);
      const cfg = tampered('a2', (sql) => sql.prepare('UPDATE audit_events SET body = ? WHERE node = ? AND seq = ?').run(body, node, k));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, /stored identity "bob" differs from the signed event's "mallory"/);
    });

    it('(b) only an indexed column (identity) changed, the body left alone', async () => {
      const k = target();
      const cfg = tampered('b', (sql) => sql.prepare("UPDATE audit_events SET identity = 'mallory' WHERE node = ? AND seq = ?").run(node, k));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, /stored identity "mallory" differs/);
    });

    it('(c) an event deleted in the middle', async () => {
      const k = target();
      const cfg = tampered('c', (sql) => sql.prepare('DELETE FROM audit_events WHERE node = ? AND seq = ?').run(node, k));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, new RegExp(`event ${k} is missing`));
    });

    it('(d) a forged event appended after the last one, with a made-up hash', async () => {
      const forged: AuditEvent = { ...(JSON.parse(rowAt(last).body) as AuditEvent), seq: last + 1, type: 'statement.intent' };
      const cfg = tampered('d', (sql) => {
        const c = eventColumns(forged);
        sql
          .prepare('INSERT INTO audit_events (node, seq, ts, type, session, identity, on_behalf_of, connection, environment, kind, tables, decision, body, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(c.node, c.seq, c.ts, c.type, c.session, c.identity, c.on_behalf_of, c.connection, c.environment, c.kind, c.tables, c.decision, canonicalJson(forged), randomBytes(32).toString('hex'));
      });
      await assertBroken(await cli('audit', 'verify', '--config', cfg), last + 1, /does not match its chain hash/);
    });

    it('(d2) a forged event spliced into the middle by shifting the following seqs', async () => {
      const k = target();
      const forged = { ...renamed(k, 'mallory'), seq: k };
      const cfg = tampered('d2', (sql) => {
        sql.prepare('UPDATE audit_events SET seq = seq + 1000000 WHERE node = ? AND seq >= ?').run(node, k);
        sql.prepare('UPDATE audit_events SET seq = seq - 999999 WHERE node = ? AND seq >= 1000000').run(node);
        const c = eventColumns(forged);
        sql
          .prepare('INSERT INTO audit_events (node, seq, ts, type, session, identity, on_behalf_of, connection, environment, kind, tables, decision, body, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(c.node, c.seq, c.ts, c.type, c.session, c.identity, c.on_behalf_of, c.connection, c.environment, c.kind, c.tables, c.decision, canonicalJson(forged), randomBytes(32).toString('hex'));
      });
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, /does not match its chain hash/);
    });

    it('(e) two events reordered (bodies, columns and hashes swapped)', async () => {
      const k = target();
      const cfg = tampered('e', (sql) => {
        const cols = 'ts, type, session, identity, on_behalf_of, connection, environment, kind, tables, decision, body, hash';
        const get = sql.prepare(`SELECT ${cols} FROM audit_events WHERE node = ? AND seq = ?`);
        const a = get.get(node, k) as Record<string, unknown>;
        const b = get.get(node, k + 1) as Record<string, unknown>;
        const set = sql.prepare(`UPDATE audit_events SET ${cols.split(', ').map((c) => `${c} = @${c}`).join(', ')} WHERE node = @node AND seq = @seq`);
        set.run({ ...b, node, seq: k });
        set.run({ ...a, node, seq: k + 1 });
      });
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, new RegExp(`claims to be ${escape(node)}#${k + 1}`));
    });

    it('(f) an event rewritten and every following hash recomputed: the next checkpoint catches it', async () => {
      const k = target();
      const cfg = tampered('f', (sql) => {
        setBody(sql, k, renamed(k, 'mallory'));
        let prev = k === 1 ? GENESIS : rowAt(k - 1).hash;
        for (const r of sql.prepare('SELECT seq, body FROM audit_events WHERE node = ? AND seq >= ? ORDER BY seq').all(node, k) as Array<{ seq: number; body: string }>) {
          prev = chainHash(prev, r.body);
          sql.prepare('UPDATE audit_events SET hash = ? WHERE node = ? AND seq = ?').run(prev, node, r.seq);
        }
      });
      // The chain is consistent again; only the signed checkpoint after k disagrees, so the stretch
      // since the previous checkpoint is what is named.
      const from = Math.max(0, ...cps.filter((c) => c < k)) + 1;
      const to = cps.find((c) => c >= k)!;
      await assertBroken(await cli('audit', 'verify', '--config', cfg), from, new RegExp(`events ${from}\\.\\.${to} do not match the signed checkpoint`));
    });

    it('(g) the tail covered by the last checkpoint cut (last 3 events deleted)', async () => {
      const cfg = tampered('g', (sql) => sql.prepare('DELETE FROM audit_events WHERE node = ? AND seq > ?').run(node, last - 3));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), last - 2, new RegExp(`events ${last - 2}\\.\\.${last} were cut`));
    });

    it('(h) the head deleted (events 1..3) without a retention record', async () => {
      const cfg = tampered('h', (sql) => sql.prepare('DELETE FROM audit_events WHERE node = ? AND seq <= 3').run(node));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), 1, /events 1\.\.3 are missing/);
    });

    it('(h2) the head deleted through a checkpoint, as retention would, but with no retention event', async () => {
      const c = cps[0]!;
      const cfg = tampered('h2', (sql) => {
        sql.prepare('DELETE FROM audit_events WHERE node = ? AND seq <= ?').run(node, c);
        sql.prepare('DELETE FROM audit_checkpoints WHERE node = ? AND seq < ?').run(node, c);
      });
      await assertBroken(await cli('audit', 'verify', '--config', cfg), 1, new RegExp(`events 1\\.\\.${c} are missing and no recorded retention run deleted them`));
    });

    it('(i) a checkpoint signature modified', async () => {
      const c = cps[1]!;
      const cfg = tampered('i', (sql) => {
        const { signature } = sql.prepare('SELECT signature FROM audit_checkpoints WHERE node = ? AND seq = ?').get(node, c) as { signature: string };
        const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
        sql.prepare('UPDATE audit_checkpoints SET signature = ? WHERE node = ? AND seq = ?').run(flipped, node, c);
      });
      await assertBroken(await cli('audit', 'verify', '--config', cfg), c, /signature of the checkpoint .* is not valid/);
    });

    it('(i2) a checkpoint hash moved to match a rewritten chain is caught by its signature', async () => {
      const c = cps[1]!;
      const cfg = tampered('i2', (sql) => sql.prepare("UPDATE audit_checkpoints SET hash = ? WHERE node = ? AND seq = ?").run('00'.repeat(32), node, c));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), c, /signature of the checkpoint .* is not valid/);
    });

    it('(j) a body replaced by canonical JSON that is not an event (null)', async () => {
      const k = target();
      const cfg = tampered('j', (sql) => sql.prepare("UPDATE audit_events SET body = 'null' WHERE node = ? AND seq = ?").run(node, k));
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, /is not an audit event/);
    });

    it('(k) every checkpoint deleted and the chain recomputed: only a warning about the long unsigned tail (a known limit)', async () => {
      const k = target();
      // max_batch 1: a running writer then leaves at most every + 1 = 6 events unsigned.
      const cfg = tampered(
        'k',
        (sql) => {
          sql.prepare('DELETE FROM audit_checkpoints WHERE node = ?').run(node);
          setBody(sql, k, renamed(k, 'mallory'));
          let prev: string = rowAt(k - 1).hash;
          for (const r of sql.prepare('SELECT seq, body FROM audit_events WHERE node = ? AND seq >= ? ORDER BY seq').all(node, k) as Array<{ seq: number; body: string }>) {
            prev = chainHash(prev, r.body);
            sql.prepare('UPDATE audit_events SET hash = ? WHERE node = ? AND seq = ?').run(prev, node, r.seq);
          }
        },
        'audit: { checkpoint: { every: 5 }, max_batch: 1 }\nauth: { tokens: true, cleartext_from_loopback: true }',
      );
      const r = await cli('audit', 'verify', '--config', cfg);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`warning: writer ${escape(node)} has ${last} events after its last checkpoint.*checkpoints may have been deleted`));
      await assertBroken(await cli('audit', 'verify', '--config', cfg, '--require-signed-tail'), 1, /not signed/);
    });

    it('a key other than the signing key is not trusted (--public-key)', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-other-key-'));
      generateSigningKey(join(dir, 'other.key'));
      const r = await cli('audit', 'verify', '--config', config, '--public-key', join(dir, 'other.pub'));
      await assertBroken(r, cps[0]!, /not a trusted public key/);
    });

    it('an unsigned tail passes, and fails with --require-signed-tail', async () => {
      const cfg = tampered('tail', (sql) => sql.prepare('DELETE FROM audit_checkpoints WHERE node = ? AND seq = ?').run(node, last));
      const loose = await cli('audit', 'verify', '--config', cfg);
      assert.equal(loose.code, 0, loose.stdout + loose.stderr);
      const prev = cps.at(-2)!;
      assert.match(loose.stdout, new RegExp(`signed through seq ${prev}, unsigned tail ${last - prev} event\\(s\\)`));
      await assertBroken(await cli('audit', 'verify', '--config', cfg, '--require-signed-tail'), prev + 1, /not signed/);
    });
  });

  describe('repeated statements stored against a template of their batch', { concurrency: true }, () => {
    const tplState = mkdtempSync(join(tmpdir(), 'gh-audit-tpl-'));
    /** Events stored against a template: seq and template key (the seq of the template's first event). */
    let templated: Array<{ node: string; seq: number; tpl: number }>;
    before(async () => {
      const proxy = await startProxy({ database: db.name, stateDir: tplState, extraYaml: EXTRA });
      try {
        // Reads on dev are committed in batches (within the flush delay): repeats share a batch.
        const c = await proxy.client({ user: 'alice', database: 'dev' });
        for (let i = 0; i < 40; i++) await c.query('SELECT owner FROM accounts WHERE id = 1');
        await c.end();
      } finally {
        await proxy.close();
      }
      const sql = new Database(join(tplState, 'gatehouse.db'), { readonly: true });
      templated = sql.prepare('SELECT node, seq, tpl FROM audit_events WHERE tpl IS NOT NULL ORDER BY seq').all() as typeof templated;
      sql.close();
    });

    it('are stored so, read back whole (search), and verify', async () => {
      assert.ok(templated.length >= 10, `${templated.length} event(s) stored against a template`);
      const r = await cli('audit', 'verify', '--config', join(copyState('tpl-ok', EXTRA, tplState), 'gatehouse.yaml'), '--require-signed-tail');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const found = await cli('audit', 'search', '--config', join(copyState('tpl-search', EXTRA, tplState), 'gatehouse.yaml'), '--identity', 'alice', '--json', '--limit', '1000');
      assert.equal(found.code, 0, found.stderr);
      const events = found.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditEvent & { statement?: { text: string } });
      const e = events.find((x) => x.seq === templated[3]!.seq)!;
      assert.equal(e.type, 'statement');
      assert.equal(e.statement?.text, 'select owner from accounts where id = ?');
      assert.equal(e.identity?.name, 'alice');
    });

    it('(t1) a template altered is detected at the first event stored against it', async () => {
      const { node: n, tpl } = templated[0]!;
      const cfg = tampered('t1', (sql) => assert.equal(sql.prepare(`UPDATE audit_templates SET middle = replace(middle, '"name":"alice"', '"name":"mallory"') WHERE tpl_node = ? AND tpl_first = ?`).run(n, tpl).changes, 1), EXTRA, tplState);
      await assertBroken(await cli('audit', 'verify', '--config', cfg), tpl, /./, n);
    });

    it('(t2) a template deleted is detected at the first event stored against it', async () => {
      const { node: n, tpl } = templated[0]!;
      const cfg = tampered('t2', (sql) => sql.prepare('DELETE FROM audit_templates WHERE tpl_node = ? AND tpl_first = ?').run(n, tpl), EXTRA, tplState);
      await assertBroken(await cli('audit', 'verify', '--config', cfg), tpl, /not a valid audit event/, n);
    });

    it("(t3) an event's own value (its duration) changed is detected at that event", async () => {
      const { node: n, seq: k } = templated[5]!;
      const cfg = tampered('t3', (sql) => sql.prepare("UPDATE audit_events SET body = '99.5' WHERE node = ? AND seq = ?").run(n, k), EXTRA, tplState);
      await assertBroken(await cli('audit', 'verify', '--config', cfg), k, /does not match its chain hash/, n);
    });
  });

  describe('export and offline verification', () => {
    let exported: string;
    let pub: string;
    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-export-'));
      exported = join(dir, 'audit.jsonl');
      pub = join(dir, 'auditor-copy.pub');
      copyFileSync(join(stateDir, 'audit-signing.pub'), pub);
      const r = await cli('audit', 'export', '--config', config, '--format', 'jsonl', '--output', exported);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`exported ${all.length} event\\(s\\)`));
    });
    const lines = (): string[] => readFileSync(exported, 'utf8').trimEnd().split('\n');
    const tamperedFile = (label: string, fn: (lines: string[]) => string[]): string => {
      const f = join(mkdtempSync(join(tmpdir(), `gh-export-${label}-`)), 'audit.jsonl');
      writeFileSync(f, `${fn(lines()).join('\n')}\n`);
      return f;
    };
    const eventLine = (ls: string[], seq: number): number => ls.findIndex((l) => l.startsWith('{"record":"event"') && JSON.parse(l).node === node && JSON.parse(l).seq === seq);

    it('writes a header with the public key, then every event and checkpoint; mode 0600; stdout gives the same', async () => {
      const ls = lines();
      const header = JSON.parse(ls[0]!);
      assert.equal(header.format, 'gatehouse-audit-export');
      assert.equal(header.version, 1);
      const pem = readFileSync(pub, 'utf8');
      assert.deepEqual(header.public_keys, { [keyId(publicKeyFromPem(pem))]: pem });
      const records = ls.slice(1).map((l) => JSON.parse(l));
      const events = records.filter((r) => r.record === 'event');
      assert.equal(events.length, all.length);
      assert.equal(records.filter((r) => r.record === 'checkpoint' && r.node === node).length, cps.length);
      // Bodies exactly as stored, writers in order, seqs in order, checkpoints after their event.
      assert.deepEqual(events.map((e) => [e.node, e.seq, e.hash, e.body]), all.map((r) => [r.node, r.seq, r.hash, r.body]));
      const at = ls.findIndex((l) => l.startsWith('{"record":"checkpoint"') && JSON.parse(l).node === node && JSON.parse(l).seq === cps[0]);
      assert.equal(at - 1, eventLine(ls, cps[0]!));
      assert.equal(statSync(exported).mode & 0o777, 0o600);
      const out = await cli('audit', 'export', '--config', config);
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(out.stdout.trimEnd().split('\n').slice(1), ls.slice(1));
    });

    it('verifies offline with the auditor\'s public key; without one it trusts the header and warns', async () => {
      const r = await cli('audit', 'verify', '--file', exported, '--public-key', pub, '--require-signed-tail');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^OK$/m);
      assert.match(r.stdout, new RegExp(`^writer ${escape(node)}: ${rows.length} event\\(s\\), seq 1\\.\\.${last}`, 'm'));
      assert.ok(!r.stderr.includes('warning'), r.stderr);
      const trusting = await cli('audit', 'verify', '--file', exported);
      assert.equal(trusting.code, 0, trusting.stdout + trusting.stderr);
      assert.match(trusting.stderr, /warning: no --public-key given: trusting the public key\(s\) in the export's own header/);
    });

    it('one altered line fails, naming its seq', async () => {
      const k = target();
      const f = tamperedFile('body', (ls) => {
        const i = eventLine(ls, k);
        const r = JSON.parse(ls[i]!);
        ls[i] = JSON.stringify({ ...r, body: r.body.replace('"name":"bob"', '"name":"mallory"') });
        return ls;
      });
      await assertBroken(await cli('audit', 'verify', '--file', f, '--public-key', pub), k, /does not match its chain hash/);
    });

    it('a deleted line fails, naming its seq; a broken line is reported by line number', async () => {
      const k = target();
      const deleted = tamperedFile('deleted', (ls) => ls.filter((_, i) => i !== eventLine(ls, k)));
      await assertBroken(await cli('audit', 'verify', '--file', deleted, '--public-key', pub), k, new RegExp(`event ${k} is missing`));
      let lineNo = 0;
      const broken = tamperedFile('broken', (ls) => {
        const i = eventLine(ls, k);
        lineNo = i + 1;
        ls[i] = ls[i]!.slice(0, 40);
        return ls;
      });
      const r = await cli('audit', 'verify', '--file', broken, '--public-key', pub);
      await assertBroken(r, k, /missing/);
      assert.match(r.stdout, new RegExp(`^FAILED: ${escape(broken)} line ${lineNo}: not valid JSON`, 'm'));
    });

    it('a different public key fails (unknown key), naming the first checkpoint', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-other-key-'));
      generateSigningKey(join(dir, 'other.key'));
      await assertBroken(await cli('audit', 'verify', '--file', exported, '--public-key', join(dir, 'other.pub')), cps[0]!, /not a trusted public key/);
    });

    it('a file that is not an export is a one-line usage error', async () => {
      const r = await cli('audit', 'verify', '--file', config);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^gatehouse: --file: ".*" is not a Gatehouse audit export/);
      assert.ok(!r.stderr.includes('TAMPERING'));
    });
  });

  describe('search and tail', { concurrency: true }, () => {
    const events = (): AuditEvent[] => all.map((r) => JSON.parse(r.body) as AuditEvent);
    /** Newest first, as the store orders them. */
    const newest = (rs: Row[]): Row[] => [...rs].sort((a, b) => b.ts - a.ts || (a.node < b.node ? 1 : a.node > b.node ? -1 : b.seq - a.seq));
    const search = async (...args: string[]): Promise<string[]> => {
      const r = await cli('audit', 'search', '--config', config, '--json', '--limit', '100000', ...args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean);
    };
    const expectSearch = async (args: string[], pred: (e: AuditEvent) => boolean): Promise<void> => {
      const got = await search(...args);
      const want = newest(all.filter((r) => pred(JSON.parse(r.body) as AuditEvent))).map((r) => r.body);
      assert.ok(want.length > 0, `${args.join(' ')} matches something`);
      assert.deepEqual(got, want, args.join(' '));
    };

    it('--json prints each event\'s canonical body, one per line, newest first', async () => {
      const got = await search();
      assert.equal(got.length, all.length);
      for (const line of got) assert.equal(canonicalJson(JSON.parse(line)), line);
      assert.deepEqual(got, newest(all).map((r) => r.body));
      const oldest = await search('--order', 'oldest');
      assert.deepEqual(oldest, [...got].reverse());
    });

    it('filters by identity, on-behalf-of, connection, environment, kind, table, decision, type', async () => {
      const session = events().find((e) => e.identity?.name === 'report-bot' && e.session !== undefined)!.session!;
      // Each check spawns the CLI: run them side by side.
      await Promise.all([
        expectSearch(['--identity', 'carol'], (e) => e.identity?.name === 'carol'),
        search('--identity', 'carol').then((ls) => assert.ok(ls.some((l) => JSON.parse(l).type === 'auth.failure'), 'the failed login is carol\'s')),
        expectSearch(['--on-behalf-of', 'carol'], (e) => e.identity?.on_behalf_of === 'carol'),
        search('--on-behalf-of', 'carol').then((ls) => assert.ok(ls.every((l) => JSON.parse(l).identity.name === 'report-bot'))),
        expectSearch(['--connection', 'prod'], (e) => e.connection?.name === 'prod'),
        expectSearch(['--environment', 'development'], (e) => e.connection?.environment === 'development'),
        expectSearch(['--kind', 'update'], (e) => e.statement?.kind === 'UPDATE'),
        expectSearch(['--table', 'accounts', '--kind', 'SELECT'], (e) => e.statement?.kind === 'SELECT' && e.statement.tables.includes('accounts')),
        expectSearch(['--decision', 'deny'], (e) => e.decision?.action === 'deny'),
        search('--decision', 'deny').then((ls) => assert.ok(ls.some((l) => JSON.parse(l).statement.kind === 'DROP'))),
        expectSearch(['--type', 'statement', '--identity', 'bob', '--environment', 'production'], (e) => e.type === 'statement' && e.identity?.name === 'bob' && e.connection?.environment === 'production'),
        expectSearch(['--session', session], (e) => e.session === session),
      ]);
    });

    it('--since/--until take durations ago or ISO times; --limit bounds the output', async () => {
      const mid = newest(all)[5]!.ts;
      await Promise.all([
        search('--since', '1h').then((ls) => assert.equal(ls.length, all.length)),
        search('--until', '1h').then((ls) => assert.equal(ls.length, 0)),
        expectSearch(['--since', new Date(mid).toISOString()], (e) => e.ts >= mid),
        expectSearch(['--until', new Date(mid).toISOString()], (e) => e.ts < mid),
        search('--limit', '3').then((ls) => assert.deepEqual(ls, newest(all).slice(0, 3).map((r) => r.body))),
      ]);
      const bad = await cli('audit', 'search', '--config', config, '--since', 'yesterday');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^gatehouse: --since: expected an ISO time .* got "yesterday"\n$/);
    });

    it('human-readable lines: time node#seq type identity (for whom) connection/env decision kind tables text', async () => {
      const r = await cli('audit', 'search', '--config', config, '--decision', 'deny', '--limit', '1');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z ${escape(node)}#\\d+ statement bob prod/production deny\\(guard\\.drop\\) DROP accounts drop table accounts\\n$`));
      const agent = await cli('audit', 'search', '--config', config, '--on-behalf-of', 'carol', '--kind', 'select');
      assert.match(agent.stdout, / statement report-bot \(for carol\) dev\/development allow SELECT accounts select owner from accounts$/m);
    });

    it('tail -n prints the latest events, oldest of them first', async () => {
      const r = await cli('audit', 'tail', '--config', config, '-n', '4', '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trimEnd().split('\n'), newest(all).slice(0, 4).reverse().map((x) => x.body));
      const human = await cli('audit', 'tail', '--config', config, '-n', '1');
      assert.match(human.stdout, new RegExp(`^\\S+Z ${escape(node)}#${last} node\\.stop - - - - - \\{"pid":\\d+,"worker":\\d+\\}\\n$`));
    });

    it('tail --follow printed new events as they arrived and exited 0 on SIGINT', () => {
      assert.equal(followCode, 0, followOut);
      assert.match(followOut, / statement alice dev\/development allow SELECT - select \? as follow_marker$/m);
      assert.match(followOut, / auth\.failure carol dev\/development - - - /m);
      assert.match(followOut, / statement bob prod\/production deny\(guard\.drop\) DROP accounts drop table accounts$/m);
    });
  });

  describe('keys', () => {
    it('generate writes a 0600 key and its public key, refuses to overwrite without --force; show prints it', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-keys-'));
      const cfg = join(dir, 'gatehouse.yaml');
      writeFileSync(cfg, configYaml({ database: 'postgres', stateDir: join(dir, 'state') }));
      const key = join(dir, 'state', 'audit-signing.key');
      const pubPath = join(dir, 'state', 'audit-signing.pub');
      const r = await cli('keys', 'generate', '--config', cfg);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(statSync(key).mode & 0o777, 0o600);
      const id = keyId(publicKeyFromPem(readFileSync(pubPath, 'utf8')));
      assert.match(r.stdout, new RegExp(`private key: ${escape(key)} `));
      assert.match(r.stdout, new RegExp(`public key: +${escape(pubPath)} `));
      assert.match(r.stdout, new RegExp(`key id: +${id}$`, 'm'));
      const original = readFileSync(key, 'utf8');
      const again = await cli('keys', 'generate', '--config', cfg);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /^gatehouse: .*audit-signing\.key: a signing key already exists; refusing to overwrite it \(pass --force/);
      assert.equal(readFileSync(key, "utf8"), original);
      const forced = await cli('keys', 'generate', '--config', cfg, '--force');
      assert.equal(forced.code, 0, forced.stderr);
      assert.notEqual(readFileSync(key, "utf8"), original);
      assert.equal(statSync(key).mode & 0o777, 0o600);
      const newId = keyId(publicKeyFromPem(readFileSync(pubPath, 'utf8')));
      assert.notEqual(newId, id);
      assert.match(forced.stdout, new RegExp(`replaced key ${id}; its public key is kept at .*audit-signing\\.${id}\\.pub`));
      assert.equal(keyId(publicKeyFromPem(readFileSync(join(dir, 'state', `audit-signing.${id}.pub`), 'utf8'))), id);
      const show = await cli('keys', 'show', '--config', cfg);
      assert.equal(show.code, 0, show.stderr);
      assert.ok(show.stdout.startsWith(readFileSync(pubPath, 'utf8')), show.stdout);
      assert.match(show.stdout, new RegExp(`^key id: ${newId}$`, 'm'));
    });
  });
});
