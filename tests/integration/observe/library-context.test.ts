import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Queryable } from '../../../src/library/shard-gate.js';
import { ShardGate } from '../../../src/index.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';

/** Inserts one row through the ShardGate object only: it joins whatever transaction is current. */
async function insertRow(gate: ShardGate, id: number, tag: string): Promise<void> {
  await gate.query('INSERT INTO ctx_rows (id, tag) VALUES ($1, $2)', [id, tag]);
}

describe('transaction context in the library, on PostgreSQL shards', () => {
  let clusters: PgCluster[];
  let gate: ShardGate;

  beforeAll(async () => {
    clusters = await startClusters(2, { databases: ['app'] });
    gate = await ShardGate.open({
      coordinatorId: 'ctx1',
      shards: { s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app') },
      pool: { maxPerShard: 60, acquireTimeoutMs: 30_000 },
      transactions: { recoveryIntervalMs: 0 },
      tables: { ctx_rows: { key: 'id', algorithm: 'mod' } },
    });
    await gate.query('CREATE TABLE ctx_rows (id bigint PRIMARY KEY, tag text NOT NULL)');
  }, 120_000);

  afterAll(async () => {
    await gate?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  const rowsOnShards = async (): Promise<{ id: number; tag: string }[]> => {
    const parts = await Promise.all(clusters.map((c) => c.query<{ id: string; tag: string }>('SELECT id::text, tag FROM ctx_rows', [], 'app')));
    return parts.flat().map((r) => ({ id: Number(r.id), tag: r.tag }));
  };

  it('1000 concurrent transactions: each sees only its own rows, rolled-back ones leave nothing', async () => {
    const N = 1000;
    const rolledBack = (i: number): boolean => i % 5 === 0;
    const results = await Promise.allSettled(
      Array.from({ length: N }, (_, i) =>
        gate.transaction(async () => {
          const tag = `t${i}`;
          // ids 4i (s0), 4i+1 (s1), 4i+2 (s0): every transaction writes both shards (two-phase commit). Each
          // joins s0 before s1, so transactions holding one shard's connection never wait on each other in a cycle.
          await insertRow(gate, 4 * i, tag);
          await sleep(Math.floor(Math.random() * 3));
          await Promise.all([insertRow(gate, 4 * i + 1, tag), insertRow(gate, 4 * i + 2, tag)]);
          const seen = await gate.query<{ n: string }>('SELECT count(*) AS n FROM ctx_rows WHERE tag = $1', [tag]);
          // Inside the transaction its own uncommitted rows are visible: the reads joined it too.
          expect(Number(seen.rows[0]!.n)).toBe(3);
          if (rolledBack(i)) throw new Error(`roll back ${i}`);
          return i;
        }),
      ),
    );
    const failedUnexpectedly = results.filter((r, i) => r.status === 'rejected' && !rolledBack(i));
    expect(failedUnexpectedly).toEqual([]);
    const rows = await rowsOnShards();
    const byTag = new Map<string, number[]>();
    for (const r of rows) if (r.tag.startsWith('t')) byTag.set(r.tag, [...(byTag.get(r.tag) ?? []), r.id]);
    for (let i = 0; i < N; i++) {
      const ids = (byTag.get(`t${i}`) ?? []).sort((a, b) => a - b);
      expect(ids).toEqual(rolledBack(i) ? [] : [4 * i, 4 * i + 1, 4 * i + 2]);
    }
    expect([...byTag.values()].flat().length).toBe((N - N / 5) * 3);
  }, 180_000);

  it('a nested transaction() is a savepoint: its rollback undoes only its own rows', async () => {
    await gate.transaction(async () => {
      await insertRow(gate, 1_000_001, 'outer');
      await expect(
        gate.transaction(async () => {
          await insertRow(gate, 1_000_002, 'inner');
          throw new Error('inner fails');
        }),
      ).rejects.toThrow('inner fails');
      await gate.transaction(async () => insertRow(gate, 1_000_003, 'inner-kept'));
    });
    const tags = (await rowsOnShards()).filter((r) => r.id > 1_000_000).map((r) => r.tag).sort();
    expect(tags).toEqual(['inner-kept', 'outer']);
  });

  it('work left running after its transaction ended fails with 25000 instead of autocommitting', async () => {
    let escaped: Promise<unknown> | undefined;
    let saved: Queryable | undefined;
    await gate.transaction(async (tx) => {
      saved = tx;
      // Not awaited: runs after the transaction committed.
      escaped = sleep(50).then(() => insertRow(gate, 2_000_001, 'escaped'));
    });
    await expect(escaped).rejects.toMatchObject({ code: '25000' });
    await expect(saved!.query('INSERT INTO ctx_rows (id, tag) VALUES (2000002, $1)', ['late'])).rejects.toMatchObject({ code: '25000' });
    expect((await rowsOnShards()).filter((r) => r.id > 2_000_000)).toEqual([]);
  });

  it('two ShardGate instances keep their transactions apart in one async context', async () => {
    const other = await ShardGate.open({
      coordinatorId: 'ctx2',
      shards: { s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app') },
      transactions: { recoveryIntervalMs: 0 },
      tables: { ctx_rows: { key: 'id', algorithm: 'mod' } },
    });
    try {
      await expect(
        gate.transaction(async () => {
          await insertRow(gate, 3_000_001, 'gate-rolled-back');
          // `other` has no transaction here: this autocommits on its own.
          await insertRow(other, 3_000_002, 'other-autocommit');
          throw new Error('roll back gate only');
        }),
      ).rejects.toThrow('roll back gate only');
    } finally {
      await other.close();
    }
    expect((await rowsOnShards()).filter((r) => r.id > 3_000_000).map((r) => r.tag)).toEqual(['other-autocommit']);
  });
});
