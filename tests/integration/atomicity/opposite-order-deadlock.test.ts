import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, sleep, sqlstate } from './bank.js';

/**
 * Transfers taking rows on different shards in opposite orders inside
 * BEGIN … COMMIT: a cycle of lock waits that no single shard sees. Exactly
 * one transaction must fail with 40P01 (the distributed deadlock detector
 * breaks the cycle within about a second) and the others commit; none may
 * hang (each round is bounded by the test timeout).
 */
describe('transfers in opposite orders across shards', () => {
  let bank: Bank;
  let proxy: RunningProxy;

  beforeAll(async () => {
    bank = await Bank.create(3);
    proxy = await bank.proxy('gw1');
    await bank.reset(proxy, 15);
  });
  afterAll(async () => {
    await proxy?.stop();
    await bank?.destroy();
  });

  /** Sum of the balances of `ids`, read directly from the shards. */
  async function total(ids: readonly number[]): Promise<number> {
    const rows = (await Promise.all(bank.clusters.map((c) => c.query<{ balance: string }>('SELECT balance FROM account WHERE id = ANY($1)', [ids], 'app')))).flat();
    expect(rows).toHaveLength(ids.length);
    return rows.reduce((s, r) => s + Number(r.balance), 0);
  }

  const rounds: [string, number, 'extended' | 'simple'][] = [
    ['two shards, extended protocol', 2, 'extended'],
    ['two shards, simple protocol', 2, 'simple'],
    ['two shards, again', 2, 'extended'],
    ['a three-shard cycle', 3, 'extended'],
  ];

  it.each(rounds)('%s: one gets 40P01, the others commit', { timeout: 20_000 }, async (_name, n, protocol) => {
    // Client i holds a row on shard i, then wants the row client i+1 holds on shard i+1.
    const ids = Array.from({ length: n }, (_, i) => bank.on(i));
    const before = await total(ids);
    const clients = await Promise.all(ids.map(() => connect(proxy)));
    const debit = (client: pg.Client, id: number): Promise<unknown> =>
      protocol === 'simple' ? client.query(`UPDATE account SET balance = balance - 1 WHERE id = ${id}`) : client.query('UPDATE account SET balance = balance - 1 WHERE id = $1', [id]);
    try {
      for (const [i, client] of clients.entries()) {
        await client.query('BEGIN');
        await debit(client, ids[i]!);
      }
      const finish = async (client: pg.Client, id: number): Promise<string> => {
        try {
          await debit(client, id);
          return (await client.query('COMMIT')).command ?? '';
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          return sqlstate(err) ?? String(err);
        }
      };
      const results: Promise<string>[] = [];
      for (const [i, client] of clients.entries()) {
        results.push(finish(client, ids[(i + 1) % n]!));
        await sleep(50); // the last of these closes the cycle
      }
      expect((await Promise.all(results)).sort()).toEqual(['40P01', ...Array.from({ length: n - 1 }, () => 'COMMIT')]);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // The winners' two debits each stuck, the victim's none (its debit on the other shard rolled back too).
    expect(before - (await total(ids))).toBe(2 * (n - 1));
    expect(await bank.openTransactions()).toEqual([[], [], []]);
  });
});
