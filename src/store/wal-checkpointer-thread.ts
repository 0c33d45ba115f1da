/** The WAL checkpointer's thread (see wal-checkpointer.ts): its own connection, PASSIVE checkpoints on a timer. */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { file, busyTimeoutMs, intervalMs } = workerData as { file: string; busyTimeoutMs: number; intervalMs: number };
const port = parentPort!;
const db = new Database(file, { fileMustExist: true });
db.pragma(`busy_timeout = ${busyTimeoutMs}`);
// As the writer: each checkpoint syncs the database file before the WAL is reused.
db.pragma('synchronous = FULL');

let lastError = '';
function checkpoint(): void {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    lastError = '';
  } catch (err) {
    // Report a failure once, not on every tick while it lasts.
    const message = (err as Error).message;
    if (message !== lastError) port.postMessage({ op: 'error', message });
    lastError = message;
  }
}

const timer = setInterval(checkpoint, intervalMs);
port.on('message', (m: { op: string }) => {
  if (m.op !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  port.close();
});
