import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import type { PgError } from '../../../src/errors/pg-error.js';
import { findDeadlocks, type TransactionManager } from '../../../src/tx/index.js';
import type { PgConnection } from './pg-connection.js';
import { TestShards, sleep } from './shards.js';

const s0 = shardName('s0');
const s1 = shardName('s1');

describe('distributed deadlock detection', () => {
  let shards: TestShards;
  let tm: TransactionManager<PgConnection>;

  beforeAll(async () => {
    shards = await TestShards.start(2);
    tm = shards.manager({ deadlockCheckMs: 100 });
    await tm.start();
  });
  afterAll(async () => {
    await tm?.stop();
    await shards?.destroy();
  });

  it('breaks a cycle spanning two shards by failing the youngest transaction with 40P01', async () => {
    await shards.query('s0', 'INSERT INTO account VALUES (1, 100)');
    await shards.query('s1', 'INSERT INTO account VALUES (2, 100)');
    const older = tm.begin({});
    const update = async (tx: typeof older, shard: typeof s0, id: number): Promise<void> => {
      await (await tx.participant(shard)).rows('UPDATE account SET balance = balance + 1 WHERE id = $1', [String(id)]);
      tx.markWritten(shard);
    };
    await update(older, s0, 1);
    await sleep(20);
    const younger = tm.begin({});
    await update(younger, s1, 2);

    // older waits for younger on s1; younger waits for older on s0.
    const olderWaits = update(older, s1, 2);
    await sleep(50);
    const youngerWaits = update(younger, s0, 1).then(
      () => null,
      async (err: unknown) => {
        const reported = younger.fail(err as PgError);
        await younger.rollback();
        return reported;
      },
    );
    const reported = await youngerWaits;
    expect(reported?.code).toBe('40P01');
    await olderWaits;
    expect(await older.commit()).toBe('COMMIT');
    expect(await shards.query('s0', 'SELECT balance FROM account WHERE id = 1')).toEqual([{ balance: '101' }]);
    expect(await shards.query('s1', 'SELECT balance FROM account WHERE id = 2')).toEqual([{ balance: '101' }]);
  });

  it('does not count cycles whose waits are all on one shard (PostgreSQL breaks those)', () => {
    const edges = [
      { waiter: 'sg_a_1', holder: 'sg_a_2', shard: s0 },
      { waiter: 'sg_a_2', holder: 'sg_a_1', shard: s0 },
    ];
    expect(findDeadlocks(edges, new Map())).toEqual([]);
  });
});
