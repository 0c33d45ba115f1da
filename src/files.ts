/**
 * Files that must appear whole or not at all (keys created on first use, which a process starting
 * alongside may read at any moment): written under a private name beside their place, then
 * moved there in one step.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Put `data` at `path`, creating its directory if needed. With `replace`, an existing file is replaced; without, the file is created
 * only if there is none, and false says another one was there first (then it is left as it is).
 * `mode` is applied exactly, whatever the umask.
 */
export function placeFile(path: string, data: string | Uint8Array, opts: { readonly replace: boolean; readonly mode?: number }): boolean {
  mkdirSync(dirname(path), { recursive: true });
  const draft = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(draft, data, { mode: opts.mode ?? 0o644, flag: 'wx' });
    if (opts.mode !== undefined) chmodSync(draft, opts.mode);
    if (opts.replace) renameSync(draft, path);
    else {
      try {
        linkSync(draft, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    }
    return true;
  } finally {
    rmSync(draft, { force: true });
  }
}
