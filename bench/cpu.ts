/**
 * CPU time of a process group, read from /proc: user + system time of every live process whose
 * process group is `pgid` (all threads of each, so Gatehouse's audit writer and cluster workers
 * count too). Linux only; null elsewhere or when the group is gone.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ: what /proc/<pid>/stat counts in, 100 on Linux

/** Fields after the command name in /proc/<pid>/stat: [state, ppid, pgrp, ...]. */
function statFields(pid: string): string[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null; // exited meanwhile
  }
  // The command name is in parentheses and may itself hold spaces or parentheses.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** Seconds of CPU used so far by process `pid` (all its threads); null when it is gone. */
export function processCpuSeconds(pid: number): number | null {
  const f = statFields(String(pid));
  return f === null ? null : (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

/** Seconds of CPU used so far by the processes of group `pgid`; null when none is found. */
export function groupCpuSeconds(pgid: number): number | null {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return null;
  }
  let ticks = 0;
  let found = false;
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const f = statFields(name);
    // pgrp is field 5 of stat, index 2 after the command; utime and stime are fields 14 and 15.
    if (f === null || Number(f[2]) !== pgid) continue;
    found = true;
    ticks += Number(f[11]) + Number(f[12]);
  }
  return found ? ticks / TICKS_PER_SECOND : null;
}
