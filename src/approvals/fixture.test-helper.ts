/** A sample approval request for unit tests (not a test file itself). */
import type { ApprovalRequest } from './request.js';

/** The fixed "now" of the sample: 2024-05-01T12:00:00Z. */
export const FIXTURE_NOW = Date.UTC(2024, 4, 1, 12, 0, 0);

/** A pending request made by an agent for alice, created at FIXTURE_NOW, expiring 10 minutes later. */
export function sampleRequest(o: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: 'apr_abcdefghijklmnopqrst',
    status: 'pending',
    mode: 'wait',
    requester: { name: 'agent-7', kind: 'agent', groups: ['ci'], onBehalfOf: 'alice' },
    connection: 'prod-db',
    environment: 'production',
    statement: 'ALTER TABLE users ADD COLUMN nickname text',
    statementKey: 'k'.repeat(64),
    facts: { kind: 'ddl', tables: ['public.users'], fingerprint: 'f00' },
    rule: 'guard.ddl-approval',
    message: 'DDL on production requires approval',
    groups: ['dba'],
    quorum: 1,
    votes: [],
    createdAt: FIXTURE_NOW,
    expiresAt: FIXTURE_NOW + 600_000,
    runWindowMs: 3_600_000,
    session: 's-1',
    node: 'node-a',
    ...o,
  };
}
