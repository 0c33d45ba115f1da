/** The pure lifecycle rules of approval requests: votes, quorum, separation of duties, expiry, spending. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyEngine } from '../policy/engine.js';
import { parsePolicyFile } from '../policy/rules.js';
import { ApprovalError, autoApprove, close, effectiveStatus, execute, newApprovalId, statementKey, vote, type ApprovalRequest } from './request.js';

const T = 1_700_000_000_000;

function request(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: newApprovalId(),
    status: 'pending',
    mode: 'wait',
    requester: { name: 'alice-bot', kind: 'agent', groups: [], onBehalfOf: 'alice' },
    connection: 'prod',
    environment: 'production',
    statement: 'ALTER TABLE t ADD COLUMN c int',
    statementKey: statementKey('prod', 'alice-bot', 'ALTER TABLE t ADD COLUMN c int'),
    facts: { kind: 'ALTER TABLE', tables: ['t'], fingerprint: 'f' },
    rule: 'r',
    message: 'm',
    groups: ['dba'],
    quorum: 1,
    votes: [],
    createdAt: T,
    expiresAt: T + 60_000,
    runWindowMs: 10_000,
    session: 's',
    node: 'n',
    ...over,
  };
}

const bob = { name: 'bob', kind: 'human', groups: ['dba'] };
const dave = { name: 'dave', kind: 'human', groups: ['dba', 'leads'] };

const refused = (fn: () => unknown, status: number, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => e instanceof ApprovalError && e.status === status && re.test(e.message));

describe('approval requests', () => {
  it('ids are unique, 100-bit base32', () => {
    const ids = new Set(Array.from({ length: 1000 }, newApprovalId));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^apr_[a-z2-7]{20}$/);
  });

  it('the statement key binds connection, person and exact text', () => {
    const k = statementKey('prod', 'carol', 'ALTER TABLE t ADD c int');
    assert.notEqual(k, statementKey('dev', 'carol', 'ALTER TABLE t ADD c int'));
    assert.notEqual(k, statementKey('prod', 'bob', 'ALTER TABLE t ADD c int'));
    assert.notEqual(k, statementKey('prod', 'carol', 'ALTER TABLE t ADD c  int'));
    assert.notEqual(statementKey('a', 'b\0c', 'd'), statementKey('a', 'b', 'c\0d'));
  });

  it('one approval of a quorum of one approves, with a run window', () => {
    const r = vote(request(), bob, 'approve', T + 5, 'ok');
    assert.equal(r.status, 'approved');
    assert.equal(r.runUntil, T + 5 + 10_000);
    assert.deepEqual(r.votes, [{ name: 'bob', verdict: 'approve', at: T + 5, reason: 'ok' }]);
  });

  it('a quorum of two needs two distinct people', () => {
    let r = vote(request({ quorum: 2 }), bob, 'approve', T);
    assert.equal(r.status, 'pending');
    refused(() => vote(r, bob, 'approve', T), 409, /already approved/);
    r = vote(r, dave, 'approve', T + 1);
    assert.equal(r.status, 'approved');
  });

  it('separation of duties: not the requester, not the person behind an agent, not an agent, only approver groups', () => {
    refused(() => vote(request(), { name: 'alice-bot', kind: 'human', groups: ['dba'] }, 'approve', T), 403, /separation of duties/);
    refused(() => vote(request(), { name: 'alice', kind: 'human', groups: ['dba'] }, 'approve', T), 403, /on behalf of alice/);
    refused(() => vote(request(), { name: 'ci', kind: 'service', groups: ['dba'] }, 'approve', T), 403, /only people/);
    refused(() => vote(request(), { name: 'carol', kind: 'human', groups: ['analysts'] }, 'approve', T), 403, /not in an approver group/);
    // Denying follows the same rules.
    refused(() => vote(request(), { name: 'alice', kind: 'human', groups: ['dba'] }, 'deny', T), 403, /on behalf of alice/);
  });

  it('one denial ends the request', () => {
    const r = vote(vote(request({ quorum: 2 }), bob, 'approve', T), dave, 'deny', T + 1, 'freeze');
    assert.equal(r.status, 'denied');
    assert.equal(r.reason, 'freeze');
    refused(() => vote(r, { name: 'eve', kind: 'human', groups: ['dba'] }, 'approve', T + 2), 409, /is denied/);
  });

  it('past its expiry a pending request reads as expired and takes no votes', () => {
    const r = request();
    assert.equal(effectiveStatus(r, r.expiresAt - 1), 'pending');
    assert.equal(effectiveStatus(r, r.expiresAt), 'expired');
    refused(() => vote(r, bob, 'approve', r.expiresAt), 409, /is expired/);
    assert.equal(close(r, 'expired', r.expiresAt, 'x').status, 'expired');
  });

  it('an approval is spent once, within its run window', () => {
    const a = vote(request(), bob, 'approve', T);
    const e = execute(a, T + 1);
    assert.equal(e.status, 'executed');
    refused(() => execute(e, T + 2), 409, /not approved/);
    refused(() => execute(a, T + 10_001), 409, /usable until/);
    refused(() => execute(request(), T), 409, /not approved/);
  });

  it('only a pending request is cancelled', () => {
    assert.equal(close(request(), 'cancelled', T, 'client').status, 'cancelled');
    refused(() => close(vote(request(), bob, 'approve', T), 'cancelled', T, 'client'), 409, /approved/);
  });

  it('auto-approval is a vote by policy naming the rule', () => {
    const r = autoApprove(request(), 'ci.window', T);
    assert.equal(r.status, 'approved');
    assert.deepEqual(r.votes, [{ name: 'policy', verdict: 'approve', at: T, rule: 'ci.window' }]);
  });
});

describe('approval rules in the policy', () => {
  const engine = (yaml: string): PolicyEngine => new PolicyEngine([{ file: 'p.yaml', policy: parsePolicyFile(yaml, 'p.yaml') }], { guardrails: false });
  const input = { identity: { name: 'carol' }, connection: {}, guardrails: false, connectionName: 'prod', environment: 'production', context: () => ({}) };
  const POLICY = `
rules:
  - id: ddl
    when: statement.kind == "ALTER TABLE"
    action: require_approval
    approval: { mode: retry, groups: [dba, leads], count: 2, expires: 5m, run_window: 30s }
  - id: auto
    when: identity.name == "ci"
    action: auto_approve
`;

  it('require_approval carries the approval plan of its rule', () => {
    const d = engine(POLICY).evaluate({ kind: 'ALTER TABLE' }, input).decision;
    assert.equal(d.action, 'require_approval');
    assert.deepEqual(d.approval, { mode: 'retry', groups: ['dba', 'leads'], quorum: 2, expiresMs: 300_000, runWindowMs: 30_000 });
  });

  it('an auto_approve rule that matches marks the plan approved by policy; it never grants alone', () => {
    const e = engine(POLICY);
    const d = e.evaluate({ kind: 'ALTER TABLE' }, { ...input, identity: { name: 'ci' } }).decision;
    assert.equal(d.approval?.autoApprovedBy, 'auto');
    const other = e.evaluate({ kind: 'SELECT' }, { ...input, identity: { name: 'ci' } }).decision;
    assert.equal(other.action, 'allow');
    assert.equal(other.approval, undefined);
  });

  it('approval settings are refused on other actions, with the file and rule named', () => {
    assert.throws(() => engine('rules:\n  - { id: x, when: "true", action: deny, approval: { mode: wait } }'), /p\.yaml: rule "x": "approval" is only for action require_approval/);
    assert.throws(() => engine('rules:\n  - { id: x, when: "true", action: require_approval, approval: { mode: later } }'), /p\.yaml: rules\[0\]\.approval\.mode/);
  });
});
