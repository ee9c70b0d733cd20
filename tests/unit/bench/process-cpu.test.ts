import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { firstChildPid, processCpuMs } from '../../../src/bench/process-cpu.js';

describe('processCpuMs', () => {
  it('reads a process\'s CPU time, which grows while it computes', () => {
    const before = processCpuMs(process.pid);
    expect(before).not.toBeNull();
    const until = performance.now() + 300;
    let x = 0;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    const after = processCpuMs(process.pid)!;
    expect(x).toBeGreaterThan(0);
    // 300 ms of computing, measured in 10-ms ticks; leave room for a machine busy with other work.
    expect(after - before!).toBeGreaterThanOrEqual(30);
    expect(after - before!).toBeLessThan(5000);
  });

  it('is null for a process that does not exist', () => {
    expect(processCpuMs(2 ** 22 + 12345)).toBeNull();
  });
});

describe('firstChildPid', () => {
  it('finds the program a wrapper started, and null for a process without children', async () => {
    const wrapper = spawn('sh', ['-c', 'sleep 5; true'], { stdio: 'ignore' });
    try {
      let child: number | null = null;
      for (let i = 0; i < 50 && child === null; i++) {
        child = firstChildPid(wrapper.pid!);
        if (child === null) await new Promise((r) => setTimeout(r, 20));
      }
      expect(child).not.toBeNull();
      expect(child).not.toBe(wrapper.pid);
      expect(firstChildPid(child!)).toBeNull();
    } finally {
      wrapper.kill('SIGKILL');
    }
  });
});
