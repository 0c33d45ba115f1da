/**
 * The audit stage of the statement pipeline: one event per session start and end, connection
 * event and executed statement (refusals included), and, on durable environments, an intent
 * event committed before a write is forwarded (audit before effect).
 *
 * Written for speed: the statement event is the one recorded tens of thousands of times a
 * second, so it is queued compact (src/audit/compact.ts): numbers and the ids of fragments
 * encoded once (per session: client, connection, identity, session; per decision: decision and
 * statement summary), and the writer thread assembles its canonical JSON. `stage.test.ts` checks
 * the stored body equals `canonicalJson` of the same event.
 */
import type { PipelinePlugin } from '../session/pipeline.js';
import { permits, type ConnectionEvent, type Decision, type Execution, type SessionInfo, type Statement } from '../session/types.js';
import type { Identity } from '../identity/identity.js';
import { canonicalJson, type AuditIdentity, type EventType } from './event.js';
import { COMPACT_INTENT, COMPACT_STATEMENT, type SessionFragment } from './compact.js';
import type { AuditWriter } from './writer.js';

export interface AuditStageOptions {
  /** Environments whose writes wait for their intent event to be committed. */
  readonly durableEnvironments: readonly string[];
  /** Record the normalized text (literals replaced by `?`) or the full text. */
  readonly statementText: 'normalized' | 'full';
  /** While the store is unavailable, refuse reads too. */
  readonly refuseReadsOnFailure: boolean;
}

/** Rule id of refusals made because the audit store cannot be written. */
export const AUDIT_RULE = 'gatehouse.audit-unavailable';

/** A session's registered fragments (src/audit/compact.ts) and everything to release with it. */
interface SessionState {
  appName: string;
  /** Id of the session fragment (re-registered when application_name changes). */
  id: number;
  /** Decision -> its fragment id and statement fragment ids by protocol. */
  readonly decisions: Map<Decision, { readonly id: number; readonly statement: Map<string, number> }>;
  /** Every fragment id registered for this session, released at its end. */
  readonly ids: number[];
}

/** Decisions remembered per session before their fragments are released and registered anew. */
const MAX_SESSION_DECISIONS = 2000;

const str = JSON.stringify;

export function auditIdentity(i: Identity): AuditIdentity {
  return {
    kind: i.kind,
    name: i.name,
    groups: i.groups,
    auth_method: i.authMethod,
    credential_id: i.credentialId,
    on_behalf_of: i.onBehalfOf?.name,
    model: i.attributes.model,
  };
}

/** Command tags whose row count is rows changed rather than rows returned. */
function affectsRows(command: string): boolean {
  const c = command.charCodeAt(0);
  return (
    (c === 0x49 /* I */ && command.startsWith('INSERT')) ||
    (c === 0x55 /* U */ && command.startsWith('UPDATE')) ||
    (c === 0x44 /* D */ && command.startsWith('DELETE')) ||
    (c === 0x4d /* M */ && command.startsWith('MERGE'))
  );
}

export class AuditStage implements PipelinePlugin {
  readonly name = 'audit';
  readonly #w: AuditWriter;
  readonly #opts: AuditStageOptions;
  readonly #durable: Set<string>;
  readonly #sessions = new WeakMap<SessionInfo, SessionState>();
  readonly #texts = new WeakMap<Statement, string>();

  constructor(writer: AuditWriter, opts: AuditStageOptions) {
    this.#w = writer;
    this.#opts = opts;
    this.#durable = new Set(opts.durableEnvironments);
  }

  #sessionFragment(s: SessionInfo): SessionFragment {
    return {
      t: 's',
      client: `{"client":${canonicalJson({ address: s.client.address, application_name: s.applicationName, tls: s.client.tls })}`,
      connection: `,"connection":${canonicalJson({ environment: s.connection.environment, name: s.connection.name })}`,
      identity: `,"identity":${canonicalJson(auditIdentity(s.identity))}`,
      session: `,"session":${str(s.id)}`,
      sessionId: s.id,
      identityName: s.identity.name,
      onBehalfOf: s.identity.onBehalfOf?.name ?? null,
      connectionName: s.connection.name,
      environment: s.connection.environment,
    };
  }

  #state(s: SessionInfo): SessionState {
    let state = this.#sessions.get(s);
    if (state === undefined) {
      const id = this.#w.fragment(this.#sessionFragment(s));
      state = { appName: s.applicationName, id, decisions: new Map(), ids: [id] };
      this.#sessions.set(s, state);
    } else if (state.appName !== s.applicationName) {
      state.appName = s.applicationName;
      state.id = this.#w.fragment(this.#sessionFragment(s));
      state.ids.push(state.id);
    }
    return state;
  }

  /** The fragment ids of a decision and of the statement as recorded (`number`), or the statement JSON in full-text mode. */
  #decisionRefs(state: SessionState, st: Statement, d: Decision): { decision: number; statement: number | string } {
    let refs = state.decisions.get(d);
    if (refs === undefined) {
      if (state.decisions.size >= MAX_SESSION_DECISIONS) {
        // Bounded: forget this session's decision fragments (after what is queued is written).
        this.#w.release(state.ids.filter((x) => x !== state.id));
        state.ids.length = 0;
        state.ids.push(state.id);
        state.decisions.clear();
      }
      const matches = (d.matches ?? []).map((m) => ({ action: m.action, controls: m.controls.length > 0 ? m.controls : undefined, id: m.id, mode: m.mode }));
      const sum = d.statement;
      const id = this.#w.fragment({
        t: 'd',
        decision: `,"decision":${canonicalJson({ action: d.action, matches, rule: d.ruleId })}`,
        kind: sum?.kind ?? 'unknown',
        tables: sum && sum.tables.length > 0 ? `,${sum.tables.join(',')},` : null,
        action: d.action,
      });
      state.ids.push(id);
      refs = { id, statement: new Map() };
      state.decisions.set(d, refs);
    }
    if (this.#opts.statementText === 'full') {
      let text = this.#texts.get(st);
      if (text === undefined) {
        text = `,"statement":${canonicalJson(this.#statementObject(st, d, st.text))}`;
        if (st.protocol === 'extended') this.#texts.set(st, text);
      }
      return { decision: refs.id, statement: text };
    }
    let sid = refs.statement.get(st.protocol);
    if (sid === undefined) {
      sid = this.#w.fragment({ t: 'x', statement: `,"statement":${canonicalJson(this.#statementObject(st, d, d.statement?.normalized ?? st.text))}` });
      state.ids.push(sid);
      refs.statement.set(st.protocol, sid);
    }
    return { decision: refs.id, statement: sid };
  }

  #statementObject(st: Statement, d: Decision, text: string): object {
    const s = d.statement;
    return { fingerprint: s?.fingerprint ?? '', kind: s?.kind ?? 'unknown', protocol: st.protocol, tables: s?.tables ?? [], text };
  }

  /** An event about a session: who, where, from where. */
  #recordSession(type: EventType, s: SessionInfo, detail: Record<string, unknown>): void {
    this.#w.record({
      type,
      session: s.id,
      identity: auditIdentity(s.identity),
      connection: { name: s.connection.name, environment: s.connection.environment },
      client: { address: s.client.address, application_name: s.applicationName, tls: s.client.tls },
      detail,
    });
  }

  sessionStart(s: SessionInfo): void {
    this.#recordSession('session.start', s, { port: s.client.port, upstream_role: s.upstreamRole });
  }

  sessionEnd(s: SessionInfo, reason: string): void {
    this.#recordSession('session.end', s, { reason, duration_ms: Date.now() - s.startedAt });
    const state = this.#sessions.get(s);
    if (state !== undefined) {
      this.#w.release(state.ids);
      this.#sessions.delete(s);
    }
  }

  connectionEvent(e: ConnectionEvent): void {
    this.#w.record({
      type: e.type,
      identity: e.identity ? auditIdentity(e.identity) : e.user !== undefined ? { kind: 'unknown', name: e.user, groups: [] } : undefined,
      connection: e.connection,
      client: { address: e.client.address, application_name: e.applicationName, tls: e.client.tls },
      sqlstate: e.sqlstate,
      detail: { port: e.client.port, reason: e.reason },
    });
  }

  /** Simple Query and FunctionCall: admitted when decided. Parse has no effect; its Executes are admitted one by one. */
  decide(s: SessionInfo, st: Statement): Decision | undefined | Promise<Decision | undefined> {
    if (st.protocol === 'extended' || !permits(st.decision)) return undefined;
    return this.#admit(s, st);
  }

  admit(s: SessionInfo, st: Statement): Promise<Decision | undefined> | undefined {
    if (!permits(st.decision)) return undefined;
    const r = this.#admit(s, st);
    return r === undefined ? undefined : r instanceof Promise ? r : Promise.resolve(r);
  }

  #admit(s: SessionInfo, st: Statement): Decision | undefined | Promise<Decision | undefined> {
    const w = this.#w;
    const d = st.decision;
    if (w.overloaded) return this.#refusal(d, `${w.backlog} audit events are waiting for the store (audit.max_pending); every statement is refused until it recovers`);
    const durable = this.#durable.has(s.connection.environment) && (d.statement?.mutates ?? true);
    if (!durable) {
      if (!w.healthy && this.#opts.refuseReadsOnFailure) return this.#refusal(d, 'the audit store is unavailable and audit.on_store_failure.reads is "refuse"');
      return undefined;
    }
    if (!w.healthy) return this.#refusal(d, `the audit store is unavailable (${w.lastError}); writes on ${s.connection.environment} are refused until their events can be recorded first`);
    const seq = this.#intent(s, st);
    return w.durable(seq).then(
      () => undefined,
      (err: Error) => this.#refusal(d, `${err.message}; writes on ${s.connection.environment} are refused until their events can be recorded first`),
    );
  }

  #refusal(d: Decision, message: string): Decision {
    return { action: 'deny', ruleId: AUDIT_RULE, message, sqlstate: '58030', statement: d.statement };
  }

  #intent(s: SessionInfo, st: Statement): number {
    const w = this.#w;
    const state = this.#state(s);
    const refs = this.#decisionRefs(state, st, st.decision);
    const seq = w.next();
    w.pushCompact(COMPACT_INTENT, seq, Date.now(), state.id, refs.decision, refs.statement, 0, 0, false, null, null, null, null);
    return seq;
  }

  complete(s: SessionInfo, e: Execution): void {
    const w = this.#w;
    const state = this.#state(s);
    const st = e.statement;
    const d = st.decision;
    const refs = this.#decisionRefs(state, st, d);
    const seq = w.next();
    w.pushCompact(
      COMPACT_STATEMENT,
      seq,
      Date.now(),
      state.id,
      refs.decision,
      refs.statement,
      Math.round(e.durationMs * 1000) / 1000,
      e.rows,
      affectsRows(e.command),
      e.command === '' ? null : e.command,
      e.sqlstate ?? null,
      e.refusedBy ?? null,
      e.masked !== undefined && e.masked.length > 0 ? canonicalJson(e.masked) : null,
    );
    if (e.refusedBy !== undefined && permits(d)) {
      // Allowed, then stopped by the affected-rows breaker (or an audit refusal at Execute).
      this.#w.record({
        type: 'breaker.trip' satisfies EventType,
        session: s.id,
        identity: auditIdentity(s.identity),
        connection: { name: s.connection.name, environment: s.connection.environment },
        statement: { text: d.statement?.normalized ?? st.text, fingerprint: d.statement?.fingerprint ?? '', kind: d.statement?.kind ?? 'unknown', tables: d.statement?.tables ?? [], protocol: st.protocol },
        refused_by: e.refusedBy,
        rows_affected: e.rows,
        detail: { limit: d.rowCap?.limit, statement_seq: seq },
      });
    }
  }
}
