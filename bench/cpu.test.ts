import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { groupCpuSeconds } from './cpu.js';

describe('groupCpuSeconds', () => {
  it('counts the CPU of every process of a group, children and threads included', { skip: process.platform !== 'linux' }, async () => {
    // A group leader that forks a busy child and spins itself for ~0.6 s each.
    // Both stay alive afterwards: the CPU of a process that has exited is no longer in /proc.
    const spin = 'const t = Date.now(); while (Date.now() - t < 600); setTimeout(() => {}, 5000);';
    const child = spawn(process.execPath, ['-e', `require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(spin)}], { stdio: 'inherit' }); ${spin}`], { detached: true, stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 900));
      const used = groupCpuSeconds(child.pid!);
      assert.ok(used !== null && used >= 0.8, `expected at least 0.8 s over the leader and its child, got ${used}`);
      assert.equal(groupCpuSeconds(2 ** 22 + 12345), null);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      await once(child, 'exit');
    }
  });
});
