/**
 * Every child the benchmark starts goes through one registry, so that a normal end, an error or
 * Ctrl-C stops all of them. Children run in their own process group (`detached`): one signal
 * then reaches a whole tree (Gatehouse's cluster workers, the pgbouncer under `runuser`), and the
 * terminal's Ctrl-C reaches only us, so we decide the shutdown order.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';

/** How long a process group gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 5_000;

export interface ManagedProcess {
  /** Short name for messages ("gatehouse", "pgbouncer", "pgbench"). */
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal) once the group leader exits. */
  readonly exited: Promise<number | null>;
  /** True once the leader has exited. */
  readonly done: boolean;
  /** SIGTERM the group, then SIGKILL it if the leader is still alive after the grace period. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly stdio?: StdioOptions;
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export class ProcessRegistry {
  readonly #live = new Set<ManagedProcess>();
  #closed = false;

  /** True once stopAll began: failures from then on are the shutdown's doing, not measurements. */
  get stopping(): boolean {
    return this.#closed;
  }

  spawn(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
    // After an interrupt the main flow may still try its next step; it must not start anything.
    if (this.#closed) throw new Error(`not starting ${name}: the benchmark is stopping`);
    const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'], detached: true });
    let done = false;
    const exited = new Promise<number | null>((resolve) => {
      const settle = (code: number | null): void => {
        done = true;
        this.#live.delete(managed);
        resolve(code);
      };
      // 'error' alone (e.g. ENOENT) never emits 'exit'; settle either way.
      child.once('error', () => settle(-1));
      child.once('exit', (code) => settle(code));
    });
    const managed: ManagedProcess = {
      name,
      child,
      exited,
      get done() {
        return done;
      },
      stop: async () => {
        if (!done) {
          signalGroup(child.pid, 'SIGTERM');
          const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
      },
    };
    this.#live.add(managed);
    return managed;
  }

  /** Stop every live child, most recently started first (clients before the servers they use), and refuse new ones. */
  async stopAll(): Promise<void> {
    this.#closed = true;
    for (const p of [...this.#live].reverse()) await p.stop();
  }

  /** Last resort from a synchronous 'exit' handler: no waiting possible, so just signal. */
  killAllNow(): void {
    for (const p of this.#live) if (!p.done) signalGroup(p.child.pid, 'SIGTERM');
  }
}

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a command to completion through the registry (so Ctrl-C stops it too) and collect its output. */
export async function runCommand(registry: ProcessRegistry, name: string, command: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; echo?: boolean } = {}): Promise<CommandResult> {
  const p = registry.spawn(name, command, args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  // 'exit' can precede the last 'data' events; 'close' marks the end of the pipes.
  const closed = new Promise<void>((resolve) => {
    p.child.once('close', () => resolve());
    p.child.once('error', () => resolve());
  });
  let stdout = '';
  let stderr = '';
  p.child.stdout!.on('data', (d: Buffer) => {
    stdout += d;
    if (opts.echo) process.stderr.write(d);
  });
  p.child.stderr!.on('data', (d: Buffer) => {
    stderr += d;
    if (opts.echo) process.stderr.write(d);
  });
  const code = await p.exited;
  await closed;
  return { code, stdout, stderr };
}

/** The last `lines` lines of a file, or '(no output)' when it does not exist. */
export function tailFile(file: string, lines = 10): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n') : '(no output)';
}

/**
 * Start a server process whose stdout and stderr are appended to `logFile`. `failed()` says why
 * it cannot serve (it exited, with the log's last lines), for waitUntilQueryable and the like.
 */
export function spawnLogged(registry: ProcessRegistry, name: string, command: string, args: readonly string[], logFile: string, cwd?: string): { proc: ManagedProcess; failed: () => string | undefined } {
  const out = openSync(logFile, 'a');
  const proc = registry.spawn(name, command, args, { cwd, stdio: ['ignore', out, out] });
  closeSync(out); // the child has its own copy
  return { proc, failed: () => (proc.done ? `it exited; last output:\n${tailFile(logFile)}` : undefined) };
}
