/**
 * Audit sinks against a real SQLite store: the jsonl sink delivers every event in order, rotates
 * at max_bytes and resumes from its saved cursor without duplicates; the webhook sink survives a
 * receiver that fails (503) and then recovers, delivering every event once accepted, in order per
 * writer, with the retries visible in the log.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { SqliteStore } from '../store/sqlite-store.js';
import { keyId, type SigningKey } from './chain.js';
import { recordDirect } from './direct.js';
import type { AuditEvent, EventInput } from './event.js';
import { startSinks, type SinkConfig } from './sinks.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const KEY: SigningKey = { privateKey, publicKey, keyId: keyId(publicKey) };

/** A logger whose lines are kept for assertions. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

/** `n` statement-like events with some padding, so a few of them fill a file. */
function inputs(n: number, tag: string): EventInput[] {
  return Array.from({ length: n }, (_, i) => ({ type: 'statement', session: `s-${tag}`, detail: { i, tag, pad: 'x'.repeat(200) } }));
}

async function waitFor<T>(fn: () => T | Promise<T>, ms = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Lines of all files of a rotated jsonl sink, oldest file first. */
function rawLines(path: string, maxFiles: number): string[] {
  const files = [];
  for (let n = maxFiles; n >= 1; n--) if (existsSync(`${path}.${n}`)) files.push(`${path}.${n}`);
  if (existsSync(path)) files.push(path);
  return files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== ''));
}

const readRotated = (path: string, maxFiles: number): AuditEvent[] => rawLines(path, maxFiles).map((l) => JSON.parse(l) as AuditEvent);

/** "node#seq" for each event, grouped per writer in delivery order. */
function perWriter(events: readonly AuditEvent[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const e of events) out.set(e.node, [...(out.get(e.node) ?? []), e.seq]);
  return out;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('audit sinks', () => {
  let dir: string;
  let store: SqliteStore;

  // A fresh store and directory per test: each sink sees only its test's writers.
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-sinks-'));
    store = new SqliteStore(join(dir, 'gatehouse.db'));
  });
  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('jsonl: delivers every event of every writer in order, as canonical bodies, and rotates at max_bytes', async () => {
    await recordDirect(store.audit, 'j-a', KEY, inputs(30, 'a'));
    await recordDirect(store.audit, 'j-b', KEY, inputs(20, 'b'));
    const sink: SinkConfig = { type: 'jsonl', name: 'rotating', path: 'out/audit.jsonl', max_bytes: 2048, max_files: 100, interval: 20 };
    const { logger } = capturingLogger();
    const sinks = startSinks(store.audit, [sink], { logger, baseDir: dir });
    const path = join(dir, 'out/audit.jsonl');
    try {
      await waitFor(() => readRotated(path, 100).length >= 50, 10_000, 'all 50 events in the files');
      // More events while it runs are picked up by the next poll.
      await recordDirect(store.audit, 'j-a', KEY, inputs(5, 'a2'));
      await waitFor(() => readRotated(path, 100).length >= 55, 10_000, 'the 5 later events');
    } finally {
      await sinks.stop();
    }
    const events = readRotated(path, 100);
    const writers = perWriter(events);
    assert.deepEqual(writers.get('j-a'), range(1, 35));
    assert.deepEqual(writers.get('j-b'), range(1, 20));
    assert.equal(events.length, 55);
    // Lines are the stored canonical bodies, byte for byte.
    const lines = rawLines(path, 100);
    for (const node of ['j-a', 'j-b']) {
      const stored = await store.audit.range(node, 0, 1000);
      assert.deepEqual(lines.filter((l) => (JSON.parse(l) as AuditEvent).node === node), stored.map((e) => e.body));
    }
    // Rotated: several files, none over max_bytes.
    assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`), 'rotated into path.1, path.2, ...');
    for (let n = 1; existsSync(`${path}.${n}`); n++) assert.ok(readFileSync(`${path}.${n}`).length <= 2048, `${path}.${n} is within max_bytes`);
    assert.deepEqual(await store.audit.sinkCursor('rotating'), new Map([['j-a', 35], ['j-b', 20]]));
  });

  it('jsonl: keeps only max_files rotated files, dropping the oldest', async () => {
    await recordDirect(store.audit, 'j-c', KEY, inputs(60, 'c'));
    const sink: SinkConfig = { type: 'jsonl', name: 'few-files', path: join(dir, 'few/audit.jsonl'), max_bytes: 2048, max_files: 2, interval: 20 };
    const sinks = startSinks(store.audit, [sink], { logger: pino({ level: 'silent' }), baseDir: '/nonexistent' });
    const path = join(dir, 'few/audit.jsonl');
    try {
      await waitFor(async () => (await store.audit.sinkCursor('few-files')).get('j-c') === 60, 10_000, 'cursor at 60');
    } finally {
      await sinks.stop();
    }
    assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`));
    assert.ok(!existsSync(`${path}.3`), 'no third rotated file');
    // What is kept is the newest events, contiguous and ending with the last one.
    const kept = readRotated(path, 2).filter((e) => e.node === 'j-c').map((e) => e.seq);
    assert.ok(kept.length > 0 && kept.length < 60);
    assert.deepEqual(kept, range(61 - kept.length, 60));
  });

  it('jsonl: resumes from its saved cursor after stop and start, without duplicates or gaps', async () => {
    const sink: SinkConfig = { type: 'jsonl', name: 'resume', path: 'resume.jsonl', max_bytes: 10 * 1024 * 1024, max_files: 1, interval: 20 };
    const path = join(dir, 'resume.jsonl');
    await recordDirect(store.audit, 'r-a', KEY, inputs(10, 'r1'));
    let sinks = startSinks(store.audit, [sink], { logger: pino({ level: 'silent' }), baseDir: dir });
    await waitFor(async () => (await store.audit.sinkCursor('resume')).get('r-a') === 10, 10_000, 'first 10 delivered');
    await sinks.stop();
    // Written while the sink is stopped.
    await recordDirect(store.audit, 'r-a', KEY, inputs(7, 'r2'));
    await recordDirect(store.audit, 'r-b', KEY, inputs(3, 'r3'));
    sinks = startSinks(store.audit, [sink], { logger: pino({ level: 'silent' }), baseDir: dir });
    try {
      await waitFor(async () => {
        const c = await store.audit.sinkCursor('resume');
        return c.get('r-a') === 17 && c.get('r-b') === 3;
      }, 10_000, 'the rest delivered');
    } finally {
      await sinks.stop();
    }
    const writers = perWriter(readRotated(path, 1));
    assert.deepEqual(writers.get('r-a'), range(1, 17));
    assert.deepEqual(writers.get('r-b'), range(1, 3));
  });

  describe('webhook', () => {
    let server: Server;
    let url: string;
    let failuresLeft = 0;
    let delayMs = 0;
    const attempts: string[] = [];
    const accepted: AuditEvent[] = [];
    const headers: Array<Record<string, string | string[] | undefined>> = [];

    before(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => {
          attempts.push(body);
          headers.push(req.headers);
          if (failuresLeft > 0) {
            failuresLeft--;
            res.writeHead(503).end('try later');
            return;
          }
          setTimeout(() => {
            for (const line of body.split('\n')) if (line !== '') accepted.push(JSON.parse(line) as AuditEvent);
            res.writeHead(204).end();
          }, delayMs);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest?key=secret`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('retries a failing receiver with backoff, then delivers every event exactly once accepted, in order per writer, in batches', async () => {
      await recordDirect(store.audit, 'w-a', KEY, inputs(23, 'wa'));
      await recordDirect(store.audit, 'w-b', KEY, inputs(9, 'wb'));
      failuresLeft = 3;
      const { logger, lines } = capturingLogger();
      const sink: SinkConfig = { type: 'webhook', name: 'siem', url, headers: { authorization: 'Bearer s3cret' }, batch: 10, timeout: 5000, max_backoff: 300, interval: 20 };
      const sinks = startSinks(store.audit, [sink], { logger, baseDir: dir });
      try {
        await waitFor(() => accepted.length >= 32, 20_000, 'all 32 events accepted');
        await recordDirect(store.audit, 'w-b', KEY, inputs(4, 'wb2'));
        await waitFor(() => accepted.length >= 36, 10_000, 'the later 4 events');
      } finally {
        await sinks.stop();
      }
      const writers = perWriter(accepted);
      assert.deepEqual(writers.get('w-a'), range(1, 23), 'w-a: every event once, in order');
      assert.deepEqual(writers.get('w-b'), range(1, 13), 'w-b: every event once, in order');
      assert.equal(accepted.length, 36);
      // 3 refused + w-a in 10, 10, 3 + w-b 9 + w-b 4; the refused requests carried the first batch, sent again.
      assert.equal(attempts.length, 3 + 5);
      assert.equal(attempts[0], attempts[1]);
      assert.equal(attempts[1], attempts[2]);
      assert.ok(attempts.every((b) => b.split('\n').filter(Boolean).length <= 10), 'at most `batch` events per request');
      assert.ok(headers.every((h) => h['content-type'] === 'application/x-ndjson' && h.authorization === 'Bearer s3cret'));
      const warnings = lines.filter((l) => l.event === 'audit_sink_failed');
      assert.equal(warnings.length, 3, 'one warning per failed delivery');
      assert.match(String(warnings[0]!.reason), /HTTP 503/);
      assert.ok(!String(warnings[0]!.msg).includes('secret'), 'the URL query is not logged');
      assert.deepEqual(
        warnings.map((w) => w.retry_in_ms),
        [300, 300, 300],
        'backoff from 1s, capped at max_backoff',
      );
      assert.ok(lines.some((l) => l.event === 'audit_sink_recovered'));
      assert.deepEqual(await store.audit.sinkCursor('siem'), new Map([['w-a', 23], ['w-b', 13]]));
    });

    it('stop() lets the delivery in progress finish and saves its cursor', async () => {
      await recordDirect(store.audit, 's-a', KEY, inputs(5, 'sa'));
      delayMs = 300;
      const before = attempts.length;
      const sink: SinkConfig = { type: 'webhook', name: 'stopping', url, headers: {}, batch: 500, timeout: 5000, max_backoff: 1000, interval: 20 };
      const sinks = startSinks(store.audit, [sink], { logger: pino({ level: 'silent' }), baseDir: dir });
      try {
        await waitFor(() => attempts.length > before, 5000, 'the request to arrive');
      } finally {
        await sinks.stop();
        delayMs = 0;
      }
      // stop() returned only after the answer: the batch was accepted and the cursor saved.
      assert.deepEqual(accepted.filter((e) => e.node === 's-a').map((e) => e.seq), range(1, 5));
      assert.deepEqual(await store.audit.sinkCursor('stopping'), new Map([['s-a', 5]]));
    });

    it('a receiver that is down only delays delivery; nothing is lost while it is unreachable', async () => {
      await recordDirect(store.audit, 'd-a', KEY, inputs(5, 'da'));
      const dead = createServer();
      await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
      const deadPort = (dead.address() as AddressInfo).port;
      await new Promise<void>((r) => dead.close(() => r()));
      const { logger, lines } = capturingLogger();
      const sink: SinkConfig = { type: 'webhook', name: 'nowhere', url: `http://127.0.0.1:${deadPort}/`, headers: {}, batch: 500, timeout: 1000, max_backoff: 100, interval: 20 };
      const sinks = startSinks(store.audit, [sink], { logger, baseDir: dir });
      try {
        await waitFor(() => lines.filter((l) => l.event === 'audit_sink_failed').length >= 2, 10_000, 'two failures');
      } finally {
        await sinks.stop();
      }
      assert.match(String(lines.find((l) => l.event === 'audit_sink_failed')!.reason), /ECONNREFUSED/);
      assert.deepEqual(await store.audit.sinkCursor('nowhere'), new Map(), 'the cursor did not move');
    });
  });
});
