import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Failpoints } from '../../../src/tx/index.js';
import { TestShards } from './shards.js';

const ACCOUNTS = 30;
const INITIAL = 1_000;
const WORKERS = 20;
const TRANSFERS_PER_WORKER = 12;
const shardOf = (id: number): ReturnType<typeof shardName> => shardName(`s${id % 3}`);

describe('money is conserved across shards', () => {
  let shards: TestShards;

  beforeAll(async () => {
    shards = await TestShards.start(3);
    for (let id = 0; id < ACCOUNTS; id++) await shards.query(shardOf(id), 'INSERT INTO account VALUES ($1, $2)', [id, INITIAL]);
  });
  afterAll(async () => {
    await shards?.destroy();
  });

  it('20 concurrent transfer loops with random failures keep every balance exactly as acknowledged', async () => {
    const failpoints = new Failpoints([
      { name: 'before-prepare', action: { kind: 'error' }, probability: 0.08 },
      { name: 'after-prepare', action: { kind: 'error' }, probability: 0.08 },
      { name: 'before-decision', action: { kind: 'error' }, probability: 0.05 },
      { name: 'after-decision', action: { kind: 'error' }, probability: 0.05 },
      { name: 'between-commit-prepared', action: { kind: 'error' }, probability: 0.1 },
    ]);
    const tm = shards.manager({ failpoints, deadlockCheckMs: 100, prepareTimeoutMs: 3_000 });
    await tm.start();
    const expected = Array.from({ length: ACCOUNTS }, () => INITIAL);
    const outcomes = new Map<string, number>();
    const count = (key: string): void => void outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

    const transfer = async (from: number, to: number, amount: number): Promise<void> => {
      const tx = tm.begin({});
      try {
        for (const [id, delta] of [
          [from, -amount],
          [to, amount],
        ] as const) {
          const conn = await tx.participant(shardOf(id));
          await conn.rows('UPDATE account SET balance = balance + $1 WHERE id = $2', [String(delta), String(id)]);
          tx.markWritten(shardOf(id));
        }
      } catch (err) {
        count(tx.fail(err as PgError).code);
        await tx.rollback();
        return;
      }
      try {
        const tag = await tx.commit();
        count(tag);
        if (tag === 'COMMIT') {
          expected[from]! -= amount;
          expected[to]! += amount;
        }
      } catch (err) {
        expect(err).toBeInstanceOf(PgError);
        // 08007 would mean the outcome is unknown: not acceptable with every shard up.
        expect((err as PgError).code).not.toBe('08007');
        count((err as PgError).code);
      }
    };

    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        for (let i = 0; i < TRANSFERS_PER_WORKER; i++) {
          const from = Math.floor(Math.random() * ACCOUNTS);
          const to = (from + 1 + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS;
          await transfer(from, to, 1 + Math.floor(Math.random() * 50));
        }
      }),
    );
    await tm.stop();
    await shards.manager({ coordinatorId: 'rec' }).recover({ graceMs: 0 });
    expect(await shards.prepared()).toEqual([]);

    const balances = Array.from({ length: ACCOUNTS }, () => NaN);
    for (const s of ['s0', 's1', 's2']) {
      for (const r of await shards.query(s, 'SELECT id, balance FROM account')) balances[Number(r.id)] = Number(r.balance);
    }
    expect(balances.reduce((a, b) => a + b, 0)).toBe(ACCOUNTS * INITIAL);
    expect(balances).toEqual(expected);
    // The run exercised both outcomes.
    expect(outcomes.get('COMMIT') ?? 0).toBeGreaterThan(0);
    expect(outcomes.get('08006') ?? 0).toBeGreaterThan(0);
  });
});
