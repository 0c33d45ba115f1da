/**
 * The configuration schema: one YAML file, validated once at load. Every key is documented in
 * docs/configuration.md. Durations are numbers of seconds or strings such as "500ms", "30s", "10m", "8h".
 */
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration, normalized to milliseconds. */
export const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return Math.round(v * 1000);
  const m = DURATION.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "30s", "10m" or "500ms", got "${v}"` });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
});

const port = z.number().int().min(0).max(65535);
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

const listenerTls = z
  .object({
    cert: z.string().describe('PEM certificate chain file'),
    key: z.string().describe('PEM private key file'),
    /** optional: TLS offered; required: plaintext refused. */
    mode: z.enum(['optional', 'required']).default('optional'),
    /** CA bundle that signs client certificates; enables mutual TLS. */
    client_ca: z.string().optional(),
    /** optional: a verified client certificate authenticates; required: connections without one are refused. */
    client_certs: z.enum(['optional', 'required']).default('optional'),
    /** Kind of identity for a certificate CN that is not a local user (SPIFFE IDs are services). */
    client_cert_kind: z.enum(['human', 'agent', 'service']).default('service'),
  })
  .strict();

const postgresListener = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: port.default(6432),
    tls: listenerTls.optional(),
    /** Largest statement (Query/Parse) or other inspected message, in bytes. */
    max_message_bytes: z.number().int().min(1024).default(64 * 1024 * 1024),
    /** Most concurrent client connections per process. */
    max_connections: z.number().int().min(1).default(10000),
    /** Time allowed for startup and authentication. */
    handshake_timeout: duration.default(15_000),
  })
  .strict();

const httpListener = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: port.default(8080),
  })
  .strict();

const upstreamTls = z
  .object({
    /** disable | prefer (TLS if offered) | require | verify-ca | verify-full, as libpq's sslmode. */
    mode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).default('disable'),
    ca: z.string().optional(),
    servername: z.string().optional(),
  })
  .strict();

const upstream = z
  .object({
    host: z.string(),
    port: port.default(5432),
    database: z.string(),
    user: z.string(),
    /** Password from an environment variable (preferred), a file, or interpolated text. */
    password_env: z.string().optional(),
    password_file: z.string().optional(),
    password: z.string().optional(),
    tls: upstreamTls.prefault({}),
    connect_timeout: duration.default(10_000),
  })
  .strict()
  .refine((u) => [u.password_env, u.password_file, u.password].filter((x) => x !== undefined).length <= 1, {
    message: 'give at most one of password_env, password_file and password',
  });

const connection = z
  .object({
    name: z.string().regex(NAME, 'expected a name of letters, digits, "_", "." and "-"'),
    engine: z.enum(['postgres']).default('postgres'),
    environment: z.string().default('development'),
    labels: z.record(z.string(), z.string()).default({}),
    /** Built-in guardrails (docs/policy.md); default: on when environment is "production". */
    guardrails: z.boolean().optional(),
    /**
     * Upstream role per identity: the first entry whose groups, users or kinds match is assumed
     * with SET ROLE after connecting, so the database's own grants apply; clients cannot undo it.
     */
    roles: z
      .array(
        z
          .object({
            role: z.string().min(1),
            groups: z.array(z.string()).default([]),
            users: z.array(z.string()).default([]),
            kinds: z.array(z.enum(['human', 'agent', 'service'])).default([]),
          })
          .strict(),
      )
      .default([]),
    upstream,
  })
  .strict();

const user = z
  .object({
    name: z.string().min(1),
    /** A SCRAM-SHA-256 verifier as made by `gatehouse user add`; never a plain password. */
    password: z.string().regex(/^SCRAM-SHA-256\$/, 'expected a SCRAM-SHA-256 verifier (see `gatehouse user add`), not a plain password'),
    kind: z.enum(['human', 'agent', 'service']).default('human'),
    groups: z.array(z.string()).default([]),
    attributes: z.record(z.string(), z.string()).default({}),
  })
  .strict();

const jwtProvider = z
  .object({
    /** Name of the provider, used in credential ids. */
    name: z.string().regex(NAME, 'expected a name of letters, digits, "_", "." and "-"'),
    issuer: z.string().min(1),
    audience: z.union([z.string(), z.array(z.string()).min(1)]),
    /** Exactly one of jwks_file (relative to this file) and jwks_url. */
    jwks_file: z.string().optional(),
    jwks_url: z.string().url().optional(),
    /** How long fetched keys are reused (a token with an unknown key id refetches sooner). */
    jwks_cache: duration.default(600_000),
    algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).min(1).default(['RS256', 'ES256', 'EdDSA']),
    clock_tolerance: duration.default(30_000),
    /** Kind of identity when no claim says otherwise. */
    kind: z.enum(['human', 'agent', 'service']).default('human'),
    claims: z
      .object({
        name: z.string().default('preferred_username'),
        groups: z.string().default('groups'),
        kind: z.string().default('gatehouse_kind'),
        model: z.string().default('model'),
      })
      .strict()
      .prefault({}),
    /** CI workload claims: when `repository` is present the identity is a service acting for `actor`. */
    workload: z
      .object({
        repository: z.string().default('repository'),
        workflow: z.string().default('workflow'),
        ref: z.string().default('ref'),
        actor: z.string().default('actor'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => (p.jwks_file === undefined) !== (p.jwks_url === undefined), { message: 'give exactly one of jwks_file and jwks_url' });

const auditSink = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('jsonl'),
      /** Sink name: its delivery position is kept in the store under this name. */
      name: z.string().regex(NAME, 'expected a name of letters, digits, "_", "." and "-"'),
      /** File to append to (relative to the configuration file); rotated to <path>.1, .2, ... */
      path: z.string().min(1),
      max_bytes: z.number().int().min(1024).default(100 * 1024 * 1024),
      max_files: z.number().int().min(1).default(10),
      /** How often new events are looked for. */
      interval: duration.default(1000),
    })
    .strict(),
  z
    .object({
      type: z.literal('webhook'),
      name: z.string().regex(NAME, 'expected a name of letters, digits, "_", "." and "-"'),
      /** Receives POSTs of newline-delimited JSON events (Content-Type: application/x-ndjson). */
      url: z.string().url(),
      headers: z.record(z.string(), z.string()).default({}),
      /** Most events per request. */
      batch: z.number().int().min(1).max(10_000).default(500),
      timeout: duration.default(10_000),
      /** Longest wait between retries (backoff doubles from 1s). */
      max_backoff: duration.default(60_000),
      interval: duration.default(1000),
    })
    .strict(),
]);

/** A notification target of approval requests (`approvals.notify`). */
const approvalNotifier = z
  .object({
    /** webhook: the request as JSON; slack: a Slack-compatible incoming-webhook message. */
    type: z.enum(['webhook', 'slack']),
    name: z.string().regex(NAME, 'expected a name of letters, digits, "_", "." and "-"'),
    url: z.string().url(),
    headers: z.record(z.string(), z.string()).default({}),
    timeout: duration.default(10_000),
    /** Attempts after the first failure (backoff doubles from 1s up to max_backoff). */
    retries: z.number().int().min(0).max(50).default(5),
    max_backoff: duration.default(60_000),
  })
  .strict();

export const configSchema = z
  .object({
    listeners: z
      .object({
        postgres: postgresListener.prefault({}),
        http: httpListener.optional(),
      })
      .strict()
      .prefault({}),
    connections: z.array(connection).min(1, 'expected at least one connection'),
    users: z.array(user).default([]),
    auth: z
      .object({
        /** Tokens and JWTs travel as a cleartext password: allowed inside TLS, and from loopback clients only when this is true. */
        cleartext_from_loopback: z.boolean().default(false),
        /** Accept tokens issued with `gatehouse token create` (kept in the state store). */
        tokens: z.boolean().default(false),
        jwt: z.array(jwtProvider).default([]),
        rate_limit: z
          .object({
            max_failures: z.number().int().min(1).default(5),
            max_failures_per_address: z.number().int().min(1).default(50),
            window: duration.default(60_000),
            lockout: duration.default(60_000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    policy: z
      .object({
        /** Policy files (YAML), relative to this file; evaluated in order after the built-in guardrails. */
        files: z.array(z.string()).default([]),
        /** Reload the files when they change (SIGHUP always reloads). */
        watch: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    state: z
      .object({
        /** Directory of the embedded state (store, keys); relative paths are from the working directory. */
        dir: z.string().default('.gatehouse'),
        /**
         * A PostgreSQL database for the state (audit, tokens) instead of the embedded SQLite file,
         * so several nodes share it: "postgres://user:pass@host:5432/db" (use ${VAR} for secrets).
         */
        postgres_url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a URL starting with postgres://').optional(),
      })
      .strict()
      .prefault({}),
    audit: z
      .object({
        /** Record every session, statement and decision in the tamper-evident audit trail. */
        enabled: z.boolean().default(true),
        /** normalized: literals replaced by "?" (default); full: the statement as sent. */
        statement_text: z.enum(['normalized', 'full']).default('normalized'),
        /** Environments whose writes are forwarded only once their event is committed. */
        durable_environments: z.array(z.string()).default(['production']),
        /** Longest time before any other event is committed. */
        flush_delay: duration.default(100),
        /** Most events per store transaction. */
        max_batch: z.number().int().min(1).max(100_000).default(2000),
        /** Events queued for an unavailable store above which every statement is refused. */
        max_pending: z.number().int().min(1000).default(200_000),
        /** How long a store write may wait (e.g. for a lock) before it counts as failed. */
        store_timeout: duration.default(2000),
        /** Ed25519 private key (PEM) signing checkpoints; default <state.dir>/audit-signing.key, created at first start. */
        signing_key: z.string().optional(),
        checkpoint: z
          .object({
            /** Sign the chain's head at least every this many events... */
            every: z.number().int().min(1).default(1000),
            /** ...and at least this often while events arrive (and at shutdown). */
            interval: duration.default(10_000),
          })
          .strict()
          .prefault({}),
        on_store_failure: z
          .object({
            /** While the store cannot be written: reads keep running (allow) or are refused too. */
            reads: z.enum(['allow', 'refuse']).default('allow'),
          })
          .strict()
          .prefault({}),
        retention: z
          .object({
            /** Delete events older than this (by whole signed stretches); absent = keep forever. */
            keep: duration.optional(),
            /** How often the retention job runs. */
            interval: duration.default(3_600_000),
          })
          .strict()
          .prefault({}),
        /** Copies of the trail for a SIEM or log pipeline, delivered at least once, in order per writer. */
        sinks: z.array(auditSink).default([]),
      })
      .strict()
      .prefault({}),
    masking: z
      .object({
        /** Explicit classification: "schema.table.column" (or "table.column") -> class, or "none" to exempt. */
        columns: z.record(z.string(), z.string()).default({}),
        /** Column-name rules evaluated before the defaults: exact names, globs ("*_email") or /regex/. */
        name_rules: z.array(z.object({ pattern: z.string().min(1), class: z.string() }).strict()).default([]),
        /** The built-in column-name rules (email, phone, ssn, card_number, password, ...). */
        name_defaults: z.boolean().default(true),
        /** HMAC key for the hash function (pseudonyms): an environment variable or a file; default <state.dir>/masking.key, created at first use. */
        hash_key_env: z.string().optional(),
        hash_key_file: z.string().optional(),
      })
      .strict()
      .prefault({}),
    approvals: z
      .object({
        /** Approver groups of require_approval rules that name none. */
        groups: z.array(z.string()).default([]),
        /** How long a request stays pending (rules may set their own). */
        expires: duration.default(600_000),
        /** How long an approved request may be run by sending the statement again (retry mode, or a waiting client that went away). */
        run_window: duration.default(3_600_000),
        /** How often a held statement checks the store for a decision made on another node. */
        poll_interval: duration.default(1000),
        /** Base URL of links in notifications and notices (default: the HTTP listener's address). */
        public_url: z.string().url().optional(),
        /** Told when a request is created and when it is decided. */
        notify: z.array(approvalNotifier).default([]),
      })
      .strict()
      .prefault({}),
    api: z
      .object({
        /** Groups whose members may read the audit trail through /api/audit. */
        auditor_groups: z.array(z.string()).default(['auditors']),
        /** Groups whose members may use every API (and read the audit trail). */
        admin_groups: z.array(z.string()).default(['admins']),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        /** One structured line per statement. */
        statements: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    server: z
      .object({
        /** Worker processes sharing the listeners; "auto" = one per core. */
        workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
        /** How long SIGTERM waits for in-flight statements before closing sessions. */
        shutdown_timeout: duration.default(30_000),
        /** Node identifier in logs and (later) audit events; defaults to the host name. */
        node_id: z.string().optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.connections.forEach((conn, i) => {
      if (seen.has(conn.name)) ctx.addIssue({ code: 'custom', path: ['connections', i, 'name'], message: `duplicate connection name "${conn.name}"` });
      seen.add(conn.name);
    });
    const users = new Set<string>();
    c.users.forEach((u, i) => {
      if (users.has(u.name)) ctx.addIssue({ code: 'custom', path: ['users', i, 'name'], message: `duplicate user name "${u.name}"` });
      users.add(u.name);
    });
  });

export type Config = z.output<typeof configSchema>;
export type ConnectionConfig = Config['connections'][number];
export type UserConfig = Config['users'][number];
export type UpstreamConfig = ConnectionConfig['upstream'];
export type JwtProviderConfig = Config['auth']['jwt'][number];
