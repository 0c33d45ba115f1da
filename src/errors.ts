/**
 * Gatehouse's error hierarchy. Every error that crosses a module boundary is one of these:
 * a stable `code` (documented in docs/errors.md, kept in sync by errors.test.ts) and, where a
 * client sees it, the SQLSTATE an engine reports. Engines map them to their wire errors.
 */
export abstract class GatehouseError extends Error {
  /** Stable identifier, GH_*. */
  abstract readonly code: string;
  /** SQLSTATE reported to database clients. */
  abstract readonly sqlstate: string;
  /** Extra detail for the client (never a secret). */
  readonly detail?: string;
  readonly hint?: string;

  constructor(message: string, opts: { detail?: string; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    if (opts.detail !== undefined) this.detail = opts.detail;
    if (opts.hint !== undefined) this.hint = opts.hint;
  }
}

/** The configuration is invalid: names the file, the key and what was expected. */
export class ConfigError extends GatehouseError {
  override readonly name = 'ConfigError';
  readonly code = 'GH_CONFIG';
  readonly sqlstate = 'F0000';
}

/** A client broke the wire protocol. */
export class ProtocolViolation extends GatehouseError {
  override readonly name = 'ProtocolViolation';
  readonly code = 'GH_PROTOCOL';
  readonly sqlstate = '08P01';
}

/** The client's credentials were not accepted. */
export class AuthenticationFailed extends GatehouseError {
  override readonly name = 'AuthenticationFailed';
  readonly code = 'GH_AUTH_FAILED';
  readonly sqlstate = '28P01';
}

/** The client may not connect this way (TLS required, cleartext refused, ...). */
export class ConnectionRefused extends GatehouseError {
  override readonly name = 'ConnectionRefused';
  readonly code = 'GH_CONNECTION_REFUSED';
  readonly sqlstate = '28000';
}

/** The startup database names no configured connection. */
export class UnknownConnection extends GatehouseError {
  override readonly name = 'UnknownConnection';
  readonly code = 'GH_UNKNOWN_CONNECTION';
  readonly sqlstate = '3D000';
}

/** The upstream database could not be reached or authenticated against. */
export class UpstreamUnavailable extends GatehouseError {
  override readonly name = 'UpstreamUnavailable';
  readonly code = 'GH_UPSTREAM_UNAVAILABLE';
  readonly sqlstate = '08001';
}

/** The upstream connection broke during a session. */
export class UpstreamLost extends GatehouseError {
  override readonly name = 'UpstreamLost';
  readonly code = 'GH_UPSTREAM_LOST';
  readonly sqlstate = '08006';
}

/** A statement was refused by policy. */
export class AccessDenied extends GatehouseError {
  override readonly name = 'AccessDenied';
  readonly code = 'GH_ACCESS_DENIED';
  readonly sqlstate = '42501';
}

/** The proxy is shutting down. */
export class ShuttingDown extends GatehouseError {
  override readonly name = 'ShuttingDown';
  readonly code = 'GH_SHUTTING_DOWN';
  readonly sqlstate = '57P01';
}

/** Too many connections for the listener's limit. */
export class TooManyConnections extends GatehouseError {
  override readonly name = 'TooManyConnections';
  readonly code = 'GH_TOO_MANY_CONNECTIONS';
  readonly sqlstate = '53300';
}

/** Every error class, for the docs-sync test and for documentation. */
/** The audit store cannot be written: production writes (or, when configured, all statements) are refused. */
export class AuditUnavailable extends GatehouseError {
  override readonly name = 'AuditUnavailable';
  readonly code = 'GH_AUDIT_UNAVAILABLE';
  readonly sqlstate = '58030';
}

export const ERROR_CLASSES = [
  ConfigError,
  ProtocolViolation,
  AuthenticationFailed,
  ConnectionRefused,
  UnknownConnection,
  UpstreamUnavailable,
  UpstreamLost,
  AccessDenied,
  ShuttingDown,
  TooManyConnections,
  AuditUnavailable,
] as const;
