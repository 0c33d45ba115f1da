/**
 * The audit stage of the statement pipeline: one event per session start and end, connection
 * event and executed statement (refusals included), and, on durable environments, an intent
 * event committed before a write is forwarded (audit before effect).
 *
 * Written for speed: the statement event is the one recorded tens of thousands of times a
 * second, so its canonical JSON is assembled from fragments encoded once (per session: client,
 * connection, identity, session; per decision: decision and statement summary) with its keys
 * already in canonical order. `stage.test.ts` checks it equals `canonicalJson` of the same event.
 */
import type { PipelinePlugin } from '../session/pipeline.js';
import { permits, type ConnectionEvent, type Decision, type Execution, type SessionInfo, type Statement } from '../session/types.js';
import type { Identity } from '../identity/identity.js';
import { canonicalJson, type AuditIdentity, type EventType } from './event.js';
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

interface SessionFragments {
  appName: string;
  client: string;
  readonly connection: string;
  readonly identity: string;
  readonly session: string;
  readonly identityName: string;
  readonly onBehalfOf: string | null;
}

interface DecisionFragments {
  readonly decision: string;
  /** Statement fragment per protocol. */
  readonly statement: Map<string, string>;
}

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
  readonly #nodeFragment: string;
  readonly #sessions = new WeakMap<SessionInfo, SessionFragments>();
  readonly #decisions = new WeakMap<Decision, DecisionFragments>();
  readonly #texts = new WeakMap<Statement, string>();

  constructor(writer: AuditWriter, opts: AuditStageOptions) {
    this.#w = writer;
    this.#opts = opts;
    this.#durable = new Set(opts.durableEnvironments);
    this.#nodeFragment = `,"node":${str(writer.node)}`;
  }

  #fragments(s: SessionInfo): SessionFragments {
    let f = this.#sessions.get(s);
    if (f === undefined) {
      f = {
        appName: s.applicationName,
        client: `{"client":${canonicalJson({ address: s.client.address, application_name: s.applicationName, tls: s.client.tls })}`,
        connection: `,"connection":${canonicalJson({ environment: s.connection.environment, name: s.connection.name })}`,
        identity: `,"identity":${canonicalJson(auditIdentity(s.identity))}`,
        session: `,"session":${str(s.id)}`,
        identityName: s.identity.name,
        onBehalfOf: s.identity.onBehalfOf?.name ?? null,
      };
      this.#sessions.set(s, f);
    } else if (f.appName !== s.applicationName) {
      f.appName = s.applicationName;
      f.client = `{"client":${canonicalJson({ address: s.client.address, application_name: s.applicationName, tls: s.client.tls })}`;
    }
    return f;
  }

  #decisionFragments(d: Decision): DecisionFragments {
    let f = this.#decisions.get(d);
    if (f === undefined) {
      const matches = (d.matches ?? []).map((m) => ({ action: m.action, controls: m.controls.length > 0 ? m.controls : undefined, id: m.id, mode: m.mode }));
      f = { decision: `,"decision":${canonicalJson({ action: d.action, matches, rule: d.ruleId })}`, statement: new Map() };
      this.#decisions.set(d, f);
    }
    return f;
  }

  #statementFragment(st: Statement, d: Decision, df: DecisionFragments): string {
    if (this.#opts.statementText === 'full') {
      let frag = this.#texts.get(st);
      if (frag === undefined) {
        frag = `,"statement":${canonicalJson(this.#statementObject(st, d, st.text))}`;
        if (st.protocol === 'extended') this.#texts.set(st, frag);
      }
      return frag;
    }
    let frag = df.statement.get(st.protocol);
    if (frag === undefined) {
      frag = `,"statement":${canonicalJson(this.#statementObject(st, d, d.statement?.normalized ?? st.text))}`;
      df.statement.set(st.protocol, frag);
    }
    return frag;
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
    const f = this.#fragments(s);
    const d = st.decision;
    const df = this.#decisionFragments(d);
    const seq = w.next();
    const ts = Date.now();
    const body = `${f.client}${f.connection}${df.decision}${f.identity}${this.#nodeFragment},"seq":${seq}${f.session}${this.#statementFragment(st, d, df)},"ts":${ts},"type":"statement.intent"}`;
    const sum = d.statement;
    w.push(seq, ts, 'statement.intent', s.id, f.identityName, f.onBehalfOf, s.connection.name, s.connection.environment, sum?.kind ?? 'unknown', sum && sum.tables.length > 0 ? `,${sum.tables.join(',')},` : null, d.action, body);
    return seq;
  }

  complete(s: SessionInfo, e: Execution): void {
    const w = this.#w;
    const f = this.#fragments(s);
    const st = e.statement;
    const d = st.decision;
    const df = this.#decisionFragments(d);
    const seq = w.next();
    const ts = Date.now();
    let b = f.client;
    // Command tags are keywords and digits; escape only if one ever holds a quote or backslash.
    if (e.command) b += e.command.includes('"') || e.command.includes('\\') ? `,"command":${str(e.command)}` : `,"command":"${e.command}"`;
    b += `${f.connection}${df.decision},"duration_ms":${Math.round(e.durationMs * 1000) / 1000}${f.identity}`;
    if (e.masked !== undefined && e.masked.length > 0) b += `,"masked_columns":${canonicalJson(e.masked)}`;
    b += this.#nodeFragment;
    if (e.refusedBy !== undefined) b += `,"refused_by":${str(e.refusedBy)}`;
    b += affectsRows(e.command) ? `,"rows_affected":${e.rows}` : `,"rows":${e.rows}`;
    b += `,"seq":${seq}${f.session}`;
    if (e.sqlstate !== undefined) b += `,"sqlstate":${str(e.sqlstate)}`;
    b += `${this.#statementFragment(st, d, df)},"ts":${ts},"type":"statement"}`;
    const sum = d.statement;
    const tables = sum && sum.tables.length > 0 ? `,${sum.tables.join(',')},` : null;
    w.push(seq, ts, 'statement', s.id, f.identityName, f.onBehalfOf, s.connection.name, s.connection.environment, sum?.kind ?? 'unknown', tables, d.action, b);
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
