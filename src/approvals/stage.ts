/**
 * The approvals stage of the statement pipeline. A require_approval decision becomes a request
 * in the store; then, per the rule's mode:
 *   wait   the statement is held (the client gets a NOTICE naming the request at once) until the
 *          request is approved (the statement runs), denied or expired (an error), or cancelled
 *          by the client (CancelRequest, or the client going away);
 *   retry  the client gets an error naming the request at once; once approved, the same text
 *          from the same person on the same connection runs once, within the run window.
 * An approved request that nobody is waiting for (retry mode, or a waiting client that went
 * away, e.g. when its node stopped) is spent by the next identical statement. Held statements
 * learn of decisions made in this process at once and of those made on other nodes by polling
 * the shared store. Every step is an audit event and, when configured, a notification.
 */
import type { Logger } from 'pino';
import type { EventInput } from '../audit/event.js';
import { auditIdentity } from '../audit/stage.js';
import type { PipelinePlugin } from '../session/pipeline.js';
import type { Decision, SessionInfo, Statement } from '../session/types.js';
import type { ApprovalEventName, Notifier } from './notify.js';
import {
  ApprovalError,
  autoApprove,
  close,
  effectiveStatus,
  execute,
  newApprovalId,
  statementKey,
  type ApprovalRequest,
  type ApprovalStore,
} from './request.js';

/** SQLSTATEs of the refusals: 42501 insufficient_privilege, 57014 query_canceled, 57P01 admin_shutdown, 58030 io_error. */
const NOT_APPROVED = '42501';
const CANCELED = '57014';
const SHUTTING_DOWN = '57P01';
const STORE_FAILED = '58030';

export interface ApprovalStageOptions {
  readonly store: ApprovalStore;
  /** This node's id (recorded on requests). */
  readonly node: string;
  /** Audit (undefined when audit is off). */
  readonly record?: (e: EventInput) => void;
  /** Told of each step (metrics). */
  readonly onStep?: (type: ApprovalEventType) => void;
  readonly notifier?: Notifier;
  readonly logger: Logger;
  /** approvals.groups, .expires, .run_window, .poll_interval. */
  readonly groups: readonly string[];
  readonly expiresMs: number;
  readonly runWindowMs: number;
  readonly pollMs: number;
  /** Base URL of the HTTP API, for the hint telling how to approve (known once HTTP listens). */
  readonly publicUrl: () => string | undefined;
}

/** A held statement. */
interface Waiter {
  readonly id: string;
  readonly session: SessionInfo;
  readonly decision: Decision;
  readonly resolve: (d: Decision) => void;
  readonly expiry: NodeJS.Timeout;
  readonly poll: NodeJS.Timeout;
  /** A check of the store is running. */
  checking: boolean;
  done: boolean;
}

const when = (ms: number): string => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 1000)}s`);

export class ApprovalStage implements PipelinePlugin {
  readonly name = 'approvals';
  readonly #o: ApprovalStageOptions;
  readonly #byId = new Map<string, Waiter>();
  readonly #bySession = new Map<SessionInfo, Waiter>();
  #stopping = false;

  /** Stops the store's change feed (shared store only). */
  readonly #unwatch: (() => void) | undefined;

  constructor(opts: ApprovalStageOptions) {
    this.#o = opts;
    // Decisions made through another node wake the holder at once where the store can say so;
    // the poll stays as the fallback.
    this.#unwatch = opts.store.watch?.((id) => this.decided(id));
  }

  /** How many statements are held right now. */
  get waiting(): number {
    return this.#byId.size;
  }

  approve(session: SessionInfo, statement: Statement, decision: Decision): Promise<Decision> {
    return this.#approve(session, statement, decision).catch((err: unknown) => {
      if (err instanceof ApprovalError) return refuse(decision, NOT_APPROVED, err.message);
      this.#o.logger.error({ event: 'approvals_store_failed', err, session: session.id }, 'approval store failed; refusing the statement');
      return refuse(decision, STORE_FAILED, `the approval could not be recorded (approval store unavailable: ${(err as Error).message}); the statement was not run`);
    });
  }

  async #approve(session: SessionInfo, statement: Statement, decision: Decision): Promise<Decision> {
    const o = this.#o;
    const plan = decision.approval ?? { mode: 'wait' as const, groups: undefined, quorum: 1, expiresMs: undefined, runWindowMs: undefined };
    const groups = plan.groups ?? o.groups;
    const rule = decision.ruleId ?? 'default';
    if (groups.length === 0) {
      return refuse(decision, NOT_APPROVED, decision.message ?? 'approval required', `no approvers are configured for rule ${rule}: set approval.groups on the rule, or approvals.groups`);
    }
    if (this.#stopping) return refuse(decision, SHUTTING_DOWN, 'Gatehouse is shutting down; no approval can be requested now');
    const id = session.identity;
    const key = statementKey(session.connection.name, id.name, statement.text);
    const runWindow = plan.runWindowMs ?? o.runWindowMs;

    // An approval already given for this very statement (retry mode, or a client that left).
    const ready = await o.store.findByKey(key, ['approved']);
    if (ready !== null) {
      const spent = await this.#spend(ready.id);
      if (spent !== null) return this.#allowed(decision, spent);
    }

    const now = Date.now();
    let r: ApprovalRequest = {
      id: newApprovalId(),
      status: 'pending',
      mode: plan.mode,
      requester: { name: id.name, kind: id.kind, groups: id.groups, ...(id.onBehalfOf ? { onBehalfOf: id.onBehalfOf.name } : {}) },
      connection: session.connection.name,
      environment: session.connection.environment,
      statement: statement.text,
      statementKey: key,
      facts: { kind: decision.statement?.kind ?? 'unknown', tables: decision.statement?.tables ?? [], fingerprint: decision.statement?.fingerprint ?? '' },
      rule,
      message: decision.message ?? 'approval required',
      groups,
      quorum: plan.quorum,
      votes: [],
      createdAt: now,
      expiresAt: now + (plan.expiresMs ?? o.expiresMs),
      runWindowMs: runWindow,
      session: session.id,
      node: o.node,
    };

    if (plan.autoApprovedBy !== undefined) {
      r = execute(autoApprove(r, plan.autoApprovedBy, now), now);
      await o.store.create(r);
      this.#event('approval.request', r, session);
      this.#event('approval.approve', r, session, { by: 'policy', rule: plan.autoApprovedBy });
      this.#event('approval.execute', r, session);
      this.#notify('approved', r);
      return this.#allowed(decision, r);
    }

    if (plan.mode === 'retry') {
      const open = await o.store.findByKey(key, ['pending']);
      if (open !== null && effectiveStatus(open, now) === 'pending') {
        return refuse(decision, NOT_APPROVED, `${decision.message ?? 'approval required'}: approval request ${open.id} is pending; run the statement again once it is approved`, this.#hint(open));
      }
      await o.store.create(r);
      this.#created(r, session);
      return refuse(decision, NOT_APPROVED, `${decision.message ?? 'approval required'}: approval request ${r.id} created; run the statement again once it is approved`, this.#hint(r));
    }

    await o.store.create(r);
    this.#created(r, session);
    session.notice?.({
      message: `approval request ${r.id} is pending: ${r.message} (rule ${rule}); waiting for ${r.quorum} approval${r.quorum === 1 ? '' : 's'} from ${groups.join(', ')}, at most ${when(r.expiresAt - now)}`,
      hint: `${this.#hint(r)}; cancelling the query (Ctrl-C) cancels the request`,
    });
    return this.#wait(r, session, decision);
  }

  #hint(r: ApprovalRequest): string {
    const base = this.#o.publicUrl();
    const url = base === undefined ? '' : ` or POST ${base}/api/approvals/${r.id}/approve`;
    return `a member of ${r.groups.join(', ')} approves with: gatehouse approvals approve ${r.id}${url}`;
  }

  #created(r: ApprovalRequest, session: SessionInfo): void {
    this.#event('approval.request', r, session);
    this.#notify('created', r);
  }

  /** Approved: the statement goes ahead (masks and row caps of the decision still apply). */
  #allowed(decision: Decision, r: ApprovalRequest): Decision {
    const by = r.votes.filter((v) => v.verdict === 'approve').map((v) => (v.rule !== undefined ? `policy:${v.rule}` : v.name));
    return { ...decision, action: decision.masks !== undefined ? 'mask' : 'allow', approval: undefined, approvedBy: { request: r.id, by } };
  }

  /** Mark an approved request executed; null if it is no longer spendable (spent elsewhere, run window over). */
  async #spend(id: string): Promise<ApprovalRequest | null> {
    try {
      const r = await this.#o.store.update(id, (x) => execute(x, Date.now()));
      if (r !== null) this.#event('approval.execute', r);
      return r;
    } catch (err) {
      if (err instanceof ApprovalError) return null;
      throw err;
    }
  }

  #wait(r: ApprovalRequest, session: SessionInfo, decision: Decision): Promise<Decision> {
    return new Promise<Decision>((resolve) => {
      const w: Waiter = {
        id: r.id,
        session,
        decision,
        resolve,
        // Expiry is checked by the holder; a request nobody holds expires when next read.
        expiry: setTimeout(() => void this.#expire(w), Math.max(0, r.expiresAt - Date.now())),
        poll: setInterval(() => void this.#check(w), this.#o.pollMs),
        checking: false,
        done: false,
      };
      this.#byId.set(r.id, w);
      this.#bySession.set(session, w);
    });
  }

  #finish(w: Waiter, d: Decision): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.expiry);
    clearInterval(w.poll);
    this.#byId.delete(w.id);
    if (this.#bySession.get(w.session) === w) this.#bySession.delete(w.session);
    w.resolve(d);
  }

  /** Look at the stored request and finish the wait if it was decided. */
  async #check(w: Waiter): Promise<void> {
    if (w.done || w.checking) return;
    w.checking = true;
    try {
      const r = await this.#o.store.get(w.id);
      if (w.done) return;
      if (r === null) return this.#finish(w, refuse(w.decision, NOT_APPROVED, `approval request ${w.id} no longer exists`));
      switch (effectiveStatus(r, Date.now())) {
        case 'pending':
          return;
        case 'approved': {
          const spent = await this.#spend(r.id);
          if (spent !== null) return this.#finish(w, this.#allowed(w.decision, spent));
          return this.#finish(w, refuse(w.decision, NOT_APPROVED, `approval request ${w.id} was approved but can no longer be used`));
        }
        case 'denied': {
          const by = r.votes.find((v) => v.verdict === 'deny')?.name ?? 'an approver';
          return this.#finish(w, refuse(w.decision, NOT_APPROVED, `approval request ${w.id} was denied by ${by}${r.reason && r.reason !== `denied by ${by}` ? `: ${r.reason}` : ''}`));
        }
        case 'expired':
          return void (await this.#expire(w));
        case 'cancelled':
          return this.#finish(w, refuse(w.decision, CANCELED, `approval request ${w.id} was cancelled${r.reason ? ` (${r.reason})` : ''}`));
        case 'executed':
          return this.#finish(w, refuse(w.decision, NOT_APPROVED, `approval request ${w.id} was already used`));
      }
    } catch (err) {
      // The store is unreachable for now: keep waiting (the expiry still ends the wait).
      this.#o.logger.warn({ event: 'approvals_poll_failed', request: w.id, err: (err as Error).message }, 'could not read an approval request; will retry');
    } finally {
      w.checking = false;
    }
  }

  async #expire(w: Waiter): Promise<void> {
    if (w.done) return;
    try {
      const r = await this.#o.store.update(w.id, (x) => {
        if (x.status !== 'pending') throw new ApprovalError(409, 'decided');
        return close(x, 'expired', Date.now(), 'no decision before the expiry');
      });
      if (r !== null) {
        this.#event('approval.expire', r, w.session);
        this.#notify('expired', r);
      }
      const mins = r === null ? '' : ` after ${when(r.expiresAt - r.createdAt)}`;
      this.#finish(w, refuse(w.decision, NOT_APPROVED, `approval request ${w.id} expired${mins} without a decision; the statement was not run`));
    } catch (err) {
      // Decided just before the expiry: the check settles it.
      if (err instanceof ApprovalError) return void (await this.#check(w));
      this.#o.logger.warn({ event: 'approvals_expire_failed', request: w.id, err: (err as Error).message }, 'could not expire an approval request');
      this.#finish(w, refuse(w.decision, NOT_APPROVED, `approval request ${w.id} expired without a decision; the statement was not run`));
    }
  }

  /** A decision was made in this process (HTTP API): wake its holder now instead of at the next poll. */
  decided(id: string): void {
    const w = this.#byId.get(id);
    if (w !== undefined) void this.#check(w);
  }

  /** CancelRequest from the client: the held statement stops and its request is cancelled. */
  interrupt(session: SessionInfo): void {
    const w = this.#bySession.get(session);
    if (w !== undefined) void this.#cancel(w, 'cancelled by the client', true);
  }

  sessionEnd(session: SessionInfo): void {
    const w = this.#bySession.get(session);
    if (w !== undefined) void this.#cancel(w, 'the client disconnected', false);
  }

  async #cancel(w: Waiter, reason: string, answer: boolean): Promise<void> {
    if (w.done) return;
    try {
      const r = await this.#o.store.update(w.id, (x) => close(x, 'cancelled', Date.now(), reason));
      if (r !== null) {
        this.#event('approval.cancel', r, w.session, { reason });
        this.#notify('cancelled', r);
      }
      this.#finish(w, refuse(w.decision, CANCELED, `canceling statement due to user request: approval request ${w.id} cancelled`));
    } catch (err) {
      // Already decided: settle by what was decided. A client that left gets nothing either way.
      if (answer && err instanceof ApprovalError) return void (await this.#check(w));
      this.#finish(w, refuse(w.decision, CANCELED, `canceling statement due to user request (approval request ${w.id})`));
    }
  }

  /**
   * Shutdown: every held statement gets an error now; its request stays pending (approvable
   * through any node), and once approved the statement runs when it is sent again.
   */
  stop(): void {
    this.#stopping = true;
    this.#unwatch?.();
    for (const w of [...this.#byId.values()]) {
      this.#finish(w, refuse(w.decision, SHUTTING_DOWN, `Gatehouse is shutting down: approval request ${w.id} stays pending; once it is approved, run the statement again (within the run window)`));
    }
  }

  #event(type: ApprovalEventType, r: ApprovalRequest, session?: SessionInfo, extra?: Record<string, unknown>): void {
    this.#o.record?.(approvalEvent(type, r, session, extra));
    this.#o.onStep?.(type);
  }

  #notify(event: ApprovalEventName, r: ApprovalRequest): void {
    this.#o.notifier?.notify(event, r);
  }
}

/** The audit event types of approval steps. */
export type ApprovalEventType = 'approval.request' | 'approval.approve' | 'approval.deny' | 'approval.expire' | 'approval.cancel' | 'approval.execute';

/** The audit event of one step of a request. */
export function approvalEvent(type: EventInput['type'], r: ApprovalRequest, session?: SessionInfo, extra?: Record<string, unknown>): EventInput {
  return {
    type,
    session: session?.id ?? r.session,
    identity: session !== undefined ? auditIdentity(session.identity) : undefined,
    connection: { name: r.connection, environment: r.environment },
    detail: {
      request: r.id,
      status: r.status,
      mode: r.mode,
      rule: r.rule,
      requester: r.requester.name,
      ...(r.requester.onBehalfOf !== undefined ? { on_behalf_of: r.requester.onBehalfOf } : {}),
      statement: r.statement,
      kind: r.facts.kind,
      tables: r.facts.tables,
      groups: r.groups,
      quorum: r.quorum,
      votes: r.votes.map((v) => ({ name: v.name, verdict: v.verdict, at: v.at, ...(v.reason !== undefined ? { reason: v.reason } : {}), ...(v.rule !== undefined ? { rule: v.rule } : {}) })),
      expires_at: r.expiresAt,
      ...extra,
    },
  };
}

function refuse(decision: Decision, sqlstate: string, message: string, hint?: string): Decision {
  return { ...decision, action: 'deny', sqlstate, message, hint, approval: undefined };
}
