/**
 * The audit services that run once per node (in the process that serves HTTP): the sinks, the
 * retention job and the /api/audit handler, all over the shared store.
 */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.js';
import type { EventInput } from '../audit/event.js';
import { startRetention, type RetentionJob } from '../audit/retention.js';
import { ensureSigningKey } from '../audit/setup.js';
import { startSinks, type SinksHandle } from '../audit/sinks.js';
import { createAuditApi } from '../http/audit-api.js';
import type { CredentialAuthenticator } from '../identity/credentials.js';
import type { LocalUsers } from '../identity/local-users.js';
import type { Store } from '../store/sqlite-store.js';

export interface AuditServices {
  /** The /api/audit handler for the HTTP listener. */
  readonly api: ReturnType<typeof createAuditApi>;
  stop(): Promise<void>;
}

export function startAuditServices(
  loaded: LoadedConfig,
  store: Store,
  opts: { logger: Logger; users: LocalUsers; credentials: CredentialAuthenticator | null; record: (e: EventInput) => void },
): AuditServices {
  const { config } = loaded;
  const { key } = ensureSigningKey(loaded);
  const api = createAuditApi({
    store: store.audit,
    users: opts.users,
    credentials: opts.credentials,
    auditorGroups: config.api.auditor_groups,
    adminGroups: config.api.admin_groups,
    logger: opts.logger,
    publicKeys: { [key.keyId]: key.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
  });
  const sinks: SinksHandle | null = config.audit.sinks.length > 0 ? startSinks(store.audit, config.audit.sinks, { logger: opts.logger, baseDir: dirname(loaded.file) }) : null;
  const keep = config.audit.retention.keep;
  const retention: RetentionJob | null = keep !== undefined ? startRetention(store.audit, { keepMs: keep, intervalMs: config.audit.retention.interval, record: opts.record, logger: opts.logger }) : null;
  return {
    api,
    stop: async () => {
      retention?.stop();
      await sinks?.stop();
    },
  };
}
