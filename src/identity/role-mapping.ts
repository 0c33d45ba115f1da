/** Upstream role mapping: which database role an identity works as on a connection. */
import type { ConnectionConfig } from '../config/schema.js';
import type { Identity } from './identity.js';

/** The role of the first mapping entry that matches the identity, or undefined (no mapping). */
export function upstreamRoleFor(connection: Pick<ConnectionConfig, 'roles'>, identity: Identity): string | undefined {
  for (const r of connection.roles) {
    if (r.users.includes(identity.name) || r.kinds.includes(identity.kind) || r.groups.some((g) => identity.groups.includes(g))) return r.role;
  }
  return undefined;
}

/** A PostgreSQL identifier, quoted. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
