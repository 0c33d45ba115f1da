/** Audit events recorded by CLI commands (token issue and revoke), as writer "<node>.cli". */
import type { LoadedConfig } from '../config/load.js';
import { recordDirect } from '../audit/direct.js';
import type { EventInput } from '../audit/event.js';
import { ensureSigningKey, nodeIdOf, publicKeyPath } from '../audit/setup.js';
import type { AuditStore } from '../store/audit.js';

/** A recorder for this configuration, or null when audit is disabled. */
export function cliAudit(loaded: LoadedConfig): ((store: AuditStore, event: EventInput) => Promise<void>) | null {
  if (!loaded.config.audit.enabled) return null;
  return async (store, event) => {
    const { key, path, created } = ensureSigningKey(loaded);
    if (created) process.stderr.write(`note: created the audit signing key ${path}; give ${publicKeyPath(path)} to your auditors\n`);
    await recordDirect(store, `${nodeIdOf(loaded)}.cli`, key, [event]);
  };
}
