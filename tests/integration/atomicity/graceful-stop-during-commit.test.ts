import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bank, connect, Outcomes, plan, runTransfer, sleep } from './bank.js';

/**
 * Regression: a proxy stopped with SIGTERM while a client's COMMIT was in
 * its two-phase commit answered that COMMIT with FATAL 57P01 at once, then
 * went on to commit the transaction: the client was told "failed" for a
 * transaction that committed everywhere. Now the message in hand finishes
 * and answers before the FATAL.
 */
describe('a proxy stopped gracefully while a commit is in flight', () => {
  let bank: Bank;

  beforeAll(async () => {
    bank = await Bank.createFunded(3, 30);
  });
  afterAll(async () => {
    await bank?.destroy();
  });

  it.each(['before-decision=delay(1500)', 'after-decision=delay(1500)'])('SIGTERM at %s: the client is told COMMIT and it is committed everywhere', { timeout: 60_000 }, async (failpoint) => {
    const proxy = await bank.proxy('gw1', { failpoints: failpoint, transactions: { prepareTimeoutMs: 3_000 } });
    const client = await connect(proxy);
    const outcomes = new Outcomes();
    const t = plan(bank, 0, [1, 2]);
    const pending = runTransfer(client, t).then((told) => outcomes.record(t, told));
    // Wait until the transaction sits in the failpoint's window: both other branches prepared.
    for (let i = 0; i < 200 && (await bank.prepared()).flat().length < 2; i++) await sleep(20);
    expect((await bank.prepared()).flat()).toHaveLength(2);
    const stopped = proxy.stop();
    await pending;
    await stopped; // exit status 0
    await client.end().catch(() => undefined);

    expect(outcomes.summary()).toBe('{"committed":1}');
    // The stopping proxy finished the commit itself: nothing is left for recovery.
    expect(await bank.prepared()).toEqual([[], [], []]);
    outcomes.expectMatches(await bank.checkLedger());
  });

  it('SIGTERM while a statement waits on a lock: it ends, the transaction rolls back everywhere', { timeout: 60_000 }, async () => {
    const proxy = await bank.proxy('gw1');
    const [holder, waiter] = await Promise.all([connect(proxy), connect(proxy)]);
    const t = plan(bank, 1, [2]);
    await holder.query('BEGIN');
    await holder.query('UPDATE account SET balance = balance - 1 WHERE id = $1', [t.from]);
    await waiter.query('BEGIN');
    await waiter.query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, 0, 1, $2, $3, $4)', [t.id, t.to[0], t.from, t.amount]);
    const blocked = waiter.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [t.amount, t.from]).catch((e: unknown) => e);
    await sleep(300);
    await proxy.stop();
    // Cancelled (57014), or the lock came free when the holder's session was rolled back, in which
    // case the UPDATE ends and the FATAL follows: either way stop() returned and nothing committed.
    await blocked;
    await Promise.all([holder.end().catch(() => undefined), waiter.end().catch(() => undefined)]);
    const present = await bank.checkLedger();
    expect(present.has(t.id)).toBe(false);
    await bank.waitIdle();
  });
});
