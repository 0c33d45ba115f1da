/**
 * The built-in guardrail pack, on by default for production connections
 * (connections[].guardrails). A policy file extends or overrides it by rule id: a rule with the
 * same id replaces the fields it names (for example `mode: dry-run` or `max_rows: 500`), and
 * `enabled: false` removes it.
 */
import type { RuleSpec } from './rules.js';

/** Server file and process functions: read or write server files, signal backends, reload config. */
export const DANGEROUS_FUNCTIONS = [
  'pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file', 'pg_ls_logdir', 'pg_ls_waldir', 'pg_ls_tmpdir', 'pg_ls_archive_statusdir',
  'lo_import', 'lo_export', 'pg_file_write', 'pg_file_rename', 'pg_file_unlink', 'pg_logdir_ls',
  'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile', 'pg_promote', 'pg_switch_wal',
  'pg_create_restore_point', 'pg_start_backup', 'pg_stop_backup', 'pg_backup_start', 'pg_backup_stop',
  'pg_drop_replication_slot', 'pg_create_physical_replication_slot', 'pg_create_logical_replication_slot',
  'set_config', 'dblink', 'dblink_exec', 'dblink_connect', 'dblink_connect_u', 'pg_execute_server_program',
];

const list = (xs: readonly string[]): string => `[${xs.map((x) => `"${x}"`).join(', ')}]`;

export const GUARDRAILS: readonly RuleSpec[] = [
  {
    id: 'guard.unparseable',
    description: 'Statements that cannot be analyzed are refused on production.',
    when: '!statement.parsed',
    action: 'deny',
    message: 'statement could not be analyzed, so it is not allowed on production',
    controls: ['SOC2:CC8.1', 'NIST:CM-5'],
  },
  {
    id: 'guard.drop',
    description: 'DROP of any object.',
    when: 'statement.kind == "DROP" || statement.kind == "DROP OWNED"',
    action: 'deny',
    message: 'DROP is not allowed on production',
    controls: ['SOC2:CC8.1', 'NIST:CM-5'],
  },
  {
    id: 'guard.truncate',
    description: 'TRUNCATE.',
    when: 'statement.kind == "TRUNCATE"',
    action: 'deny',
    message: 'TRUNCATE is not allowed on production',
    controls: ['SOC2:CC8.1'],
  },
  {
    id: 'guard.unbounded-write',
    description: 'UPDATE or DELETE (also inside a CTE, or MERGE) without a WHERE that bounds the rows.',
    when: 'statement.unbounded_write',
    action: 'deny',
    message: 'UPDATE/DELETE without a WHERE clause that restricts rows is not allowed on production',
    controls: ['SOC2:CC8.1'],
  },
  {
    id: 'guard.destructive-alter',
    description: 'ALTER that drops a column or constraint, changes a type, or renames.',
    when: `statement.kind.startsWith("ALTER ") && statement.subcommands.exists(s, s in ${list(['DROP COLUMN', 'ALTER COLUMN TYPE', 'RENAME', 'RENAME COLUMN', 'RENAME CONSTRAINT', 'DROP CONSTRAINT'])})`,
    action: 'deny',
    message: 'ALTER that drops, retypes or renames is not allowed on production',
    controls: ['SOC2:CC8.1', 'NIST:CM-5'],
  },
  {
    id: 'guard.privileges',
    description: 'GRANT/REVOKE and role changes.',
    when: 'statement.category == "dcl"',
    action: 'deny',
    message: 'GRANT, REVOKE and role changes are not allowed on production',
    controls: ['SOC2:CC6.3', 'NIST:AC-6(9)'],
  },
  {
    id: 'guard.server-admin',
    description: 'ALTER SYSTEM and LOAD.',
    when: 'statement.kind == "ALTER SYSTEM" || statement.kind == "LOAD"',
    action: 'deny',
    message: 'server configuration changes are not allowed on production',
    controls: ['NIST:CM-5'],
  },
  {
    id: 'guard.copy-server-side',
    description: 'COPY with PROGRAM or a server-side file.',
    when: 'statement.copy_program || statement.copy_file',
    action: 'deny',
    message: 'COPY with PROGRAM or a server file is not allowed on production; use COPY ... STDIN/STDOUT',
    controls: ['NIST:AC-6(9)'],
  },
  {
    id: 'guard.server-functions',
    description: 'Server file and process functions (pg_read_file, lo_import/lo_export, pg_terminate_backend and kin), set_config, dblink.',
    when: `statement.functions.exists(f, f in ${list(DANGEROUS_FUNCTIONS)})`,
    action: 'deny',
    message: 'server file, process and configuration functions are not allowed on production',
    controls: ['NIST:AC-6(9)'],
  },
  {
    id: 'guard.lexical-settings',
    description: 'SET standard_conforming_strings / client_encoding: they change how the server reads the statements that follow.',
    when: 'statement.setting in ["standard_conforming_strings", "client_encoding", "names"]',
    action: 'deny',
    message: 'changing standard_conforming_strings or client_encoding is not allowed on production (statements after it could not be analyzed reliably)',
    controls: ['SOC2:CC8.1'],
  },
  {
    id: 'guard.unclassified',
    description: 'A statement the analyzer parsed but could not classify.',
    when: 'statement.parsed && statement.category == "unknown" && !statement.dynamic',
    action: 'deny',
    message: 'statement type is not classified, so it is not allowed on production',
    controls: ['SOC2:CC8.1'],
  },
  {
    id: 'guard.session-identity',
    description: 'SET ROLE, SET SESSION AUTHORIZATION, SET session_replication_role (and RESET of them).',
    when: 'statement.setting in ["role", "session_authorization", "session_replication_role"]',
    action: 'deny',
    message: 'changing the session role, authorization or replication role is not allowed on production',
    controls: ['SOC2:CC6.3', 'NIST:AC-6(9)'],
  },
  {
    id: 'guard.dynamic-sql',
    description: 'DO blocks, CREATE FUNCTION/PROCEDURE/TRIGGER/RULE, CALL, EXECUTE of unknown statements, fastpath calls: not analyzable.',
    when: 'statement.dynamic',
    action: 'deny',
    message: 'dynamic SQL (DO blocks, functions, procedures, triggers) cannot be analyzed, so it is not allowed on production',
    controls: ['SOC2:CC8.1'],
  },
  {
    id: 'guard.uncappable-write',
    description: 'UPDATE/DELETE/MERGE whose affected rows the breaker cannot see: inside a CTE or COPY (query), or under EXPLAIN ANALYZE.',
    when: 'statement.writes.exists(w, (w.kind != "INSERT" || w.upsert) && (w.in_cte || statement.analyze))',
    action: 'deny',
    message: 'the row limit cannot be enforced on a data-modifying CTE or EXPLAIN ANALYZE; run the UPDATE/DELETE directly',
    controls: ['SOC2:CC8.1'],
  },
  {
    id: 'guard.ddl-approval',
    description: 'Other DDL on production needs approval.',
    // DROP, TRUNCATE and destructive ALTERs have rules of their own (so a dry-run of those lets them through).
    when: `statement.category == "ddl" && statement.kind != "DROP" && !(statement.kind.startsWith("ALTER ") && statement.subcommands.exists(s, s in ${list(['DROP COLUMN', 'ALTER COLUMN TYPE', 'RENAME', 'RENAME COLUMN', 'RENAME CONSTRAINT', 'DROP CONSTRAINT'])}))`,
    action: 'require_approval',
    message: 'DDL on production requires approval',
    controls: ['SOC2:CC8.1', 'NIST:CM-3'],
  },
  {
    id: 'guard.row-cap',
    description: 'Affected-rows circuit breaker for UPDATE, DELETE and MERGE.',
    when: 'statement.writes.exists(w, w.kind != "INSERT" || w.upsert)',
    action: 'limit_rows',
    max_rows: 1000,
    message: 'the statement would change more rows than allowed on production',
    controls: ['SOC2:CC8.1'],
  },
];
