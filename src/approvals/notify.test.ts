/**
 * Approval notifications against real HTTP receivers on 127.0.0.1: the webhook and Slack bodies,
 * headers, retries with backoff, a target that never answers, and per-target order.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { createNotifier, slackMessage, type NotifyTarget } from './notify.js';
import type { ApprovalRequest } from './request.js';
import { FIXTURE_NOW, sampleRequest } from './fixture.test-helper.js';

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly json: Record<string, unknown>;
}

interface Receiver {
  readonly url: string;
  readonly got: Received[];
  /** Resolves once `n` requests have arrived. */
  waitFor(n: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** An HTTP receiver; `answer(n, res)` handles the n-th request (0-based). */
async function receiver(answer: (n: number, res: ServerResponse) => void = (_n, res) => res.end('ok')): Promise<Receiver> {
  const got: Received[] = [];
  const waiters: Array<() => void> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const n = got.length;
      got.push({ headers: req.headers, body, json: JSON.parse(body) as Record<string, unknown> });
      for (const w of waiters.splice(0)) w();
      answer(n, res);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook/secret-path`,
    got,
    async waitFor(n, ms = 5000) {
      const deadline = Date.now() + ms;
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} requests, got ${got.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

interface LogLine {
  level: number;
  event?: string;
  target?: string;
  attempt?: number;
  reason?: string;
  msg: string;
}

function logger(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

function target(url: string, o: Partial<NotifyTarget> = {}): NotifyTarget {
  return { type: 'webhook', name: 'soc', url, headers: {}, timeout: 2000, retries: 5, max_backoff: 60_000, ...o } as NotifyTarget;
}

const NOW = FIXTURE_NOW;

const request = (o: Partial<ApprovalRequest> = {}): ApprovalRequest => sampleRequest({ ...o });

const approved = (r: ApprovalRequest): ApprovalRequest => ({ ...r, status: 'approved', votes: [{ name: 'bob', verdict: 'approve', at: NOW + 1000 }], decidedAt: NOW + 1000, runUntil: NOW + 3_601_000 });

describe('approval notifier', () => {
  it('POSTs the webhook body with the configured headers as JSON', async () => {
    const rx = await receiver();
    const { log } = logger();
    const n = createNotifier([target(rx.url, { headers: { authorization: 'Bearer hook-token', 'Content-Type': 'text/plain', 'x-extra': 'yes' } })], { logger: log, publicUrl: 'https://gatehouse.example.com/' });
    const r = request();
    n.notify('created', r);
    await rx.waitFor(1);
    await n.stop(1000);
    const [m] = rx.got;
    assert.equal(m!.headers['content-type'], 'application/json');
    assert.equal(m!.headers.authorization, 'Bearer hook-token');
    assert.equal(m!.headers['x-extra'], 'yes');
    assert.deepEqual(m!.json, { event: 'approval.created', request: JSON.parse(JSON.stringify(r)), url: 'https://gatehouse.example.com/api/approvals/apr_abcdefghijklmnopqrst' });
  });

  it('POSTs a Slack message with text and blocks naming the statement, requester, rule and link', async () => {
    const rx = await receiver();
    const { log } = logger();
    const n = createNotifier([target(rx.url, { type: 'slack', name: 'dba-channel' })], { logger: log, publicUrl: 'http://127.0.0.1:8080' });
    const r = request({ statement: "UPDATE t SET note = '<b>&' WHERE id > 1" });
    n.notify('created', r);
    await rx.waitFor(1);
    await n.stop(1000);
    const body = rx.got[0]!.json as { text: string; blocks: Array<{ type: string; text: { type: string; text: string } }> };
    assert.equal(rx.got[0]!.headers['content-type'], 'application/json');
    assert.ok(Array.isArray(body.blocks) && body.blocks.length > 0);
    for (const b of body.blocks) {
      assert.equal(b.type, 'section');
      assert.equal(b.text.type, 'mrkdwn');
    }
    const blocks = body.blocks.map((b) => b.text.text).join('\n');
    for (const text of [body.text, blocks]) {
      assert.match(text, /Approval requested/);
      assert.ok(text.includes("```UPDATE t SET note = '&lt;b&gt;&amp;' WHERE id &gt; 1```"), text);
      assert.ok(text.includes('agent-7'), text);
      assert.ok(text.includes('on behalf of alice'), text);
      assert.ok(text.includes('prod-db (production)'), text);
      assert.ok(text.includes('guard.ddl-approval'), text);
      assert.ok(text.includes('DDL on production requires approval'), text);
      assert.ok(text.includes('1 approval from dba'), text);
      assert.ok(text.includes('2024-05-01T12:10:00Z'), text);
      assert.ok(text.includes('http://127.0.0.1:8080/api/approvals/apr_abcdefghijklmnopqrst'), text);
      assert.ok(text.includes('gatehouse approvals approve apr_abcdefghijklmnopqrst'), text);
      assert.ok(!text.includes('<b>'), 'user text is escaped');
    }
  });

  it('says what happened in Slack: approved, denied, expired, cancelled', () => {
    const r = request();
    assert.match(slackMessage('approved', approved(r), 'http://x').text, /:white_check_mark: \*Approved by bob\*/);
    const denied: ApprovalRequest = { ...r, status: 'denied', votes: [{ name: 'bob', verdict: 'deny', at: NOW, reason: 'not during the <freeze>' }], reason: 'not during the <freeze>' };
    assert.match(slackMessage('denied', denied, 'http://x').text, /:x: \*Denied by bob: not during the &lt;freeze&gt;\*/);
    assert.match(slackMessage('expired', { ...r, status: 'expired', reason: 'no decision before the expiry' }, 'http://x').text, /Expired/);
    assert.match(slackMessage('cancelled', { ...r, status: 'cancelled', reason: 'the client cancelled' }, 'http://x').text, /Cancelled.*the client cancelled/);
    const auto: ApprovalRequest = { ...r, status: 'approved', votes: [{ name: 'policy', verdict: 'approve', at: NOW, rule: 'ci.window' }] };
    assert.match(slackMessage('approved', auto, 'http://x').text, /Approved by policy \(rule ci\.window\)/);
    // No on-behalf-of when there is none.
    const own = slackMessage('created', request({ requester: { name: 'carol', kind: 'human', groups: [] } }), 'http://x').text;
    assert.ok(own.includes('carol (human)') && !own.includes('on behalf of'), own);
  });

  it('truncates long statements in Slack with an ellipsis and keeps blocks under 3,000 characters', () => {
    const long = 'SELECT ' + 'x, '.repeat(1000);
    const m = slackMessage('created', request({ statement: long }), 'http://x');
    const code = m.blocks[1]!.text.text;
    assert.ok(code.startsWith('```SELECT x, '));
    assert.ok(code.endsWith('…```'), code.slice(-20));
    assert.equal(code.length, 2000 + '…'.length + 6);
    const escapes = slackMessage('created', request({ statement: '<'.repeat(2500) }), 'http://x');
    for (const b of escapes.blocks) assert.ok(b.text.text.length <= 3000, `block of ${b.text.text.length}`);
    assert.ok(escapes.blocks[1]!.text.text.endsWith('…```'));
    // Exactly at the limit: no ellipsis.
    assert.ok(!slackMessage('created', request({ statement: 'y'.repeat(2000) }), 'http://x').blocks[1]!.text.text.includes('…'));
  });

  it('retries failures with backoff: 500, 500, then 200 delivers on the third attempt', async () => {
    const rx = await receiver((n, res) => {
      res.statusCode = n < 2 ? 500 : 200;
      res.end();
    });
    const { log, lines } = logger();
    const n = createNotifier([target(rx.url, { retries: 5 })], { logger: log, publicUrl: 'http://x', firstBackoffMs: 20 });
    n.notify('created', request());
    await rx.waitFor(3);
    await n.stop(2000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rx.got.length, 3, 'no attempt after the success');
    assert.deepEqual(rx.got[2]!.json, rx.got[0]!.json, 'the same message is retried');
    const warns = lines.filter((l) => l.event === 'approval_notify_failed');
    assert.deepEqual(
      warns.map((l) => [l.level, l.target, l.attempt, l.reason]),
      [
        [40, 'soc', 1, 'HTTP 500'],
        [40, 'soc', 2, 'HTTP 500'],
      ],
    );
    assert.ok(!JSON.stringify(lines).includes('secret-path'), 'logs name the target, not its URL path');
    assert.equal(lines.filter((l) => l.level >= 50).length, 0);
  });

  it('gives up after `retries` retries with one error line', async () => {
    const rx = await receiver((_n, res) => {
      res.statusCode = 503;
      res.end();
    });
    const { log, lines } = logger();
    const n = createNotifier([target(rx.url, { retries: 2 })], { logger: log, publicUrl: 'http://x', firstBackoffMs: 10 });
    n.notify('created', request());
    await rx.waitFor(3);
    await n.stop(2000);
    assert.equal(rx.got.length, 3, 'the first attempt and 2 retries');
    assert.equal(lines.filter((l) => l.event === 'approval_notify_failed' && l.level === 40).length, 3);
    const errors = lines.filter((l) => l.level === 50);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.event, 'approval_notify_gave_up');
    assert.equal(errors[0]!.target, 'soc');
  });

  it('retries an unreachable target and doubles the backoff up to max_backoff', async () => {
    const rx = await receiver();
    const dead = rx.url;
    await rx.close();
    const { log, lines } = logger();
    const n = createNotifier([target(dead, { retries: 3, max_backoff: 40 })], { logger: log, publicUrl: 'http://x', firstBackoffMs: 20 });
    n.notify('created', request());
    const deadline = Date.now() + 5000;
    while (!lines.some((l) => l.event === 'approval_notify_gave_up') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await n.stop(100);
    const warns = lines.filter((l) => l.event === 'approval_notify_failed') as Array<LogLine & { retry_in_ms?: number }>;
    assert.deepEqual(
      warns.map((l) => l.retry_in_ms),
      [20, 40, 40, undefined],
    );
    assert.equal(warns[0]!.reason, 'ECONNREFUSED');
  });

  it('never blocks: a target that never answers does not hold up notify, and stop() gives up in time', async () => {
    const rx = await receiver(() => {
      // Never answers.
    });
    const { log, lines } = logger();
    const n = createNotifier([target(rx.url, { timeout: 60_000 })], { logger: log, publicUrl: 'http://x' });
    const t0 = performance.now();
    n.notify('created', request());
    n.notify('approved', approved(request()));
    // A notify that waited for the never-answering target would take its 60 s timeout.
    assert.ok(performance.now() - t0 < 1000, 'notify returns at once');
    assert.equal(rx.got.length, 0, 'delivery happens in the background');
    await rx.waitFor(1);
    const t1 = performance.now();
    await n.stop(300);
    const took = performance.now() - t1;
    // It waits its 300 ms, not the target's 60 s timeout (the upper bound leaves room for a loaded machine).
    assert.ok(took >= 250 && took < 5000, `stop() took ${took} ms`);
    const dropped = lines.find((l) => l.event === 'approval_notify_dropped') as (LogLine & { count?: number }) | undefined;
    assert.equal(dropped?.count, 2, 'both undelivered messages are reported');
    // After stop, notify still never throws; it drops with a warning.
    n.notify('denied', request());
    assert.ok(lines.some((l) => l.event === 'approval_notify_dropped' && l.reason === 'stopped' && l.level === 40));
  });

  it('times out a slow target after `timeout` and retries it', async () => {
    const rx = await receiver((n, res) => {
      if (n > 0) res.end();
    });
    const { log, lines } = logger();
    const n = createNotifier([target(rx.url, { timeout: 100 })], { logger: log, publicUrl: 'http://x', firstBackoffMs: 10 });
    n.notify('created', request());
    await rx.waitFor(2);
    await n.stop(1000);
    assert.equal(lines.find((l) => l.event === 'approval_notify_failed')?.reason, 'no answer within 100 ms');
  });

  it('keeps order per target: created is delivered (after its retry) before approved', async () => {
    const rx = await receiver((n, res) => {
      res.statusCode = n === 0 ? 500 : 200;
      // Answer slowly, so a concurrent delivery would overtake.
      setTimeout(() => res.end(), 30);
    });
    const { log } = logger();
    const n = createNotifier([target(rx.url)], { logger: log, publicUrl: 'http://x', firstBackoffMs: 50 });
    const r = request();
    n.notify('created', r);
    n.notify('approved', approved(r));
    await rx.waitFor(3);
    await n.stop(2000);
    assert.deepEqual(
      rx.got.map((g) => g.json.event),
      ['approval.created', 'approval.created', 'approval.approved'],
    );
  });

  it('delivers to every target independently: one failing target does not delay another', async () => {
    const down = await receiver(() => {
      // Never answers.
    });
    const up = await receiver();
    const { log } = logger();
    const n = createNotifier([target(down.url, { name: 'down', timeout: 60_000 }), target(up.url, { name: 'up', type: 'slack' })], { logger: log, publicUrl: 'http://x' });
    n.notify('created', request());
    n.notify('approved', approved(request()));
    await up.waitFor(2);
    assert.equal(down.got.length, 1);
    assert.ok(typeof up.got[0]!.json.text === 'string');
    await n.stop(50);
  });

  it('never throws from notify, even for a request it cannot serialize', () => {
    const { log, lines } = logger();
    const n = createNotifier([target('http://127.0.0.1:9/')], { logger: log, publicUrl: 'http://x' });
    const bad = { ...request(), extra: 1n } as unknown as ApprovalRequest;
    assert.doesNotThrow(() => n.notify('created', bad));
    assert.equal(lines.filter((l) => l.level === 50).length, 1);
    // No targets: nothing to do.
    assert.doesNotThrow(() => createNotifier([], { logger: log, publicUrl: 'http://x' }).notify('created', bad));
    return n.stop(10);
  });
});
