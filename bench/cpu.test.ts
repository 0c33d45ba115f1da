import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { groupCpuSeconds, processCpuSeconds } from './cpu.js';

describe('groupCpuSeconds', () => {
  it('counts the CPU of every process of a group, children and threads included', { skip: process.platform !== 'linux' }, async () => {
    // A group leader that forks a child; each burns 0.5 s of its own CPU (not of the clock, so a
    // loaded machine only makes it take longer), says so, and stays alive: the CPU of a process
    // that has exited is no longer in /proc.
    const spin = "const u = () => { const c = process.cpuUsage(); return c.user + c.system; }; while (u() < 500000); console.log('spun'); setTimeout(() => {}, 30000);";
    const child = spawn(process.execPath, ['-e', `require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(spin)}], { stdio: 'inherit' }); ${spin}`], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      let out = '';
      child.stdout!.setEncoding('utf8');
      await new Promise<void>((done) => child.stdout!.on('data', (d: string) => (out += d).split('spun').length > 2 && done()));
      const used = groupCpuSeconds(child.pid!);
      assert.ok(used !== null && used >= 0.9, `expected at least 0.9 s (of the 1.0 s spun) over the leader and its child, got ${used}`);
      assert.equal(groupCpuSeconds(2 ** 22 + 12345), null);
      // The leader alone: its own 0.5 s, not its child's.
      const own = processCpuSeconds(child.pid!);
      assert.ok(own !== null && own >= 0.45 && own < used! - 0.3, `expected the leader's own ~0.5 s, got ${own} of ${used}`);
      assert.equal(processCpuSeconds(2 ** 22 + 12345), null);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      await once(child, 'exit');
    }
  });
});
