/**
 * The policy stage of the statement pipeline: text -> facts (cached by shape key) -> decision
 * (cached per session by shape, unless a rule reads `context` or statement text). Dry-run matches
 * are logged. SQL-level PREPARE/EXECUTE is resolved per session. Analysis fails closed when the
 * session's settings would make the server read the text differently from our parser.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ResolvedConnection } from '../config/load.js';
import { emptyFacts, type StatementFacts } from '../sql/facts.js';
import { analyzePostgres } from '../sql/pg-analyzer.js';
import { hasKey, statementKey } from '../sql/statement-key.js';
import type { PipelinePlugin } from '../session/pipeline.js';
import { permits, type Decision, type Execution, type SessionInfo, type Statement, type StatementSummary } from '../session/types.js';
import { contextView, statementView, type CelObject } from './cel-view.js';
import { createPolicyInput, decideStatements } from './decide.js';
import type { PolicyEngine, PolicyInput } from './engine.js';

/** Analyzed statements of one query text, with their CEL views. */
export interface Analysis {
  readonly facts: readonly StatementFacts[];
  readonly views: readonly CelObject[];
  readonly cacheable: boolean;
}

/**
 * Statements that would undo an upstream role mapping: SET/RESET ROLE, SESSION AUTHORIZATION,
 * RESET ALL, DISCARD ALL, set_config(), and anything unparseable or dynamic.
 */
function escapesRoleMapping(f: StatementFacts): boolean {
  return (
    f.setting === 'role' ||
    f.setting === 'session_authorization' ||
    f.setting === 'all' ||
    f.kind === 'DISCARD' ||
    f.functions.includes('set_config') ||
    !f.parsed ||
    f.dynamic
  );
}

/** Kinds that change nothing in the database (besides the session's own settings). */
const NON_MUTATING = new Set(['SELECT', 'SHOW', 'SET', 'RESET', 'BEGIN', 'START TRANSACTION', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'ROLLBACK TO', 'PREPARE TRANSACTION', 'EXPLAIN', 'FETCH', 'MOVE', 'CLOSE', 'DECLARE', 'DEALLOCATE', 'DISCARD', 'LISTEN', 'UNLISTEN']);

/** Whether a statement may change data, schema or grants (unknown and dynamic ones may). */
function mutates(f: StatementFacts): boolean {
  if (!f.parsed || f.dynamic || f.writes.length > 0 || f.copyDirection === 'from') return true;
  if (f.category === 'read' || f.category === 'tcl') return false;
  return !NON_MUTATING.has(f.kind);
}

/**
 * The audit summary of a decided text: `key` is its shape key (literals are NUL + a type letter),
 * rendered with `?` in place of each literal; the fingerprint is a digest of the key.
 */
export function summarize(facts: readonly StatementFacts[], key: string): StatementSummary {
  const parts = key.split('\u0000');
  let normalized = parts[0]!;
  for (let i = 1; i < parts.length; i++) normalized += `?${parts[i]!.slice(1)}`;
  const principal = facts.find((f) => f.category !== 'tcl') ?? facts[0];
  const tables = [...new Set(facts.flatMap((f) => f.tables))];
  return {
    normalized,
    fingerprint: createHash('sha256').update(key).digest('hex').slice(0, 16),
    kind: principal?.kind ?? 'unknown',
    tables,
    mutates: facts.some(mutates),
    copyTo: facts.some((f) => f.copyDirection === 'to'),
  };
}

/** Client encodings whose multibyte characters can contain ASCII quote or backslash bytes. */
const UNSAFE_ENCODINGS = new Set(['SJIS', 'SHIFT_JIS_2004', 'BIG5', 'GBK', 'UHC', 'GB18030', 'JOHAB']);

/** Whether a client_encoding lets the text be analyzed (ASCII-safe: not one of the encodings whose multibyte characters can hold a quote or backslash byte). */
const safeEncoding = (enc: string | undefined): boolean => enc === undefined || !UNSAFE_ENCODINGS.has(enc.toUpperCase());

/** Facts cache by shape key, shared by all sessions; bounded, oldest evicted first. */
export class FactsCache {
  readonly #map = new Map<string, Analysis>();
  constructor(readonly max = 10_000) {}

  analyze(text: string): Analysis {
    const key = statementKey(text);
    const hit = this.#map.get(key);
    if (hit !== undefined) return hit;
    const facts = analyzePostgres(text);
    const analysis: Analysis = { facts, views: facts.map(statementView), cacheable: facts.every((f) => f.cacheable) };
    if (analysis.cacheable) {
      if (this.#map.size >= this.max) this.#map.delete(this.#map.keys().next().value!);
      this.#map.set(key, analysis);
    }
    return analysis;
  }

  get size(): number {
    return this.#map.size;
  }
}

function failClosed(text: string, reason: string): Analysis {
  const f = emptyFacts(text);
  f.parseError = reason;
  return { facts: [f], views: [statementView(f)], cacheable: false };
}

interface SessionState {
  readonly input: PolicyInput;
  /** Decisions by shape key, for this session's identity and connection. */
  readonly decisions: Map<string, Decision>;
  generation: number;
  /**
   * Named prepared statements (SQL PREPARE and protocol-level Parse share one name space):
   * name -> analysis, or null when Gatehouse cannot be sure what the name holds now.
   */
  readonly prepared: Map<string, Analysis | null>;
  /** SQL PREPAREs waiting for their outcome: recorded only once the server accepted them. */
  readonly pendingPrepare: WeakMap<Statement, Array<[string, Analysis]>>;
  /** The client_encoding last seen, and whether it is safe to analyze. */
  encoding: string | undefined;
  encodingSafe: boolean;
  /**
   * The text of the last statement decided from the cache (or put into it), and that decision:
   * a driver that sends one statement again and again (extended protocol: the same Parse text
   * each time) is answered without computing the shape key.
   */
  lastText: string | undefined;
  lastDecision: Decision | undefined;
  /** The shape key of lastText (lastDecision is the decision of every text of that shape). */
  lastKey: string | undefined;
}

export interface PolicyStageOptions {
  readonly logger: Logger;
  /** Built-in guardrails on this connection? */
  readonly guardrailsFor: (connection: ResolvedConnection) => boolean;
  readonly factsCache?: FactsCache;
  /** Most decisions cached per session. */
  readonly maxSessionDecisions?: number;
}

/** The policy stage; `engine` can be swapped on reload without dropping sessions. */
export class PolicyStage implements PipelinePlugin {
  readonly name = 'policy';
  #engine: PolicyEngine;
  #generation = 0;
  /** PREPAREs waiting for their outcome, in all sessions (an upper bound: a statement dropped unexecuted keeps its count). */
  #pendingPrepares = 0;
  readonly facts: FactsCache;
  readonly #sessions = new WeakMap<SessionInfo, SessionState>();
  readonly #opts: PolicyStageOptions;
  readonly #log: Logger;

  constructor(engine: PolicyEngine, opts: PolicyStageOptions) {
    this.#engine = engine;
    this.#opts = opts;
    this.#log = opts.logger;
    this.facts = opts.factsCache ?? new FactsCache();
    engine.onError = (rule, err) => this.#log.warn({ rule: rule.id, err: (err as Error).message }, 'policy rule failed to evaluate');
  }

  get engine(): PolicyEngine {
    return this.#engine;
  }

  /** Replace the policy (reload); cached decisions are dropped lazily. */
  swap(engine: PolicyEngine): void {
    engine.onError = this.#engine.onError;
    this.#engine = engine;
    this.#generation++;
  }

  #state(session: SessionInfo): SessionState {
    let s = this.#sessions.get(session);
    if (s === undefined) {
      const conn = session.connection;
      s = {
        input: createPolicyInput(session.identity, conn, this.#opts.guardrailsFor(conn), () => contextView(session, 'simple')),
        decisions: new Map(),
        generation: this.#generation,
        prepared: new Map(),
        pendingPrepare: new WeakMap(),
        encoding: undefined,
        encodingSafe: true,
        lastText: undefined,
        lastDecision: undefined,
        lastKey: undefined,
      };
      this.#sessions.set(session, s);
    }
    if (s.generation !== this.#generation) {
      s.decisions.clear();
      s.lastText = s.lastDecision = s.lastKey = undefined;
      s.generation = this.#generation;
    }
    return s;
  }

  /** A decision taken again from the session's cache (dry-run matches are logged each time). */
  #fromCache(d: Decision, session: SessionInfo, text: string): Decision {
    if (d.matches !== undefined && d.matches.length > 0) this.#logDryRun(d, session, text);
    return d;
  }

  /** Analysis of a statement in a session, failing closed on unsafe session settings. */
  analyze(session: SessionInfo, text: string): Analysis {
    const params = session.serverParams;
    if (params.get('standard_conforming_strings') === 'off') {
      return failClosed(text, 'standard_conforming_strings is off: the statement cannot be analyzed reliably');
    }
    const enc = params.get('client_encoding');
    if (!safeEncoding(enc)) {
      return failClosed(text, `client_encoding ${enc} cannot be analyzed reliably; use UTF8`);
    }
    // Facts cached by shape carry the first text of that shape: rules that read the text need
    // this statement's own.
    if (this.#engine.readsText) {
      const facts = analyzePostgres(text);
      return { facts, views: facts.map(statementView), cacheable: false };
    }
    return this.facts.analyze(text);
  }

  decide(session: SessionInfo, statement: Statement): Decision {
    const state = this.#state(session);
    if (statement.protocol === 'fastpath') {
      // A function called by oid could be set_config('role', ...): never on a role-mapped connection.
      const f = emptyFacts(statement.text);
      f.kind = 'FUNCTION CALL';
      f.parsed = true;
      f.dynamic = true;
      const summary = summarize([f], statement.text);
      if (session.upstreamRole !== undefined) return { action: 'deny', ruleId: 'gatehouse.role-mapping', message: `fastpath function calls are not allowed on a connection that maps you to the database role "${session.upstreamRole}"`, statement: summary };
      return { ...this.#evaluateFull(state, { facts: [f], views: [statementView(f)], cacheable: false }, session, statement.text).decision, statement: summary };
    }
    const text = statement.text;
    const params = session.serverParams;
    const enc = params.get('client_encoding');
    // The encoding is checked again only when the server reports a different one.
    if (enc !== state.encoding) {
      state.encoding = enc;
      state.encodingSafe = safeEncoding(enc);
    }
    const safe = state.encodingSafe && params.get('standard_conforming_strings') !== 'off';
    // Fast paths: the very text decided last (compared as strings, usually the same one from the
    // relay's RepeatDecoder), then the same shape decided before in this session.
    if (safe && text === state.lastText) return this.#fromCache(state.lastDecision!, session, text);
    // ... the shape decided last, with other literals (checked without building the key).
    if (safe && state.lastKey !== undefined && hasKey(text, state.lastKey)) {
      state.lastText = text;
      return this.#fromCache(state.lastDecision!, session, text);
    }
    const cacheKey = statementKey(text);
    const cached = safe ? state.decisions.get(cacheKey) : undefined;
    if (cached !== undefined) {
      state.lastText = text;
      state.lastDecision = cached;
      state.lastKey = cacheKey;
      return this.#fromCache(cached, session, text);
    }
    let analysis = this.analyze(session, text);
    analysis = this.#resolveExecute(state, analysis);
    if (session.upstreamRole !== undefined) {
      const escape = analysis.facts.find(escapesRoleMapping);
      if (escape !== undefined) {
        return {
          action: 'deny',
          ruleId: 'gatehouse.role-mapping',
          message: `this connection maps you to the database role "${session.upstreamRole}"; changing the role or resetting the session is not allowed`,
          statement: summarize(analysis.facts, cacheKey),
        };
      }
    }
    const evaluated = this.#evaluateFull(state, analysis, session, text);
    const volatile = evaluated.volatile;
    const decision: Decision = { ...evaluated.decision, statement: summarize(analysis.facts, cacheKey) };
    if (safe && !volatile && analysis.cacheable && !analysis.facts.some((f) => f.preparedName || f.executeName)) {
      if (state.decisions.size >= (this.#opts.maxSessionDecisions ?? 1000)) state.decisions.clear();
      state.decisions.set(cacheKey, decision);
      state.lastText = text;
      state.lastDecision = decision;
      state.lastKey = cacheKey;
    }
    if (permits(decision)) this.#trackPrepared(state, statement, analysis);
    return decision;
  }

  /**
   * Keep the name -> statement map EXECUTE is resolved with. Fail closed: a name that may hold
   * something else than what we recorded becomes unknown (null), which EXECUTE treats as dynamic.
   */
  #trackPrepared(state: SessionState, statement: Statement, analysis: Analysis): void {
    if (statement.protocol === 'extended' && statement.name !== '') {
      // Protocol-level Parse of a named statement; if the name is taken the Parse fails and the
      // old statement stays, so a known name becomes unknown rather than overwritten.
      const name = statement.name;
      state.prepared.set(name, state.prepared.has(name) ? null : analysis);
      return;
    }
    const pending: Array<[string, Analysis]> = [];
    for (const f of analysis.facts) {
      if (f.preparedName) pending.push([f.preparedName, { facts: [f], views: [statementView(f)], cacheable: false }]);
      if (f.kind === 'DEALLOCATE' || f.kind === 'DISCARD') state.prepared.clear();
    }
    if (pending.length > 0) {
      state.pendingPrepare.set(statement, pending);
      this.#pendingPrepares++;
    }
  }

  /** Outcome of an execution: commit the PREPAREs the server accepted. */
  complete(session: SessionInfo, execution: Execution): void {
    if (this.#pendingPrepares === 0) return;
    const state = this.#sessions.get(session);
    const pending = state?.pendingPrepare.get(execution.statement);
    if (state === undefined || pending === undefined) return;
    state.pendingPrepare.delete(execution.statement);
    this.#pendingPrepares--;
    for (const [name, analysis] of pending) {
      if (execution.sqlstate !== undefined || state.prepared.has(name)) state.prepared.set(name, null);
      else state.prepared.set(name, analysis);
    }
  }

  /** EXECUTE name -> the facts of the statement PREPAREd under that name in this session. */
  #resolveExecute(state: SessionState, analysis: Analysis): Analysis {
    if (!analysis.facts.some((f) => f.executeName)) return analysis;
    const facts: StatementFacts[] = [];
    for (const f of analysis.facts) {
      const prepared = f.executeName ? state.prepared.get(f.executeName) : undefined;
      // EXPLAIN ANALYZE EXECUTE p keeps its EXPLAIN flags: the breaker cannot see those rows.
      if (prepared) facts.push({ ...prepared.facts[0]!, text: f.text, preparedName: '', executeName: f.executeName, explain: f.explain, analyze: f.analyze });
      else facts.push(f);
    }
    return { facts, views: facts.map(statementView), cacheable: false };
  }

  #evaluateFull(state: SessionState, analysis: Analysis, session: SessionInfo, text: string): { decision: Decision; volatile: boolean } {
    const { decision, volatile } = decideStatements(this.#engine, analysis, state.input);
    this.#logDryRun(decision, session, text);
    return { decision, volatile };
  }

  /** Dry-run matches are logged on every execution, cached decision or not. */
  #logDryRun(decision: Decision, session: SessionInfo, text: string): void {
    const dry = decision.matches?.filter((m) => m.mode === 'dry-run');
    if (dry === undefined || dry.length === 0) return;
    this.#log.info(
      { event: 'policy_dry_run', session: session.id, user: session.identity.name, connection: session.connection.name, rules: dry.map((m) => `${m.id}:${m.action}`), statement: text.slice(0, 2048) },
      'dry-run rule matched; statement not affected',
    );
  }
}
