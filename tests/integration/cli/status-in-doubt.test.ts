import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, plan, runTransfer, sleep } from '../atomicity/bank.js';

/**
 * `shardgate status` over real shards after a proxy died between PREPARE and
 * its decision: the branch left prepared is listed with its gid, anchor and
 * age, the command fails (exit 1) while it is in doubt, names an unreachable
 * anchor, and is clean again once `shardgate recover` rolled it back.
 */

/** prepareTimeoutMs 1 s and a 0.5 s recovery interval: a branch is in doubt after 2 × 1 s + 0.5 s. */
const TX = { prepareTimeoutMs: 1_000, recoveryIntervalMs: 500 };
const IN_DOUBT_AFTER_MS = 2 * TX.prepareTimeoutMs + TX.recoveryIntervalMs;

function shardgate(command: 'status' | 'recover', configFile: string): ReturnType<typeof runCommand> {
  return runCommand(process.execPath, ['bin/shardgate.js', command, '--config', configFile], { env: { SHARDGATE_LOG_LEVEL: 'silent' }, timeoutMs: 60_000 });
}

function exited(proxy: RunningProxy): Promise<string | null> {
  const child = proxy.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}

describe('shardgate status lists in-doubt transactions with their anchor and age', () => {
  let bank: Bank;
  /** The configuration file of the proxy that crashed: status and recover read the same shards. */
  let configFile: string;
  /** The prepared identifier left on s1 and its global gid (anchor s0). */
  let prepared: string;
  let gid: string;

  beforeAll(async () => {
    bank = await Bank.create(2);
    const setup = await bank.proxy('setup');
    try {
      await bank.reset(setup, 10);
    } finally {
      await setup.stop();
    }
    // The debit comes last (runTransfer), so s0 is the anchor and s1 holds the only prepared branch when the proxy dies.
    const crashing = await bank.proxy('gw1', { failpoints: 'before-decision=crash', transactions: TX });
    configFile = crashing.configFile;
    const died = exited(crashing);
    const client = await connect(crashing);
    try {
      const told = await runTransfer(client, plan(bank, 0, [1]));
      expect(told).toEqual({ kind: 'unknown', code: undefined });
    } finally {
      await client.end().catch(() => undefined);
    }
    expect(await died).toBe('SIGKILL');
    const left = await bank.prepared();
    expect(left[0]).toEqual([]);
    expect(left[1]).toHaveLength(1);
    prepared = left[1]![0]!;
    const m = /^(sg_gw1_s0_[0-9a-z]+)_s1$/.exec(prepared);
    expect(m, prepared).not.toBeNull();
    gid = m![1]!;
  });

  afterAll(async () => {
    await bank?.destroy();
  });

  it('fails with exit 1 and lists the branch with its gid, anchor and age once it is in doubt', async () => {
    await sleep(IN_DOUBT_AFTER_MS + 500);
    const r = await shardgate('status', configFile);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^s0: reachable, .*prepared 0$/m);
    expect(r.stdout).toMatch(/^s1: reachable, .*prepared 1$/m);
    const line = new RegExp(`^ {2}${gid} on s1: anchor s0, (\\d+) s old, in doubt$`, 'm');
    expect(r.stdout).toMatch(line);
    expect(Number(line.exec(r.stdout)![1])).toBeGreaterThanOrEqual(Math.floor(IN_DOUBT_AFTER_MS / 1000));
    expect(r.stderr).toMatch(new RegExp(`^shardgate: in doubt: ${gid} on s1: anchor s0, \\d+ s old$`, 'm'));
    expect(r.stderr).toContain(`shardgate recover --config ${configFile}`);
    // status only looks: the branch is still prepared.
    expect(await bank.prepared()).toEqual([[], [prepared]]);
  });

  it('names the anchor UNREACHABLE while it is down', async () => {
    await bank.clusters[0]!.stop();
    let r: Awaited<ReturnType<typeof shardgate>>;
    try {
      r = await shardgate('status', configFile);
    } finally {
      await bank.clusters[0]!.start();
    }
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^s0: UNREACHABLE/m);
    expect(r.stderr).toMatch(new RegExp(`^shardgate: in doubt: ${gid} on s1: anchor s0 UNREACHABLE, \\d+ s old$`, 'm'));
    expect(await bank.prepared()).toEqual([[], [prepared]]);
  });

  it('is clean (exit 0) after `shardgate recover` rolled the branch back', async () => {
    const rec = await shardgate('recover', configFile);
    expect(rec.code, rec.stdout + rec.stderr).toBe(0);
    // No decision was written before the crash: presumed abort.
    expect(rec.stdout.trim().split('\n')).toEqual([`${gid} on s1: abort (no commit decision on s0)`]);

    const r = await shardgate('status', configFile);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^s0: reachable, .*prepared 0$/m);
    expect(r.stdout).toMatch(/^s1: reachable, .*prepared 0$/m);
    expect(r.stdout).toMatch(/^ok: 2 shards$/m);
    expect(r.stdout).not.toContain(gid);
    expect(r.stderr).toBe('');
    await bank.checkLedger();
  });
});
