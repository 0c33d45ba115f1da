import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import Database from 'better-sqlite3';
import { AuditWriter } from './writer.js';
import { AuditStage } from './stage.js';
import { generateSigningKey, loadPublicKey } from './chain.js';
import { canonicalJson, type AuditEvent } from './event.js';
import { verifyAudit } from './verify.js';
import { SqliteAuditStore } from '../store/sqlite-audit.js';
import type { Decision, Execution, SessionInfo, Statement } from '../session/types.js';
import type { ResolvedConnection } from '../config/load.js';

/** Poll `cond` (the writer thread commits with an fsync: no fixed sleep is long enough on a loaded machine). */
async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'gh-stage-'));
const file = join(dir, 'gatehouse.db');
const keyPath = join(dir, 'audit.key');
generateSigningKey(keyPath);

function writer(extra: Partial<ConstructorParameters<typeof AuditWriter>[0]> = {}): AuditWriter {
  return new AuditWriter({
    node: 'test-node',
    store: { kind: 'sqlite', file },
    signingKey: keyPath,
    checkpointEvery: 50,
    checkpointIntervalMs: 60_000,
    flushDelayMs: 5,
    maxBatch: 100,
    maxPending: 100_000,
    busyTimeoutMs: 200,
    logger: pino({ level: 'silent' }),
    ...extra,
  });
}

function session(name: string, app: string, env = 'production'): SessionInfo {
  return {
    id: `s-${name.length}`,
    identity: { id: `user:${name}`, kind: 'agent', name, groups: ['g"1', 'ü'], attributes: { model: 'm-1' }, authMethod: 'token', credentialId: 'token:abc', onBehalfOf: { id: 'user:alice', name: 'alice', kind: 'human' } },
    connection: { name: 'prod', environment: env } as ResolvedConnection,
    client: { address: '127.0.0.1', port: 5000, tls: true },
    applicationName: app,
    txState: 'idle',
    serverParams: new Map(),
    startedAt: Date.now(),
  };
}

const decision = (text: string, mutates: boolean): Decision => ({
  action: 'allow',
  ruleId: 'r.1',
  matches: [{ id: 'r.1', action: 'allow', mode: 'enforce', controls: [], message: '' }, { id: 'guard.row-cap', action: 'limit_rows', mode: 'dry-run', controls: [], message: '' }],
  statement: { normalized: text, fingerprint: '0123456789abcdef', kind: mutates ? 'UPDATE' : 'SELECT', tables: ['t', 'public.u'], mutates, copyTo: false },
});

function rows(): Array<{ seq: number; type: string; body: string; identity: string; kind: string; tables: string }> {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT seq, type, body, identity, kind, tables FROM audit_events WHERE node = ? ORDER BY seq').all('test-node') as never;
  } finally {
    db.close();
  }
}

describe('audit stage', () => {
  let w: AuditWriter;
  before(async () => {
    w = writer();
    await w.start();
  });
  after(async () => {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hand-built statement events are the canonical JSON of their fields', async () => {
    const stage = new AuditStage(w, { durableEnvironments: ['production'], statementText: 'normalized', refuseReadsOnFailure: false });
    const seen: Array<{ name: string; app: string; text: string; command: string; refusedBy: string | undefined }> = [];
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), fc.string(), fc.constantFrom('SELECT 1', 'UPDATE 3', 'INSERT 0 2', 'DELETE 1', '', 'ODD"TAG\\'), fc.option(fc.string({ unit: 'binary' }), { nil: undefined }), (name, app, text, command, refusedBy) => {
        const s = session(name, app);
        const st: Statement = { text, protocol: 'simple', name: '', decision: decision(text, command.startsWith('UPDATE')) };
        // A refusal also records a breaker.trip event (a full one) right after the statement's.
        const e: Execution = { statement: st, startedAt: 0, rows: 3, command, sqlstate: command === '' ? '42P01' : undefined, refusedBy, durationMs: 1.23456, masked: ['t.email'] };
        stage.complete(s, e);
        seen.push({ name, app, text, command, refusedBy });
      }),
      { numRuns: 200 },
    );
    // Every event queued so far (the statements and the breaker trips after refusals) committed.
    await w.durable(w.committed + w.backlog);
    const stored = rows().filter((r) => r.type === 'statement');
    assert.equal(stored.length, seen.length);
    stored.forEach((r, i) => {
      const parsed = JSON.parse(r.body) as AuditEvent;
      assert.equal(canonicalJson(parsed), r.body, 'body is canonical');
      const x = seen[i]!;
      assert.equal(parsed.identity?.name, x.name);
      assert.equal(parsed.identity?.on_behalf_of, 'alice');
      assert.equal(parsed.client?.application_name, x.app);
      assert.equal(parsed.statement?.text, x.text);
      assert.deepEqual(parsed.statement?.tables, ['t', 'public.u']);
      assert.deepEqual(parsed.masked_columns, ['t.email']);
      assert.equal(parsed.duration_ms, 1.235);
      assert.equal(parsed.refused_by, x.refusedBy);
      if (/^(UPDATE|INSERT|DELETE)/.test(x.command)) assert.equal(parsed.rows_affected, 3);
      else assert.equal(parsed.rows, 3);
      assert.equal(r.identity, x.name);
      assert.equal(r.tables, ',t,public.u,');
    });
  });

  it('holds a production write until its intent is committed; reads and other environments go at once', async () => {
    const stage = new AuditStage(w, { durableEnvironments: ['production'], statementText: 'normalized', refuseReadsOnFailure: false });
    const write: Statement = { text: 'update t set a = 1', protocol: 'simple', name: '', decision: decision('update t set a = ?', true) };
    const read: Statement = { text: 'select 1', protocol: 'simple', name: '', decision: decision('select ?', false) };
    assert.equal(stage.decide(session('bob', 'x'), read), undefined);
    assert.equal(stage.decide(session('bob', 'x', 'development'), write), undefined);
    // Parse is not admitted (no effect); each Execute is.
    assert.equal(stage.decide(session('bob', 'x'), { ...write, protocol: 'extended' }), undefined);
    const before = w.committed;
    const wait = stage.decide(session('bob', 'x'), write);
    assert.ok(wait instanceof Promise);
    assert.equal(await wait, undefined);
    assert.ok(w.committed > before, 'the intent was committed before the statement was let through');
    const intent = rows().find((r) => r.seq === before + 1);
    assert.equal(intent?.type, 'statement.intent');
    assert.equal(intent?.kind, 'UPDATE');
    const exec = stage.admit(session('bob', 'x'), { ...write, protocol: 'extended' });
    assert.ok(exec instanceof Promise);
    assert.equal(await exec, undefined);
  });

  it('records full text when configured', async () => {
    const stage = new AuditStage(w, { durableEnvironments: [], statementText: 'full', refuseReadsOnFailure: false });
    const st: Statement = { text: "select 'secret-literal'", protocol: 'extended', name: 'p', decision: decision('select ?', false) };
    stage.complete(session('carol', 'y'), { statement: st, startedAt: 0, rows: 1, command: 'SELECT 1', sqlstate: undefined, refusedBy: undefined, durationMs: 1 });
    await until(() => w.backlog === 0, 'the event to be committed');
    const last = rows().at(-1)!;
    assert.equal((JSON.parse(last.body) as AuditEvent).statement?.text, "select 'secret-literal'");
  });

  it('the chain written through the stage verifies', async () => {
    await until(() => w.backlog === 0, 'every event to be committed');
    w.checkpoint();
    const signedHead = (): boolean => {
      const reader = new Database(file, { readonly: true });
      try {
        return (reader.prepare('SELECT max(seq) AS seq FROM audit_checkpoints').get() as { seq: number | null }).seq === w.committed;
      } finally {
        reader.close();
      }
    };
    await until(signedHead, 'the checkpoint of the head');
    const db = new Database(file, { readonly: true });
    try {
      const pub = loadPublicKey(keyPath.replace(/\.key$/, '.pub'));
      const result = await verifyAudit(new SqliteAuditStore(db), new Map([[pub.keyId, pub.key]]), { requireSignedTail: true });
      assert.deepEqual(result.problems, []);
      assert.ok(result.writers[0]!.events > 200);
      // The writer thread hands compact events' columns over as UTF-8 bytes: stored as text.
      const kinds = db.prepare("SELECT DISTINCT typeof(node) || typeof(type) || typeof(session) || typeof(identity) || typeof(on_behalf_of) || typeof(connection) || typeof(environment) || typeof(kind) || typeof(tables) || typeof(decision) || typeof(body) || typeof(hash) AS t FROM audit_events WHERE type = 'statement'").all();
      assert.deepEqual(kinds, [{ t: 'text'.repeat(12) }]);
    } finally {
      db.close();
    }
  });
});

describe('audit writer when the store fails', () => {
  it('refuses durable writes while the store is locked, keeps every event, and recovers', async () => {
    const d = mkdtempSync(join(tmpdir(), 'gh-writer-'));
    const f = join(d, 'gatehouse.db');
    const keyPath = join(d, 'audit.key');
    generateSigningKey(keyPath);
    const w = new AuditWriter({
      node: 'n',
      store: { kind: 'sqlite', file: f },
      signingKey: keyPath,
      checkpointEvery: 1000,
      checkpointIntervalMs: 60_000,
      flushDelayMs: 5,
      maxBatch: 100,
      maxPending: 100_000,
      busyTimeoutMs: 100,
      logger: pino({ level: 'silent' }),
    });
    await w.start();
    try {
      const stage = new AuditStage(w, { durableEnvironments: ['production'], statementText: 'normalized', refuseReadsOnFailure: false });
      const write: Statement = { text: 'update t set a = 1', protocol: 'simple', name: '', decision: decision('update t set a = ?', true) };
      // Another process holds the write lock: the store cannot be written.
      const locker = new Database(f);
      locker.exec('BEGIN EXCLUSIVE');
      const refused = (await stage.decide(session('bob', 'x'), write)) as Decision;
      assert.equal(refused.action, 'deny');
      assert.equal(refused.ruleId, 'gatehouse.audit-unavailable');
      assert.equal(refused.sqlstate, '58030');
      assert.equal(w.healthy, false);
      // While unhealthy: refused at once, reads still go.
      const again = (await stage.decide(session('bob', 'x'), write)) as Decision;
      assert.equal(again.action, 'deny');
      assert.equal(stage.decide(session('bob', 'x'), { ...write, decision: decision('select ?', false) }), undefined);
      for (let i = 0; i < 10; i++) w.record({ type: 'policy.reload', detail: { i } });
      locker.exec('ROLLBACK');
      locker.close();
      // Retried with backoff: everything queued lands, in order, without gaps.
      const deadline = Date.now() + 10_000;
      while ((!w.healthy || w.backlog > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(w.healthy, true);
      assert.equal(w.backlog, 0);
      const db = new Database(f, { readonly: true });
      const seqs = (db.prepare('SELECT seq FROM audit_events ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq);
      db.close();
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
      assert.ok(seqs.length >= 11);
      const allowed = await stage.decide(session('bob', 'x'), write);
      assert.equal(allowed, undefined);
    } finally {
      await w.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
