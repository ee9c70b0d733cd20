import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, Outcomes, plan, runTransfer } from './bank.js';

/**
 * Two proxy instances (coordinatorIds gwa and gwb) on the same shards. gwa
 * dies mid-commit; gwb, still serving its own clients, finishes gwa's
 * transactions in its periodic recovery pass — no restart of anyone.
 */
describe('two proxies on the same shards', () => {
  let bank: Bank;
  let survivor: RunningProxy;

  beforeAll(async () => {
    bank = await Bank.create(3);
    survivor = await bank.proxy('gwb', { transactions: { recoveryIntervalMs: 300 } });
    await bank.reset(survivor, 30);
  });
  afterAll(async () => {
    await survivor?.stop();
    await bank?.destroy();
  });

  /** Client loops on one proxy until `stop()` is true or its connection breaks. */
  async function loop(proxy: RunningProxy, outcomes: Outcomes, stop: () => boolean, clients: number): Promise<void> {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        const client = await connect(proxy);
        try {
          for (let i = 0; i < 200 && !stop(); i++) {
            const from = Math.floor(Math.random() * 3);
            const t = plan(bank, from, [0, 1, 2].filter((s) => s !== from));
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

  it.each(['after-decision=25%crash', 'before-decision=25%crash'])('the survivor recovers what the other left at %s', { timeout: 90_000 }, async (failpoint) => {
    const doomed = await bank.proxy('gwa', { failpoints: failpoint });
    const died = new Promise<string | null>((resolve) => doomed.child.once('exit', (_c, signal) => resolve(signal)));
    let dead = false;
    void died.then(() => (dead = true));

    const onDoomed = new Outcomes();
    const onSurvivor = new Outcomes();
    // The survivor keeps serving transfers on the same accounts while the other dies and is recovered.
    const survivorTraffic = loop(survivor, onSurvivor, () => dead && onSurvivor.told.size > 20, 2);
    await loop(doomed, onDoomed, () => dead, 3);
    expect(await died).toBe('SIGKILL');
    await survivorTraffic;

    await bank.waitNoPrepared(30_000);
    const present = await bank.checkLedger();
    onDoomed.expectMatches(present);
    onSurvivor.expectMatches(present);
    expect(onSurvivor.count('failed') + onSurvivor.count('unknown'), onSurvivor.summary()).toBeLessThan(onSurvivor.told.size);
    // The branches the dead instance left were resolved by gwb's periodic pass.
    const resolved = survivor.logs().split('\n').filter((l) => /recovery: (committed|rolled back) prepared transaction/.test(l) && l.includes('sg_gwa_'));
    expect(resolved.length).toBeGreaterThan(0);
  });

  it.each([
    ['before-decision=delay(2500)', 'fenced out: 40001 and nothing committed'],
    ['after-decision=delay(2500)', 'committed: told COMMIT, the survivor or the slow one finishes it'],
  ])('a live coordinator stalled at %s past the grace period is %s', { timeout: 60_000 }, async (failpoint) => {
    // A grace period of 2 × 500 ms on the recovering side: the stalled transaction is taken for dead.
    const eager = await bank.proxy('gwc', { transactions: { prepareTimeoutMs: 500, recoveryIntervalMs: 200 } });
    const slow = await bank.proxy('gwd', { failpoints: failpoint, transactions: { prepareTimeoutMs: 2_000 } });
    try {
      const client = await connect(slow);
      const outcomes = new Outcomes();
      const t = plan(bank, 0, [1, 2]);
      outcomes.record(t, await runTransfer(client, t));
      await client.end();
      const stalledBeforeDecision = failpoint.startsWith('before-decision');
      expect(outcomes.summary()).toBe(stalledBeforeDecision ? '{"failed 40001":1}' : '{"committed":1}');
      await bank.waitNoPrepared();
      outcomes.expectMatches(await bank.checkLedger());
      if (stalledBeforeDecision) {
        const decided = await bank.clusters[0]!.query<{ outcome: string }>("SELECT outcome FROM shardgate.tx_decision WHERE gid LIKE 'sg\\_gwd\\_%'", [], 'app');
        expect(decided.map((r) => r.outcome)).toEqual(['abort']);
      }
    } finally {
      await Promise.all([slow.stop(), eager.stop()]);
    }
  });
});
