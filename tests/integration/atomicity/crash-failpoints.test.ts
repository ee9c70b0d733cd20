import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, Outcomes, plan, runTransfer, sleep } from './bank.js';

/**
 * For every failpoint on the commit path with the crash action: clients run
 * cross-shard transfers through a proxy until it dies; a new proxy process
 * (same or another coordinatorId) recovers; every shard is then read directly.
 */

/** Transfers from a random shard to one or both other shards (3-shard ones let between-commit-prepared fire). */
function anyTransfer(bank: Bank): ReturnType<typeof plan> {
  const from = Math.floor(Math.random() * 3);
  const others = [0, 1, 2].filter((s) => s !== from);
  return plan(bank, from, Math.random() < 0.5 ? others : [others[Math.floor(Math.random() * 2)]!]);
}

/** `clients` loops of transfers until the proxy's connection breaks (or `max` each); what each was told goes into `outcomes`. */
export async function transferUntilDeath(bank: Bank, proxy: RunningProxy, outcomes: Outcomes, clients = 4, max = 150): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = await connect(proxy);
      try {
        for (let i = 0; i < max; i++) {
          const t = anyTransfer(bank);
          const told = await runTransfer(client, t);
          outcomes.record(t, told);
          if (told.kind === 'unknown' && told.code === undefined) return;
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
}

/** Resolves with the signal that ended the process. */
function exited(proxy: RunningProxy): Promise<string | null> {
  const child = proxy.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}

/** A short prepare timeout makes recovery's grace period (2 × prepareTimeoutMs) 1 s. */
const FAST = { prepareTimeoutMs: 500, recoveryIntervalMs: 300 };

describe('a proxy killed at a crash failpoint loses nothing once a new proxy recovered', () => {
  let bank: Bank;

  beforeAll(async () => {
    bank = await Bank.createFunded(3, 30);
  });
  afterAll(async () => {
    await bank?.destroy();
  });

  const cases: [failpoint: string, recoverAs: string][] = [
    ['before-prepare=30%crash', 'gw1'],
    ['after-prepare=40%crash@s1', 'gw2'],
    ['before-decision=30%crash', 'gw1'],
    ['after-decision=30%crash', 'gw2'],
    ['between-commit-prepared=40%crash', 'gw1'],
  ];

  it.each(cases)('%s, recovered by a proxy with coordinatorId %s', { timeout: 90_000 }, async (failpoint, recoverAs) => {
    const crashing = await bank.proxy('gw1', { failpoints: failpoint, transactions: FAST });
    const outcomes = new Outcomes();
    const died = exited(crashing);
    await transferUntilDeath(bank, crashing, outcomes);
    expect(await died, `the proxy should have crashed at ${failpoint}:\n${crashing.logs().slice(-3000)}`).toBe('SIGKILL');
    expect(outcomes.count('committed') + outcomes.count('failed') + outcomes.count('unknown')).toBeGreaterThan(0);

    const recovering = await bank.proxy(recoverAs, { transactions: FAST });
    try {
      await bank.waitNoPrepared(30_000);
      const present = await bank.checkLedger();
      outcomes.expectMatches(present);

      // The new proxy serves cross-shard transfers afterwards.
      const client = await connect(recovering);
      const after = new Outcomes();
      try {
        for (let i = 0; i < 3; i++) {
          const t = plan(bank, 0, [1, 2]);
          after.record(t, await runTransfer(client, t));
        }
      } finally {
        await client.end();
      }
      expect(after.count('committed'), after.summary()).toBe(3);
      after.expectMatches(await bank.checkLedger());
    } finally {
      await recovering.stop();
    }
  });

  it('a recovering proxy killed at before-recovery-resolve leaves the branches to the next one', { timeout: 90_000 }, async () => {
    const crashing = await bank.proxy('gw1', { failpoints: 'after-decision=crash', transactions: FAST });
    const outcomes = new Outcomes();
    const died = exited(crashing);
    await transferUntilDeath(bank, crashing, outcomes, 2);
    expect(await died).toBe('SIGKILL');
    expect((await bank.prepared()).flat().length).toBeGreaterThan(0);
    // Past the grace period (2 × prepareTimeoutMs), so the start-up pass of the next proxy takes them.
    await sleep(1_200);
    await expect(bank.proxy('gw3', { failpoints: 'before-recovery-resolve=crash', transactions: FAST })).rejects.toThrow(/exited \(SIGKILL\) before listening/);
    expect((await bank.prepared()).flat().length).toBeGreaterThan(0);

    const recovering = await bank.proxy('gw4', { transactions: FAST });
    try {
      await bank.waitNoPrepared(30_000);
      outcomes.expectMatches(await bank.checkLedger());
    } finally {
      await recovering.stop();
    }
  });

  it('`shardgate recover` finishes what a crashed proxy left, and reports branches whose anchor is down', { timeout: 90_000 }, async () => {
    const crashing = await bank.proxy('gw1', { failpoints: 'after-decision=crash', transactions: FAST });
    const outcomes = new Outcomes();
    const died = exited(crashing);
    await transferUntilDeath(bank, crashing, outcomes, 1);
    expect(await died).toBe('SIGKILL');
    const left = (await bank.prepared()).flat();
    expect(left.length).toBeGreaterThan(0);
    // The anchor of the first leftover branch goes down: recover must not guess, and says so.
    const anchor = Number(/^sg_gw1_s(\d+)_/.exec(left[0]!)![1]);
    const cli = (): ReturnType<typeof runCommand> =>
      runCommand(process.execPath, ['bin/shardgate.js', 'recover', '--config', crashing.configFile], { env: { SHARDGATE_LOG_LEVEL: 'silent' }, timeoutMs: 60_000 });
    await sleep(1_200); // past the grace period
    await bank.clusters[anchor]!.stop();
    let down: Awaited<ReturnType<typeof cli>>;
    try {
      down = await cli();
    } finally {
      await bank.clusters[anchor]!.start();
    }
    expect(down.code, down.stdout + down.stderr).toBe(1);
    expect(down.stderr).toMatch(new RegExp(`still in doubt: sg_gw1_s${anchor}_\\S+ on s\\d, \\d+ s old, anchor s${anchor} UNREACHABLE`));
    expect((await bank.prepared()).flat()).toEqual(expect.arrayContaining([left[0]]));

    const up = await cli();
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const lines = up.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    // The decision was committed before the crash: every leftover branch is committed.
    for (const line of lines) expect(line).toMatch(/^sg_gw1_s\d_\S+ on s\d: commit \(decision row on s\d\)$/);
    expect(await bank.prepared()).toEqual([[], [], []]);
    outcomes.expectMatches(await bank.checkLedger());
  });
});
