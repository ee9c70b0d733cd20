import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, Outcomes, plan, runTransfer, sleep, sqlstate, type Transfer } from './bank.js';

/**
 * The pattern that loses money when each shard is a separate database: many
 * concurrent transfers, each debiting an account on one shard and inserting
 * the trade on another, with failures injected at every step of the commit
 * protocol, clients vanishing mid-transaction and statements failing.
 */

const CLIENTS = 16;
const TRANSFERS_PER_CLIENT = 30;
const FAILPOINTS = 'before-prepare=4%error;after-prepare=4%error;before-decision=4%error;after-decision=4%error;between-commit-prepared=10%error';

describe('money conservation under injected failures', () => {
  let bank: Bank;
  let proxy: RunningProxy;

  beforeAll(async () => {
    bank = await Bank.create(3);
    proxy = await bank.proxy('gw1', { failpoints: FAILPOINTS });
    // The multi-row INSERT is itself a 2PC transaction that a failpoint may fail: retry it.
    for (let attempt = 0; ; attempt++) {
      try {
        await bank.reset(proxy, 60);
        break;
      } catch (err) {
        if (attempt >= 5) throw err;
      }
    }
  });
  afterAll(async () => {
    await proxy?.stop();
    await bank?.destroy();
  });

  function randomTransfer(): Transfer {
    const from = Math.floor(Math.random() * 3);
    const others = [0, 1, 2].filter((s) => s !== from);
    return plan(bank, from, Math.random() < 0.3 ? others : [others[Math.floor(Math.random() * 2)]!]);
  }

  /** A statement fails mid-transaction: every later statement gets 25P02 and COMMIT answers ROLLBACK. */
  async function failingStatement(client: pg.Client, t: Transfer): Promise<void> {
    await client.query('BEGIN');
    await client.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [t.amount, t.from]);
    const err = await client.query('UPDATE account SET balance = balance / 0 WHERE id = $1', [t.to[0]]).catch((e: unknown) => e);
    expect(sqlstate(err)).toBe('22012');
    const after = await client
      .query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, 0, 1, $2, $3, $4)', [t.id, t.to[0], t.from, t.amount])
      .catch((e: unknown) => e);
    expect(sqlstate(after)).toBe('25P02');
    expect((await client.query('COMMIT')).command).toBe('ROLLBACK');
  }

  /** The client goes away between the debit and the trade: gracefully (Terminate) or by dropping the socket. */
  async function vanish(client: pg.Client, t: Transfer, abrupt: boolean): Promise<void> {
    await client.query('BEGIN');
    await client.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [t.amount, t.from]);
    await client.query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, 0, 1, $2, $3, $4)', [t.id, t.to[0], t.from, t.amount]);
    if (abrupt) (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    else await client.end();
  }

  it(`${CLIENTS} clients × ${TRANSFERS_PER_CLIENT} transfers: every trade matches its debit, nothing prepared, pools idle`, { timeout: 150_000 }, async () => {
    const outcomes = new Outcomes();
    const kinds = new Map<string, number>();
    const tally = (k: string): void => void kinds.set(k, (kinds.get(k) ?? 0) + 1);

    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        let client = await connect(proxy);
        try {
          for (let i = 0; i < TRANSFERS_PER_CLIENT; i++) {
            const t = randomTransfer();
            const dice = Math.random();
            if (dice < 0.06) {
              tally('statement error');
              await failingStatement(client, t);
              outcomes.record(t, { kind: 'failed', code: '22012' });
            } else if (dice < 0.12) {
              tally('client vanished');
              await vanish(client, t, dice < 0.09);
              outcomes.record(t, { kind: 'failed', code: 'client vanished' });
              client = await connect(proxy);
            } else {
              const told = await runTransfer(client, t);
              tally(told.kind === 'committed' ? 'committed' : `${told.kind} ${told.code ?? 'connection'}`);
              outcomes.record(t, told);
            }
          }
        } finally {
          await client.end().catch(() => undefined);
        }
      }),
    );

    // Injected errors on the commit path must have fired, and most transfers still committed.
    expect(kinds.get('failed 08006') ?? 0, JSON.stringify(Object.fromEntries(kinds))).toBeGreaterThan(0);
    expect(outcomes.count('committed'), outcomes.summary()).toBeGreaterThan((CLIENTS * TRANSFERS_PER_CLIENT) / 2);
    // No connection to the proxy broke and nothing stayed unknown: every failure had an answer.
    expect(outcomes.count('unknown'), outcomes.summary()).toBe(0);

    await bank.waitNoPrepared(30_000);
    outcomes.expectMatches(await bank.checkLedger());
    await bank.waitIdle();
  });

  it('transfers keep going while a shard is killed and restarted under load: what each client was told holds', { timeout: 120_000 }, async () => {
    const outcomes = new Outcomes();
    let running = true;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        let client = await connect(proxy);
        try {
          while (running) {
            const t = randomTransfer();
            const told = await runTransfer(client, t);
            outcomes.record(t, told);
            if (told.kind === 'unknown' && told.code === undefined) client = await connect(proxy);
          }
        } finally {
          await client.end().catch(() => undefined);
        }
      }),
    );
    try {
      await sleep(1_500);
      await bank.clusters[2]!.kill9();
      await sleep(1_000);
      await bank.clusters[2]!.start();
      await sleep(2_000);
    } finally {
      running = false;
      await load;
    }
    const before = outcomes.count('committed');
    expect(before, outcomes.summary()).toBeGreaterThan(0);
    await bank.waitNoPrepared(30_000);
    outcomes.expectMatches(await bank.checkLedger());
    await bank.waitIdle();
    // Every shard serves again through the same pools.
    const client = await connect(proxy);
    try {
      for (let from = 0; from < 3; from++) {
        const t = plan(bank, from, [0, 1, 2].filter((s) => s !== from));
        const told = await runTransfer(client, t);
        expect(['committed', 'failed 08006'], JSON.stringify(told)).toContain(told.kind === 'committed' ? 'committed' : `${told.kind} ${told.code}`);
      }
    } finally {
      await client.end();
    }
  });
});
