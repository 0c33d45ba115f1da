/**
 * Which store a configuration uses, and opening it: the embedded SQLite file under `state.dir`
 * unless `state.postgres_url` names a PostgreSQL database shared by several nodes.
 */
import { join } from 'node:path';
import type { AuditStore } from './audit.js';
import { openSqlite, SqliteStore, type Store } from './sqlite-store.js';
import { SqliteAuditStore } from './sqlite-audit.js';
import { WalCheckpointer, WRITER_AUTOCHECKPOINT_PAGES } from './wal-checkpointer.js';

/** Where the state lives; plain data, so it can be handed to the audit writer thread. */
export type StoreSpec = { readonly kind: 'sqlite'; readonly file: string } | { readonly kind: 'postgres'; readonly url: string };

export function storeSpec(loaded: { readonly stateDir: string; readonly config: { readonly state: { readonly postgres_url?: string | undefined } } }): StoreSpec {
  const url = loaded.config.state.postgres_url;
  if (url !== undefined) return { kind: 'postgres', url };
  return { kind: 'sqlite', file: join(loaded.stateDir, 'gatehouse.db') };
}

/** Open the whole store (tokens, audit) for the proxy's event loop or the CLI. */
export async function openStore(spec: StoreSpec): Promise<Store> {
  if (spec.kind === 'sqlite') return new SqliteStore(spec.file);
  const { PostgresStore } = await import('./postgres-store.js');
  return PostgresStore.open(spec.url);
}

/**
 * Open only the audit store, for the writer thread. `busyTimeoutMs` bounds how long a write may
 * wait for a lock before it fails (and Gatehouse fails closed). The SQLite file's WAL is copied
 * back by a checkpointer thread, not by the writer's commits; `onWarning` hears its failures.
 */
export async function openAuditStore(
  spec: StoreSpec,
  busyTimeoutMs: number,
  onWarning: (message: string) => void = () => {},
): Promise<AuditStore & { appendSync?: SqliteAuditStore['appendSync']; closeAll(): Promise<void> }> {
  if (spec.kind === 'sqlite') {
    const db = openSqlite(spec.file, busyTimeoutMs);
    db.pragma(`wal_autocheckpoint = ${WRITER_AUTOCHECKPOINT_PAGES}`);
    // The writer's temp table of column sets (SqliteAuditStore) in memory: appends never depend
    // on a writable directory for SQLite's temp files. Set on the fresh connection, before any
    // transaction (SQLite refuses the change inside one once temp storage is open).
    db.pragma('temp_store = MEMORY');
    const checkpointer = new WalCheckpointer(spec.file, busyTimeoutMs, (m) => onWarning(`WAL checkpoint failed: ${m}`));
    const audit = new SqliteAuditStore(db) as SqliteAuditStore & { closeAll(): Promise<void> };
    audit.closeAll = async () => {
      await checkpointer.stop();
      db.close();
    };
    return audit;
  }
  const { PostgresStore } = await import('./postgres-store.js');
  const store = await PostgresStore.open(spec.url, { statementTimeoutMs: busyTimeoutMs, poolSize: 1 });
  const audit = store.audit as AuditStore & { closeAll(): Promise<void> };
  audit.closeAll = () => store.close();
  return audit;
}
