/**
 * The statement pipeline: the interception points every engine calls. Stages are declared as
 * plugins; `createPipeline` composes them once, at start, into one function per phase, and a
 * phase no plugin uses is `null` so the engine skips it entirely on the hot path.
 *
 * Phases, in order for each statement:
 *   decide   before the statement reaches the database -> Decision (sync, or a promise when a
 *            stage must wait, e.g. for an approval or a durable audit record); a later stage
 *            sees the earlier stages' decision in `statement.decision`
 *   approve  when a decision is require_approval: the approvals stage turns it into a
 *            permission (approved, possibly after waiting) or a refusal; the remaining deciders
 *            then run on the permission
 *   admit    before each execution of an already decided prepared statement (extended
 *            protocol Execute) -> undefined to go ahead now, or a promise of undefined (go
 *            ahead) or of a refusal
 *   result   when the result's columns are known -> RowTransform | null (masking)
 *   complete when the execution finished (rows, duration, error) -> audit, logs, metrics
 *   sessionStart / sessionEnd
 */
import { ALLOW, permits, type ConnectionEvent, type Decision, type Execution, type ResultColumn, type RowTransform, type SessionInfo, type Statement } from './types.js';

export interface PipelinePlugin {
  /** Name, for logs and errors. */
  readonly name: string;
  sessionStart?(session: SessionInfo): void;
  /** Decide on a statement; return undefined to abstain. The first refusal wins. */
  decide?(session: SessionInfo, statement: Statement): Decision | undefined | Promise<Decision | undefined>;
  /** A row transform for this result, or null for none (a promise when it needs data first, e.g. catalog lookups). */
  result?(session: SessionInfo, execution: Execution, columns: readonly ResultColumn[]): RowTransform | null | Promise<RowTransform | null>;
  /** Rewrite a text the database sends about a statement (error and notice messages) before the client sees it. */
  scrub?(session: SessionInfo, statement: Statement, text: string): string;
  /** A require_approval decision -> allowed (approved) or refused, possibly after waiting. */
  approve?(session: SessionInfo, statement: Statement, decision: Decision): Decision | Promise<Decision>;
  /** The client asked to cancel what its session is running (CancelRequest): stop waiting. */
  interrupt?(session: SessionInfo): void;
  /** Before an Execute of a prepared statement: wait (promise) or refuse. */
  admit?(session: SessionInfo, statement: Statement): Promise<Decision | undefined> | undefined;
  complete?(session: SessionInfo, execution: Execution): void;
  sessionEnd?(session: SessionInfo, reason: string): void;
  /** Connection-level events: authentication success and failure, sessions that failed to start. */
  connectionEvent?(event: ConnectionEvent): void;
}

export interface Pipeline {
  readonly sessionStart: ((session: SessionInfo) => void) | null;
  readonly decide: ((session: SessionInfo, statement: Statement) => Decision | Promise<Decision>) | null;
  readonly result: ((session: SessionInfo, execution: Execution, columns: readonly ResultColumn[]) => RowTransform | null | Promise<RowTransform | null>) | null;
  readonly complete: ((session: SessionInfo, execution: Execution) => void) | null;
  readonly admit: ((session: SessionInfo, statement: Statement) => Promise<Decision | undefined> | undefined) | null;
  readonly interrupt: ((session: SessionInfo) => void) | null;
  readonly scrub: ((session: SessionInfo, statement: Statement, text: string) => string) | null;
  readonly sessionEnd: ((session: SessionInfo, reason: string) => void) | null;
  readonly connectionEvent: ((event: ConnectionEvent) => void) | null;
}

function isPromise<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as Promise<T>).then === 'function';
}

type Decider = (session: SessionInfo, statement: Statement) => Decision | undefined | Promise<Decision | undefined>;
type Approver = (session: SessionInfo, statement: Statement, decision: Decision) => Decision | Promise<Decision>;

/**
 * Run deciders from `i` on, without awaiting the synchronous ones (no closure per statement);
 * the first refusal wins. `last` is the permission so far. A require_approval decision goes to
 * the approving stage first (without one, it refuses).
 */
function runDeciders(deciders: readonly Decider[], approve: Approver | null, session: SessionInfo, statement: Statement, i: number, last: Decision): Decision | Promise<Decision> {
  for (; i < deciders.length; i++) {
    const raw = deciders[i]!(session, statement);
    if (raw === undefined) continue;
    // Rare (a promise, or an approval to resolve): continue from the settled decision.
    if (isPromise<Decision | undefined>(raw) || (approve !== null && raw.action === 'require_approval')) return settleDecision(deciders, approve, session, statement, raw, i + 1, last);
    if (!permits(raw)) return raw;
    statement.decision = last = raw;
  }
  return last;
}

async function settleDecision(
  deciders: readonly Decider[],
  approve: Approver | null,
  session: SessionInfo,
  statement: Statement,
  pending: Decision | undefined | Promise<Decision | undefined>,
  next: number,
  last: Decision,
): Promise<Decision> {
  let d = await pending;
  if (d === undefined) return runDeciders(deciders, approve, session, statement, next, last);
  if (approve !== null && d.action === 'require_approval') d = await approve(session, statement, d);
  if (!permits(d)) return d;
  statement.decision = d;
  return runDeciders(deciders, approve, session, statement, next, d);
}

/** Compose plugins into the pipeline. Done once; plugins cannot be added afterwards. */
export function createPipeline(plugins: readonly PipelinePlugin[]): Pipeline {
  const starts = plugins.filter((p) => p.sessionStart).map((p) => p.sessionStart!.bind(p));
  const deciders = plugins.filter((p) => p.decide).map((p) => p.decide!.bind(p));
  const results = plugins.filter((p) => p.result).map((p) => p.result!.bind(p));
  const completes = plugins.filter((p) => p.complete).map((p) => p.complete!.bind(p));
  const ends = plugins.filter((p) => p.sessionEnd).map((p) => p.sessionEnd!.bind(p));
  const admits = plugins.filter((p) => p.admit).map((p) => p.admit!.bind(p));
  const connEvents = plugins.filter((p) => p.connectionEvent).map((p) => p.connectionEvent!.bind(p));
  const scrubs = plugins.filter((p) => p.scrub).map((p) => p.scrub!.bind(p));
  const interrupts = plugins.filter((p) => p.interrupt).map((p) => p.interrupt!.bind(p));
  const approvers = plugins.filter((p) => p.approve);
  if (approvers.length > 1) throw new Error(`only one pipeline stage may approve (${approvers.map((p) => p.name).join(', ')})`);
  const approve = approvers.length === 0 ? null : approvers[0]!.approve!.bind(approvers[0]!);

  const decide =
    deciders.length === 0
      ? null
      : (session: SessionInfo, statement: Statement): Decision | Promise<Decision> => {
          statement.decision = ALLOW;
          return runDeciders(deciders, approve, session, statement, 0, ALLOW);
        };

  const result =
    results.length === 0
      ? null
      : results.length === 1
        ? results[0]!
        : (session: SessionInfo, execution: Execution, columns: readonly ResultColumn[]): RowTransform | null | Promise<RowTransform | null> => {
            const all = results.map((r) => r(session, execution, columns));
            const chain = (ts: ReadonlyArray<RowTransform | null>): RowTransform | null => {
              const chosen = ts.filter((t): t is RowTransform => t !== null);
              if (chosen.length <= 1) return chosen[0] ?? null;
              return (values, cols) => {
                for (const t of chosen) values = t(values, cols);
                return values;
              };
            };
            return all.some((t) => t instanceof Promise) ? Promise.all(all).then(chain) : chain(all as Array<RowTransform | null>);
          };

  return {
    sessionStart: starts.length === 0 ? null : (s) => starts.forEach((f) => f(s)),
    decide,
    result,
    complete:
      completes.length === 0
        ? null
        : completes.length === 1
          ? completes[0]!
          : (s, e) => {
              for (let i = 0; i < completes.length; i++) completes[i]!(s, e);
            },
    admit:
      admits.length === 0
        ? null
        : admits.length === 1
          ? admits[0]!
          : (s, st) => {
              // Sequential: each admit may wait; the first refusal wins.
              const step = (i: number): Promise<Decision | undefined> | undefined => {
                for (; i < admits.length; i++) {
                  const w = admits[i]!(s, st);
                  if (w === undefined) continue;
                  const next = i + 1;
                  return w.then((r) => (r !== undefined && !permits(r) ? r : step(next)));
                }
                return undefined;
              };
              return step(0);
            },
    interrupt: interrupts.length === 0 ? null : (s) => interrupts.forEach((f) => f(s)),
    scrub: scrubs.length === 0 ? null : (s, st, text) => scrubs.reduce((t, f) => f(s, st, t), text),
    sessionEnd: ends.length === 0 ? null : (s, r) => ends.forEach((f) => f(s, r)),
    connectionEvent: connEvents.length === 0 ? null : (e) => connEvents.forEach((f) => f(e)),
  };
}
