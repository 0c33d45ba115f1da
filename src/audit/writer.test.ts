/**
 * The audit writer with its real thread and a real SQLite file: bodies are stored as the text that
 * was chained, and the WAL is copied back into the database by the checkpointer thread, not left
 * to grow until the writer's own (large) automatic checkpoint.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import pino from 'pino';
import { chainHash, ChainEncoder, generateSigningKey, GENESIS, loadPublicKey } from './chain.js';
import { verifyAudit } from './verify.js';
import { AuditWriter } from './writer.js';
import { SqliteAuditStore } from '../store/sqlite-audit.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-writer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('ChainEncoder', () => {
  it('gives chainHash for ASCII, multibyte and chunk-sized bodies, with each body as UTF-8 bytes', () => {
    const enc = new ChainEncoder(GENESIS);
    const bodies: Buffer[] = [];
    const texts = ['{"a":1}', '{"name":"Zoë 東京 🚀"}', 'x'.repeat(400_000), '', '{"b":"é".repeat}', 'y'.repeat(2_000_000)];
    let expected = GENESIS;
    texts.forEach((t, i) => {
      const h = enc.text(t, bodies, i);
      expected = chainHash(expected, t);
      assert.equal(h, expected, `body ${i}`);
      assert.equal(bodies[i]!.toString('utf8'), t);
    });
    // Earlier bodies stay intact after later ones filled new chunks.
    assert.equal(bodies[1]!.toString('utf8'), texts[1]);
  });

  it('a body built from pieces (numbers as JSON writes them) hashes as its text does, across chunks', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.oneof(fc.string(), fc.string({ unit: 'binary' })),
            fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constant(0)),
            fc.string({ maxLength: 30 }).map((s) => s.replace(/[^ -~]/g, 'a')),
            // Durations as the audit stage rounds them, and any other number.
            fc.oneof(fc.nat({ max: 10_000_000_000 }).map((k) => k / 1000), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0.001, 0.05, 1e-7, 123.4, -0)),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        fc.nat({ max: 300_000 }),
        (parts, pad) => {
          let expected = 'f'.repeat(64);
          const enc = new ChainEncoder(expected);
          const bodies: Buffer[] = [];
          parts.forEach(([text, n, ascii, x], i) => {
            const filler = i === 0 ? 'z'.repeat(pad) : '';
            const body = `${filler}${text}${n}${ascii}${JSON.stringify(x)}`;
            enc.begin(filler.length + text.length * 3 + 20 + ascii.length + 30);
            enc.bytes(Buffer.from(filler));
            enc.utf8(text);
            enc.int(n);
            enc.ascii(ascii);
            enc.decimal(x);
            const h = enc.end(bodies, i);
            expected = chainHash(expected, body);
            assert.equal(h, expected);
            assert.equal(bodies[i]!.toString('utf8'), body);
          });
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('AuditWriter on SQLite', () => {
  it('stores bodies as text that verifies, and checkpoints the WAL from its own thread', async () => {
    const keyPath = join(dir, 'audit.key');
    generateSigningKey(keyPath);
    const file = join(dir, 'audit.db');
    const writer = new AuditWriter({
      node: 'n1',
      store: { kind: 'sqlite', file },
      signingKey: keyPath,
      checkpointEvery: 500,
      checkpointIntervalMs: 10_000,
      flushDelayMs: 5,
      maxBatch: 500,
      maxPending: 100_000,
      busyTimeoutMs: 2000,
      logger: pino({ level: 'silent' }),
    });
    await writer.start();
    try {
      const before = statSync(file).size;
      let last = 0;
      for (let i = 0; i < 3000; i++) {
        last = writer.record({ type: 'statement', session: 's1', statement: { text: `select ${i} -- Zoë`, fingerprint: 'f', kind: 'SELECT', tables: ['t'], protocol: 'simple' }, rows: i });
      }
      await writer.durable(last);
      // Well below the writer's automatic checkpoint: only the checkpointer thread moves these
      // pages from the -wal file into the database file.
      const deadline = Date.now() + 5000;
      while (statSync(file).size <= before + 1_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(statSync(file).size > before + 1_000_000, `database file grew from ${before} to ${statSync(file).size} bytes only`);
    } finally {
      await writer.close();
    }

    const db = new Database(file, { readonly: true });
    try {
      const types = db.prepare('SELECT DISTINCT typeof(body) AS t FROM audit_events').all() as Array<{ t: string }>;
      assert.deepEqual(types, [{ t: 'text' }]);
      const pub = loadPublicKey(keyPath.replace(/\.key$/, '.pub'));
      const result = await verifyAudit(new SqliteAuditStore(db), new Map([[pub.keyId, pub.key]]), { requireSignedTail: true });
      assert.equal(result.ok, true, JSON.stringify(result.problems.slice(0, 2)));
      assert.equal(result.writers[0]!.events, 3000);
    } finally {
      db.close();
    }
  });
});
