import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardName } from '../../../src/config/names.js';
import { atCut, GATE_KEY, GATE_SHARED_SQL } from '../../../src/tx/cut.js';
import type { Failpoints } from '../../../src/tx/failpoints.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { PgSource, type PgConnection } from './pg-connection.js';

/**
 * A cut counts the commits it held back: the decision transactions waiting
 * for the shared gate when it lets go. Here the cut is stopped while it holds
 * every gate (its failpoint waits for the test), committers run the decision
 * statement's gate (GATE_SHARED_SQL, what every decision transaction begins
 * with) on both shards, and a second cut queues behind the first: the count
 * is the committers only.
 */
describe('commits delayed by a cut', () => {
  let clusters: PgCluster[];
  let source: PgSource;
  const shards = ['s0', 's1'] as ShardName[];

  beforeAll(async () => {
    clusters = await startClusters(2, { databases: ['app'] });
    source = new PgSource(Object.fromEntries(clusters.map((c, i) => [`s${i}`, c.url('app')])));
  });
  afterAll(async () => {
    await source?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  const acquireAll = (): Promise<PgConnection[]> => Promise.all(shards.map((s) => source.acquire(s, 5_000)));

  /** Backends waiting for the gate on a cluster, in `mode` (ShareLock: committers; ExclusiveLock: cuts). */
  const waiters = async (c: PgCluster, mode: 'ShareLock' | 'ExclusiveLock'): Promise<number> =>
    Number(
      (
        await c.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND mode = $1 AND ((classid::bigint << 32) | objid::bigint) = $2",
          [mode, GATE_KEY.toString()],
          'app',
        )
      )[0]!.n,
    );

  async function committer(c: PgCluster): Promise<{ done: Promise<unknown>; end(): Promise<void> }> {
    const client = new pg.Client({ connectionString: c.url('app') });
    await client.connect();
    const done = client.query(`BEGIN; ${GATE_SHARED_SQL}; COMMIT`);
    return { done, end: () => client.end() };
  }

  async function until(check: () => Promise<boolean>): Promise<void> {
    while (!(await check())) await new Promise((r) => setTimeout(r, 10));
  }

  it('a cut nobody waits for delayed nothing', async () => {
    const conns = await acquireAll();
    try {
      const result = await atCut(conns, 5_000, async () => 'inside');
      expect(result).toMatchObject({ delayed: 0, finished: 0, value: 'inside' });
    } finally {
      for (const c of conns) c.release();
    }
  });

  it('counts the committers that waited on every shard, not another cut waiting behind it', { timeout: 60_000 }, async () => {
    let letGo!: () => void;
    const held = new Promise<void>((r) => (letGo = r));
    let inside!: () => void;
    const holding = new Promise<void>((r) => (inside = r));
    const failpoints = {
      hit: async () => {
        inside();
        await held;
      },
    } as unknown as Failpoints;

    const first = await acquireAll();
    const second = await acquireAll();
    const committers: { done: Promise<unknown>; end(): Promise<void> }[] = [];
    try {
      const firstCut = atCut(first, 30_000, async () => 'first', failpoints);
      await holding;
      // Two decisions on s0, one on s1, each waiting for the gate; a second cut waits for s0's gate.
      committers.push(await committer(clusters[0]!), await committer(clusters[0]!), await committer(clusters[1]!));
      await until(async () => (await waiters(clusters[0]!, 'ShareLock')) === 2 && (await waiters(clusters[1]!, 'ShareLock')) === 1);
      // Queued behind the committers: when the first cut lets go, PostgreSQL grants the shared
      // waiters ahead of it, so none of them is still waiting when the second cut releases.
      const secondCut = atCut(second, 30_000, async () => 'second');
      await until(async () => (await waiters(clusters[0]!, 'ExclusiveLock')) === 1);
      letGo();
      expect(await firstCut).toMatchObject({ delayed: 3, value: 'first' });
      await Promise.all(committers.map((c) => c.done));
      expect(await secondCut).toMatchObject({ delayed: 0, value: 'second' });
    } finally {
      letGo();
      for (const c of [...first, ...second]) c.release();
      await Promise.all(committers.map((c) => c.end()));
    }
  });
});
