/**
 * Notifications of approval requests (`approvals.notify`): a webhook gets the request as JSON, a
 * Slack-compatible incoming webhook gets a readable message.
 *
 * `notify` only queues: deliveries run in the background, one POST per target, so a target that is
 * down or slow never holds up or fails a request. Each target has its own queue, delivered one
 * message at a time, so one request's messages arrive in the order they happened (created before
 * approved). A failed POST (network error, timeout, non-2xx answer) is retried up to `retries`
 * times with a backoff that doubles from 1 s up to `max_backoff`; every failure logs one warning
 * and giving up logs one error. Delivery is at most once per attempt and best effort: messages
 * still queued when the process stops are dropped (and logged).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ApprovalRequest } from './request.js';

export type ApprovalEventName = 'created' | 'approved' | 'denied' | 'expired' | 'cancelled';

export interface Notifier {
  /** Queue a message about `r` to every target; never throws, never waits. */
  notify(event: ApprovalEventName, r: ApprovalRequest): void;
  /** wait for in-flight deliveries up to `ms`, then give up */
  stop(ms?: number): Promise<void>;
}

export type NotifyTarget = Config['approvals']['notify'][number];

export interface NotifierOptions {
  readonly logger: Logger;
  /** Base URL of links (approvals.public_url or the HTTP listener). */
  readonly publicUrl: string;
  /** Wait before the first retry (default 1 s); doubles per failure up to the target's max_backoff. */
  readonly firstBackoffMs?: number;
}

/** Backoff before the first retry; doubles per failure up to `max_backoff`. */
const FIRST_BACKOFF_MS = 1000;
/** Messages waiting per target beyond which new ones are dropped (a target down for long). */
const MAX_QUEUED = 1000;
/** How long `stop()` waits by default. */
const DEFAULT_STOP_MS = 5000;
/** Slack: statements longer than this are cut (a section block holds at most 3,000 characters). */
const STATEMENT_MAX_CHARS = 2000;
const STATEMENT_MAX_ESCAPED = 2800;

export function createNotifier(targets: Config['approvals']['notify'], opts: NotifierOptions): Notifier {
  const publicUrl = opts.publicUrl.replace(/\/+$/, '');
  const abort = new AbortController();
  const queues = targets.map((t) => new TargetQueue(t, opts.logger, abort.signal, opts.firstBackoffMs ?? FIRST_BACKOFF_MS));
  let stopped = false;
  return {
    notify(event, r) {
      if (queues.length === 0) return;
      try {
        if (stopped) {
          opts.logger.warn({ event: 'approval_notify_dropped', request: r.id, notification: event, reason: 'stopped' }, `approval notification "${event}" of ${r.id} not sent: notifications are stopped`);
          return;
        }
        // Each body is built once per call, whatever the number of targets of its type.
        let webhook: string | undefined;
        let slack: string | undefined;
        for (const q of queues) {
          const body = q.type === 'webhook' ? (webhook ??= JSON.stringify(webhookBody(event, r, publicUrl))) : (slack ??= JSON.stringify(slackMessage(event, r, publicUrl)));
          q.push({ event, id: r.id, body });
        }
      } catch (err) {
        // A request that cannot be rendered must not fail the caller.
        opts.logger.error({ event: 'approval_notify_failed', request: r?.id, notification: event, reason: (err as Error).message }, `approval notification "${event}" could not be built: ${(err as Error).message}`);
      }
    },
    async stop(ms = DEFAULT_STOP_MS) {
      const idle = Promise.all(queues.map((q) => q.idle()));
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([idle.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)))]);
      clearTimeout(timer);
      stopped = true;
      if (done) return;
      // Out of time: abort the POSTs and backoffs in progress; each queue logs what it dropped.
      abort.abort();
      await idle;
    },
  };
}

// ---- bodies ---------------------------------------------------------------------------------

/** Link to a request in the HTTP API. */
export function requestUrl(publicUrl: string, id: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/api/approvals/${encodeURIComponent(id)}`;
}

/** `type: webhook`: the request as stored, the event and a link. */
export function webhookBody(event: ApprovalEventName, r: ApprovalRequest, publicUrl: string): { event: string; request: ApprovalRequest; url: string } {
  return { event: `approval.${event}`, request: r, url: requestUrl(publicUrl, r.id) };
}

/** A Slack section block of mrkdwn text. */
export interface SlackSection {
  readonly type: 'section';
  readonly text: { readonly type: 'mrkdwn'; readonly text: string };
}

/** Slack requires &, < and > escaped in text; everything else is literal. https://api.slack.com/reference/surfaces/formatting#escaping */
export function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The statement, escaped, cut after STATEMENT_MAX_CHARS characters (or when escaping makes it too long for a block). */
function slackStatement(text: string): string {
  let out = '';
  let chars = 0;
  for (const ch of text) {
    const e = ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : ch === '>' ? '&gt;' : ch;
    if (chars >= STATEMENT_MAX_CHARS || out.length + e.length > STATEMENT_MAX_ESCAPED) return `${out}…`;
    out += e;
    chars++;
  }
  return out;
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** What happened, in one mrkdwn line (already escaped). */
function headline(event: ApprovalEventName, r: ApprovalRequest): string {
  const id = `\`${slackEscape(r.id)}\``;
  switch (event) {
    case 'created':
      return `:hourglass: *Approval requested* ${id}`;
    case 'approved': {
      const votes = r.votes.filter((v) => v.verdict === 'approve');
      const by = votes.map((v) => (v.rule !== undefined ? `${v.name} (rule ${v.rule})` : v.name)).join(', ');
      return `:white_check_mark: *Approved${by === '' ? '' : ` by ${slackEscape(by)}`}* ${id}`;
    }
    case 'denied': {
      const deny = r.votes.find((v) => v.verdict === 'deny');
      const reason = deny?.reason ?? (deny === undefined ? r.reason : undefined);
      return `:x: *Denied${deny === undefined ? '' : ` by ${slackEscape(deny.name)}`}${reason === undefined ? '' : `: ${slackEscape(reason)}`}* ${id}`;
    }
    case 'expired':
      return `:alarm_clock: *Expired without a decision* ${id}${r.reason === undefined ? '' : `: ${slackEscape(r.reason)}`}`;
    case 'cancelled':
      return `:no_entry_sign: *Cancelled* ${id}${r.reason === undefined ? '' : `: ${slackEscape(r.reason)}`}`;
  }
}

/**
 * `type: slack`: an incoming-webhook message. `text` is the plain fallback (notifications, clients
 * without blocks) and says the same as the blocks.
 */
export function slackMessage(event: ApprovalEventName, r: ApprovalRequest, publicUrl: string): { text: string; blocks: SlackSection[] } {
  const e = slackEscape;
  const url = requestUrl(publicUrl, r.id);
  const approvals = r.votes.filter((v) => v.verdict === 'approve').length;
  const who = `${e(r.requester.name)} (${e(r.requester.kind)})${r.requester.onBehalfOf !== undefined ? ` on behalf of ${e(r.requester.onBehalfOf)}` : ''}`;
  const pending = event === 'created';
  // A code block cannot escape backticks: break up any ``` inside the statement with zero-width spaces.
  const statement = slackStatement(r.statement).replace(/```/g, '`\u200b`\u200b`');
  const sections = [
    headline(event, r),
    `\`\`\`${statement}\`\`\``,
    [
      `*Requested by:* ${who}`,
      `*Connection:* ${e(r.connection)} (${e(r.environment)})`,
      `*Rule:* \`${e(r.rule)}\`: ${e(r.message)}`,
      `*Approvers:* ${r.quorum} approval${r.quorum === 1 ? '' : 's'} from ${r.groups.length === 0 ? '(no group)' : e(r.groups.join(', '))}${approvals > 0 ? ` (${approvals} given)` : ''}`,
      `*Expires:* ${iso(r.expiresAt)}`,
    ].join('\n'),
    `<${url.replace(/&/g, '&amp;')}|${e(url)}>\n${pending ? 'Approve' : 'Details'}: \`gatehouse approvals ${pending ? 'approve' : 'show'} ${e(r.id)}\``,
  ];
  return {
    text: sections.join('\n'),
    blocks: sections.map((text) => ({ type: 'section', text: { type: 'mrkdwn', text } })),
  };
}

// ---- delivery -------------------------------------------------------------------------------

interface Job {
  readonly event: ApprovalEventName;
  readonly id: string;
  readonly body: string;
}

/** Messages to one target, delivered one at a time in order. */
class TargetQueue {
  readonly type: NotifyTarget['type'];
  readonly #target: NotifyTarget;
  readonly #log: Logger;
  readonly #stop: AbortSignal;
  readonly #firstBackoffMs: number;
  readonly #headers: Record<string, string>;
  /** For logs: the URL's path and query may be the secret (Slack webhooks). */
  readonly #host: string;
  readonly #jobs: Job[] = [];
  #draining: Promise<void> | null = null;

  constructor(target: NotifyTarget, log: Logger, stop: AbortSignal, firstBackoffMs: number) {
    this.type = target.type;
    this.#target = target;
    this.#log = log;
    this.#stop = stop;
    this.#firstBackoffMs = firstBackoffMs;
    // The body is JSON whatever the configured headers say.
    this.#headers = Object.fromEntries(Object.entries(target.headers).filter(([k]) => k.toLowerCase() !== 'content-type'));
    this.#headers['content-type'] = 'application/json';
    this.#host = new URL(target.url).host;
  }

  push(job: Job): void {
    if (this.#jobs.length >= MAX_QUEUED) {
      this.#log.error(
        { event: 'approval_notify_dropped', target: this.#target.name, request: job.id, notification: job.event, reason: 'queue full' },
        `approval notification "${job.event}" of ${job.id} to "${this.#target.name}" dropped: ${MAX_QUEUED} messages are already waiting for it`,
      );
      return;
    }
    this.#jobs.push(job);
    this.#draining ??= this.#drain();
  }

  /** Settles once every queued message is delivered, given up, or dropped at stop. */
  idle(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  async #drain(): Promise<void> {
    try {
      for (let job = this.#jobs.shift(); job !== undefined; job = this.#jobs.shift()) {
        if (!(await this.#deliver(job))) {
          const dropped = [job, ...this.#jobs.splice(0)];
          this.#log.error(
            { event: 'approval_notify_dropped', target: this.#target.name, count: dropped.length, requests: [...new Set(dropped.map((j) => j.id))].slice(0, 20), reason: 'stopped' },
            `${dropped.length} approval notification(s) to "${this.#target.name}" not delivered: Gatehouse is stopping`,
          );
          return;
        }
      }
    } finally {
      // Synchronously after the last shift: a push from now on starts a new drain.
      this.#draining = null;
    }
  }

  /** Deliver with retries. False when stopped before it was delivered or given up. */
  async #deliver(job: Job): Promise<boolean> {
    const t = this.#target;
    const attempts = t.retries + 1;
    let backoff = Math.min(this.#firstBackoffMs, t.max_backoff);
    for (let attempt = 1; ; attempt++) {
      if (this.#stop.aborted) return false;
      const reason = await this.#post(job.body);
      if (reason === null) return true;
      if (this.#stop.aborted) return false;
      const last = attempt >= attempts;
      this.#log.warn(
        { event: 'approval_notify_failed', target: t.name, host: this.#host, request: job.id, notification: job.event, attempt, attempts, reason, ...(last ? {} : { retry_in_ms: backoff }) },
        `approval notification "${job.event}" of ${job.id} to "${t.name}" failed (attempt ${attempt} of ${attempts}): ${reason}${last ? '' : `; retrying in ${backoff} ms`}`,
      );
      if (last) {
        this.#log.error(
          { event: 'approval_notify_gave_up', target: t.name, host: this.#host, request: job.id, notification: job.event, attempts, reason },
          `approval notification "${job.event}" of ${job.id} to "${t.name}" was not delivered after ${attempts} attempt(s): ${reason}`,
        );
        return true;
      }
      if (!(await sleep(backoff, this.#stop))) return false;
      backoff = Math.min(backoff * 2, t.max_backoff);
    }
  }

  /** One POST: null when the target took it (2xx), else why not. */
  async #post(body: string): Promise<string | null> {
    const timeoutMs = this.#target.timeout;
    try {
      const res = await fetch(this.#target.url, { method: 'POST', headers: this.#headers, body, redirect: 'error', signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#stop]) });
      // Read the answer so the connection can be reused.
      await res.arrayBuffer();
      return res.status >= 200 && res.status <= 299 ? null : `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
      return e.cause?.code ?? e.cause?.message ?? e.message;
    }
  }
}

/** Wait `ms`; false when `signal` aborts first. The timer never keeps the process alive. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
