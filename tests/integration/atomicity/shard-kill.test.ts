import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, Outcomes, plan, runTransfer, sleep, type Transfer } from './bank.js';

/**
 * kill -9 of a shard's postmaster while transactions sit in the prepare or
 * the commit phase (a failpoint delay holds them there), then restart it.
 * Transfers debit an account on s0 (the anchor: written last) and put
 * their legs on s1 and s2. Whatever each client was told must match the
 * shards once recovery has run.
 */
describe('kill -9 of a shard during two-phase commit', () => {
  let bank: Bank;

  beforeAll(async () => {
    bank = await Bank.createFunded(3, 30);
  });
  afterAll(async () => {
    await bank?.destroy();
  });

  /** Counts rows of a query's first column `n` on shard `i`. */
  async function count(i: number, sql: string): Promise<number> {
    return Number((await bank.clusters[i]!.query<{ n: string }>(sql, [], 'app'))[0]!.n);
  }

  /** The window each failpoint opens, seen from the shards: all `n` transfers are in it. */
  const inWindow = {
    beforePrepare: async (n: number) =>
      (await count(1, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'sg\\_%' AND state = 'idle in transaction'")) >= n,
    afterPrepare: async (n: number) => (await count(1, 'SELECT count(*) AS n FROM pg_prepared_xacts')) >= n,
    afterDecision: async (n: number) => (await count(1, 'SELECT count(*) AS n FROM pg_prepared_xacts')) >= n && (await count(0, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'sg\\_%' AND state = 'idle in transaction'")) === 0,
  };

  /**
   * Starts 4 transfers at once (from distinct accounts on s0, so none waits
   * for another's row lock) through a proxy whose failpoint delays them;
   * once the shards show all of them in the window, kills shard `victim`,
   * restarts it, waits for recovery and checks the ledger and what the
   * clients were told.
   */
  async function killDuring(failpoint: string, victim: number, ready: (n: number) => Promise<boolean>): Promise<Outcomes> {
    // The prepare deadline must outlast the failpoint's delay, or every transfer fails on the deadline alone.
    const proxy: RunningProxy = await bank.proxy('gw1', { failpoints: failpoint, transactions: { prepareTimeoutMs: 2_500 } });
    const outcomes = new Outcomes();
    try {
      const clients = await Promise.all(Array.from({ length: 4 }, () => connect(proxy)));
      const froms = [...bank.byShard[0]!].sort(() => Math.random() - 0.5).slice(0, clients.length);
      const transfers: Transfer[] = froms.map((from) => ({ ...plan(bank, 0, [1, 2]), from }));
      const running = clients.map(async (client, i) => outcomes.record(transfers[i]!, await runTransfer(client, transfers[i]!)));
      const deadline = Date.now() + 10_000;
      while (!(await ready(clients.length))) {
        if (Date.now() > deadline) throw new Error(`transfers never reached the window of ${failpoint}:\n${proxy.logs().slice(-3000)}`);
        await sleep(25);
      }
      await bank.clusters[victim]!.kill9();
      await Promise.all(running);
      await bank.clusters[victim]!.start();
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));

      await bank.waitNoPrepared(30_000);
      outcomes.expectMatches(await bank.checkLedger());

      // The proxy's pools recover from the dead connections: fresh transfers commit.
      const client = await connect(proxy);
      const after = new Outcomes();
      try {
        for (let i = 0; i < 3; i++) {
          const t = plan(bank, victim, [(victim + 1) % 3, (victim + 2) % 3]);
          after.record(t, await runTransfer(client, t));
        }
      } finally {
        await client.end();
      }
      after.expectMatches(await bank.checkLedger());
      expect(after.count('committed'), `${after.summary()}\n${proxy.logs().slice(-4000)}`).toBe(3);
    } finally {
      await proxy.stop();
    }
    return outcomes;
  }

  it('a participant killed before its PREPARE: every transfer fails and nothing is left', { timeout: 90_000 }, async () => {
    const outcomes = await killDuring('before-prepare=delay(1500)@s1', 1, inWindow.beforePrepare);
    expect(outcomes.count('committed'), outcomes.summary()).toBe(0);
  });

  it('a participant killed after its PREPARE, before the decision: committed, its branch finished after its restart', { timeout: 90_000 }, async () => {
    const outcomes = await killDuring('after-prepare=delay(1500)@s1', 1, inWindow.afterPrepare);
    // s1 answered its PREPARE before dying and the branch survives the crash, so the decision is
    // written and the client told COMMIT; COMMIT PREPARED on s1 happens after its restart.
    expect(outcomes.count('committed'), outcomes.summary()).toBe(4);
  });

  it('the anchor killed while the others are prepared: nothing commits, the prepared branches are rolled back', { timeout: 90_000 }, async () => {
    const outcomes = await killDuring('after-prepare=delay(1500)@s1', 0, inWindow.afterPrepare);
    expect(outcomes.count('committed'), outcomes.summary()).toBe(0);
  });

  it('a participant killed after the decision: every transfer is told COMMIT and is committed everywhere', { timeout: 90_000 }, async () => {
    const outcomes = await killDuring('after-decision=delay(1500)', 2, inWindow.afterDecision);
    expect(outcomes.count('committed'), outcomes.summary()).toBe(4);
  });

  it('the anchor killed after the decision: every transfer is told COMMIT and is committed everywhere', { timeout: 90_000 }, async () => {
    const outcomes = await killDuring('after-decision=delay(1500)', 0, inWindow.afterDecision);
    expect(outcomes.count('committed'), outcomes.summary()).toBe(4);
  });
});
