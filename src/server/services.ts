/**
 * The services that run once per node, in the process that serves HTTP: the audit API, sinks and
 * retention job (when audit is on), the approvals API, the sweeper that expires requests nobody
 * waits for, and the approval notifier. All work over the shared store.
 */
import { dirname } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.js';
import type { EventInput } from '../audit/event.js';
import { startRetention, type RetentionJob } from '../audit/retention.js';
import { ensureSigningKey } from '../audit/setup.js';
import { startSinks, type SinksHandle } from '../audit/sinks.js';
import { createNotifier, type Notifier } from '../approvals/notify.js';
import { ApprovalError, close } from '../approvals/request.js';
import { approvalEvent, type ApprovalEventType } from '../approvals/stage.js';
import { createAuditApi } from '../http/audit-api.js';
import { createApprovalsApi } from '../http/approvals-api.js';
import { createApiAuthenticator } from '../http/auth.js';
import type { CredentialAuthenticator } from '../identity/credentials.js';
import type { LocalUsers } from '../identity/local-users.js';
import type { Store } from '../store/sqlite-store.js';

export interface NodeServices {
  /** The /api handlers for the HTTP listener. */
  readonly api: (req: IncomingMessage, res: ServerResponse) => boolean;
  readonly notifier: Notifier;
  stop(): Promise<void>;
}

/** How often requests nobody holds are looked at for expiry. */
const SWEEP_MS = 15_000;

export function startServices(
  loaded: LoadedConfig,
  store: Store,
  opts: {
    logger: Logger;
    users: LocalUsers;
    credentials: CredentialAuthenticator | null;
    /** Audit (undefined when audit is off). */
    record: ((e: EventInput) => void) | undefined;
    /** The approvals API decided a request: wake a statement held in this process. */
    onDecided?: (id: string) => void;
    /** Base URL of links in notifications. */
    publicUrl: () => string;
    /** The node's notifier, shared with its approvals stage (one is made if absent). */
    notifier?: Notifier;
    /** Told of each approval step taken here (metrics). */
    onStep?: (type: ApprovalEventType) => void;
  },
): NodeServices {
  const { config } = loaded;
  const { logger } = opts;
  const authenticate = createApiAuthenticator({ users: opts.users, credentials: opts.credentials, logger });
  const handlers: Array<(req: IncomingMessage, res: ServerResponse) => boolean> = [];
  let sinks: SinksHandle | null = null;
  let retention: RetentionJob | null = null;
  if (opts.record !== undefined) {
    const { key } = ensureSigningKey(loaded);
    handlers.push(
      createAuditApi({
        store: store.audit,
        users: opts.users,
        credentials: opts.credentials,
        authenticate,
        auditorGroups: config.api.auditor_groups,
        adminGroups: config.api.admin_groups,
        logger,
        publicKeys: { [key.keyId]: key.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
      }),
    );
    if (config.audit.sinks.length > 0) sinks = startSinks(store.audit, config.audit.sinks, { logger, baseDir: dirname(loaded.file) });
    const keep = config.audit.retention.keep;
    if (keep !== undefined) retention = startRetention(store.audit, { keepMs: keep, intervalMs: config.audit.retention.interval, record: opts.record, logger });
  }
  const notifier = opts.notifier ?? createNotifier(config.approvals.notify, { logger, publicUrl: opts.publicUrl() });
  handlers.push(
    createApprovalsApi({
      store: store.approvals,
      authenticate,
      logger,
      adminGroups: config.api.admin_groups,
      auditorGroups: config.api.auditor_groups,
      record: opts.record,
      onStep: opts.onStep,
      notifier,
      onDecided: opts.onDecided,
    }),
  );

  // Requests nobody holds (retry mode, clients gone) expire here; held ones expire by their holder.
  let sweeping = false;
  const sweep = async (): Promise<void> => {
    if (sweeping) return;
    sweeping = true;
    try {
      for (const id of await store.approvals.expiredPending(Date.now())) {
        try {
          const r = await store.approvals.update(id, (x) => close(x, 'expired', Date.now(), 'no decision before the expiry'));
          if (r === null) continue;
          opts.record?.(approvalEvent('approval.expire', r));
          opts.onStep?.('approval.expire');
          notifier.notify('expired', r);
        } catch (err) {
          if (!(err instanceof ApprovalError)) throw err;
        }
      }
    } catch (err) {
      logger.warn({ event: 'approvals_sweep_failed', reason: (err as Error).message }, 'could not expire approval requests; will retry');
    } finally {
      sweeping = false;
    }
  };
  const sweeper = setInterval(() => void sweep(), SWEEP_MS);
  sweeper.unref();

  return {
    api: (req, res) => handlers.some((h) => h(req, res)),
    notifier,
    stop: async () => {
      clearInterval(sweeper);
      retention?.stop();
      await sinks?.stop();
      await notifier.stop(2000);
    },
  };
}
