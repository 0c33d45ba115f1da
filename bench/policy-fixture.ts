/**
 * The policy the "gatehouse+policy" target and the micro-benchmarks load: 20 rules of the kinds a
 * real deployment writes (deny rules on other tables, group, kind and credential conditions, an
 * audit rule on pgbench_history, row limits, a dry-run rule), none of which matches pgbench's
 * select-only statement for the benchmark user. So the target pays for evaluating every rule (and
 * the built-in guardrails) without any rule changing what pgbench does.
 *
 * No condition reads `context` or statement text: decisions stay cacheable by shape, as they are
 * for most production rules. Missing map keys are guarded with has(): a failing deny condition
 * counts as matched (fail closed) and would refuse pgbench's statement.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** pgbench's built-in select-only statement as the simple protocol sends it (`-M simple`). */
export function pgbenchSelect(aid: number): string {
  return `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`;
}

/**
 * A ~400-character four-table join. `variant` goes into the table aliases (four base-36 digits,
 * so every variant below 36^4 has the same length), so every variant has its own shape key and
 * misses both the facts cache and the session's decision cache.
 */
export function joinStatement(variant: number): string {
  const v = (variant % 36 ** 4).toString(36).padStart(4, '0');
  const [a, b, t, h] = [`a${v}`, `b${v}`, `t${v}`, `h${v}`];
  return (
    `SELECT ${a}.aid, ${a}.abalance, ${b}.bbalance, ${h}.delta, ${h}.mtime ` +
    `FROM pgbench_accounts ${a} JOIN pgbench_branches ${b} ON ${b}.bid = ${a}.bid ` +
    `JOIN pgbench_tellers ${t} ON ${t}.bid = ${b}.bid ` +
    `LEFT JOIN pgbench_history ${h} ON ${h}.tid = ${t}.tid ` +
    `WHERE ${a}.aid BETWEEN 1000 AND 1100 AND ${b}.bid = 3 AND ${h}.mtime > now() - interval '1 day' ` +
    `ORDER BY ${h}.mtime DESC LIMIT 50`
  );
}

interface BenchRule {
  readonly id: string;
  readonly when: string;
  readonly action: 'allow' | 'deny' | 'require_approval' | 'mask' | 'limit_rows' | 'audit';
  readonly message: string;
  readonly mode?: 'enforce' | 'dry-run';
  readonly controls?: readonly string[];
  readonly max_rows?: number;
}

export const BENCH_RULES: readonly BenchRule[] = [
  { id: 'hr.payroll-read', when: '"payroll.salaries" in statement.tables && !("hr" in identity.groups)', action: 'deny', message: 'payroll data is for HR only', controls: ['SOC2:CC6.1'] },
  { id: 'pii.ssn-columns', when: 'statement.columns.exists(c, c == "ssn" || c.endsWith(".ssn") || c == "tax_id") && !("pii-readers" in identity.groups)', action: 'deny', message: 'SSN and tax id columns need the pii-readers group', controls: ['SOC2:CC6.1', 'GDPR:Art32'] },
  { id: 'pii.customer-email', when: '"customers" in statement.tables && statement.columns.exists(c, c.endsWith("email"))', action: 'mask', message: 'customer e-mail addresses are masked' },
  { id: 'agents.no-writes', when: 'identity.kind == "agent" && statement.category == "write"', action: 'deny', message: 'agents may not write', controls: ['NIST:AC-6'] },
  { id: 'agents.ddl-approval', when: 'identity.kind == "agent" && statement.category == "ddl"', action: 'require_approval', message: 'DDL by an agent needs approval' },
  { id: 'agents.row-limit', when: 'identity.kind == "agent" && statement.writes.exists(w, w.kind != "INSERT")', action: 'limit_rows', max_rows: 10, message: 'agents may change at most 10 rows per statement' },
  { id: 'contractors.read-only', when: '"contractors" in identity.groups && connection.environment == "production" && statement.category != "read"', action: 'deny', message: 'contractors have read-only access to production' },
  { id: 'interns.no-schemas', when: '"interns" in identity.groups && statement.tables.exists(t, t.contains("."))', action: 'deny', message: 'interns may only read the public schema' },
  { id: 'audit.no-tamper', when: 'statement.tables_written.exists(t, t.startsWith("audit."))', action: 'deny', message: 'the audit schema is append-only through Gatehouse', controls: ['SOC2:CC7.2'] },
  { id: 'audit.pgbench-history', when: '"pgbench_history" in statement.tables', action: 'audit', message: 'pgbench_history access is audited', controls: ['SOC2:CC7.2'] },
  { id: 'limits.accounts-writes', when: 'statement.writes.exists(w, w.table == "pgbench_accounts" && w.kind != "INSERT")', action: 'limit_rows', max_rows: 100, message: 'at most 100 accounts per statement' },
  { id: 'billing.no-delete', when: 'statement.kind == "DELETE" && statement.tables.exists(t, t.startsWith("billing."))', action: 'deny', message: 'billing rows are never deleted; use the refund flow' },
  { id: 'customers.no-export', when: 'statement.kind == "COPY" && statement.copy_direction == "to" && "customers" in statement.tables', action: 'deny', message: 'bulk export of customers is not allowed' },
  { id: 'secrets.tables', when: 'statement.tables.exists(t, t in ["vault.secrets", "secrets", "api_keys"])', action: 'deny', message: 'secret tables are not reachable through the proxy', controls: ['NIST:SC-28'] },
  { id: 'migrations.approval', when: '"schema_migrations" in statement.tables_written && identity.kind != "service"', action: 'require_approval', message: 'manual schema_migrations changes need approval' },
  { id: 'dba.locks', when: 'statement.kind == "LOCK" && !("dba" in identity.groups)', action: 'deny', message: 'explicit table locks are for DBAs' },
  { id: 'dba.maintenance', when: 'statement.kind in ["VACUUM", "CLUSTER", "REINDEX"] && !("dba" in identity.groups)', action: 'require_approval', message: 'maintenance commands need approval' },
  { id: 'creds.password-auth', when: 'identity.auth_method == "password" && connection.environment == "production"', action: 'deny', message: 'cleartext password logins may not reach production' },
  { id: 'delegation.writes', when: 'identity.delegated && identity.on_behalf_of.kind != "human" && statement.category == "write"', action: 'deny', message: 'delegated writes need a human principal' },
  { id: 'analytics.tellers-dry-run', when: 'has(identity.attributes.team) && identity.attributes.team == "analytics" && "pgbench_tellers" in statement.tables', action: 'deny', mode: 'dry-run', message: 'analytics will lose access to tellers' },
];

/** The policy file's YAML text (JSON is valid YAML; it keeps the CEL quoting simple). */
export function benchPolicyYaml(): string {
  return `# Generated by bench/policy-fixture.ts: ${BENCH_RULES.length} rules, none matching pgbench -S.\n${JSON.stringify({ rules: BENCH_RULES }, null, 2)}\n`;
}

/** Write the policy file into `dir` and return its absolute path. */
export function writeBenchPolicy(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = resolve(join(dir, 'bench-policy.yaml'));
  writeFileSync(file, benchPolicyYaml());
  return file;
}
