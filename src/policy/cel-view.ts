/**
 * The values policy conditions see, built once per facts / identity / connection and reused:
 * `statement` (snake_case facts), `identity`, `connection`, `context`.
 */
import type { ResolvedConnection } from '../config/load.js';
import type { Identity } from '../identity/identity.js';
import type { StatementFacts } from '../sql/facts.js';
import type { SessionInfo } from '../session/types.js';

export type CelObject = Record<string, unknown>;

export function statementView(f: StatementFacts): CelObject {
  return {
    kind: f.kind,
    category: f.category,
    object_type: f.objectType,
    subcommands: f.subcommands,
    tables: f.tables,
    tables_read: f.tablesRead,
    tables_written: f.tablesWritten,
    columns: f.columns,
    writes: f.writes.map((w) => ({ kind: w.kind, table: w.table, bounded: w.bounded, in_cte: w.inCte, upsert: w.upsert === true })),
    has_where: f.hasWhere,
    unbounded_write: f.unboundedWrite,
    has_limit: f.hasLimit,
    functions: f.functions,
    copy_direction: f.copyDirection,
    copy_program: f.copyProgram,
    copy_file: f.copyFile,
    setting: f.setting,
    explain: f.explain,
    analyze: f.analyze,
    prepared_name: f.preparedName,
    execute_name: f.executeName,
    dynamic: f.dynamic,
    multi_statement: f.multiStatement,
    parsed: f.parsed,
    parse_error: f.parseError,
    text: f.text,
  };
}

export function identityView(i: Identity): CelObject {
  return {
    id: i.id,
    kind: i.kind,
    name: i.name,
    groups: [...i.groups],
    attributes: { ...i.attributes },
    auth_method: i.authMethod,
    credential_id: i.credentialId,
    delegated: i.onBehalfOf !== undefined,
    on_behalf_of: i.onBehalfOf ? { id: i.onBehalfOf.id, name: i.onBehalfOf.name, kind: i.onBehalfOf.kind } : { id: '', name: '', kind: '' },
  };
}

export function connectionView(c: Pick<ResolvedConnection, 'name' | 'environment' | 'labels'>): CelObject {
  return { name: c.name, environment: c.environment, labels: { ...c.labels } };
}

export function contextView(s: Pick<SessionInfo, 'client' | 'applicationName' | 'txState'>, protocol: string, now = new Date()): CelObject {
  return {
    time: now.toISOString(),
    hour: now.getUTCHours(),
    weekday: now.getUTCDay(),
    client_address: s.client.address,
    application_name: s.applicationName,
    transaction: s.txState,
    protocol,
  };
}
