/**
 * Load a configuration file: YAML -> `${VAR}` interpolation -> schema validation -> resolution of
 * files and secrets. Every failure is a ConfigError that names the file, the key and what was
 * expected; `gatehouse check` prints exactly that.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseYaml } from './yaml.js';
import { configSchema, type Config, type ConnectionConfig } from './schema.js';

/** A connection with its upstream secret resolved and its TLS material loaded. */
export interface ResolvedConnection extends ConnectionConfig {
  /** Upstream password (from env, file or text); undefined for trust/peer upstreams. */
  readonly upstreamPassword: string | undefined;
  /** CA bundle for verify-ca/verify-full, if configured. */
  readonly upstreamCa: Buffer | undefined;
}

export interface LoadedConfig {
  /** Absolute path of the file. */
  readonly file: string;
  readonly config: Config;
  readonly connections: ReadonlyMap<string, ResolvedConnection>;
  /** Listener TLS, if configured. */
  readonly listenerTls: SecureContext | undefined;
  /** Absolute state directory. */
  readonly stateDir: string;
  /** Absolute paths of the policy files. */
  readonly policyFiles: readonly string[];
}

type Path = ReadonlyArray<PropertyKey>;

function keyPath(path: Path): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out || '(top level)';
}

function fail(file: string, path: Path, message: string): never {
  throw new ConfigError(`${file}: ${keyPath(path)}: ${message}`);
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$\{/g;

/** Replace `${VAR}` / `${VAR:-default}` in every string value; `$${` escapes a literal `${`. */
export function interpolate(value: unknown, env: NodeJS.ProcessEnv, file: string, path: PropertyKey[] = []): unknown {
  if (typeof value === 'string') {
    // A value that is exactly one ${VAR} takes the type YAML would give the text: `port: ${PGPORT}` is a number.
    const whole = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/.test(value);
    const out = value.replace(VAR, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$${') return '${';
      const v = env[name!];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      return fail(file, path, `environment variable ${name} is not set (write \${${name}:-default} for a default)`);
    });
    if (whole) {
      if (/^-?\d+(?:\.\d+)?$/.test(out)) return Number(out);
      if (out === 'true' || out === 'false') return out === 'true';
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, file, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, file, [...path, k]);
    return out;
  }
  return value;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type') {
    return `expected ${issue.expected}${issue.message.includes('received') ? `, ${issue.message.slice(issue.message.indexOf('received'))}` : ''}`;
  }
  return issue.message;
}

/** Parse and validate configuration text (no file access besides what it references). */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const raw = parseYaml(text, file);
  if (typeof raw !== 'object' || Array.isArray(raw)) fail(file, [], 'expected a mapping of keys (listeners, connections, users, ...)');
  const interpolated = interpolate(raw, env, file);
  const result = configSchema.safeParse(interpolated);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const more = result.error.issues.length > 1 ? ` (and ${result.error.issues.length - 1} more problem${result.error.issues.length > 2 ? 's' : ''})` : '';
    fail(file, issue.path, describeIssue(issue) + more);
  }
  const config = result.data;
  const base = dirname(file);
  const rel = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const readFile = (p: string, path: Path, what: string): Buffer => {
    try {
      return readFileSync(rel(p));
    } catch (err) {
      return fail(file, path, `cannot read ${what} "${p}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };

  const connections = new Map<string, ResolvedConnection>();
  config.connections.forEach((c, i) => {
    const up = c.upstream;
    let upstreamPassword: string | undefined;
    if (up.password_env !== undefined) {
      upstreamPassword = env[up.password_env];
      if (upstreamPassword === undefined) fail(file, ['connections', i, 'upstream', 'password_env'], `environment variable ${up.password_env} is not set`);
    } else if (up.password_file !== undefined) {
      upstreamPassword = readFile(up.password_file, ['connections', i, 'upstream', 'password_file'], 'password file').toString('utf8').replace(/\r?\n$/, '');
    } else {
      upstreamPassword = up.password;
    }
    const upstreamCa = up.tls.ca !== undefined ? readFile(up.tls.ca, ['connections', i, 'upstream', 'tls', 'ca'], 'CA file') : undefined;
    if ((up.tls.mode === 'verify-ca' || up.tls.mode === 'verify-full') && upstreamCa === undefined) {
      // Without a CA file the system store is used; that is valid, nothing to check.
    }
    connections.set(c.name, { ...c, upstreamPassword, upstreamCa });
  });

  let listenerTls: SecureContext | undefined;
  const tls = config.listeners.postgres.tls;
  if (tls) {
    const cert = readFile(tls.cert, ['listeners', 'postgres', 'tls', 'cert'], 'certificate');
    const key = readFile(tls.key, ['listeners', 'postgres', 'tls', 'key'], 'private key');
    const ca = tls.client_ca !== undefined ? readFile(tls.client_ca, ['listeners', 'postgres', 'tls', 'client_ca'], 'client CA file') : undefined;
    try {
      listenerTls = createSecureContext({ cert, key, ca, minVersion: 'TLSv1.2' });
    } catch (err) {
      fail(file, ['listeners', 'postgres', 'tls'], `certificate and key are not a valid PEM pair: ${(err as Error).message}`);
    }
  }

  return { file, config, connections, listenerTls, stateDir: resolve(config.state.dir), policyFiles: config.policy.files.map(rel) };
}

/** Read and validate a configuration file. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the configuration file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseConfig(text, file, env);
}
