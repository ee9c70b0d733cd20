import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBenchClusters, type BenchCluster } from '../../../src/bench/pg-cluster.js';
import { initPgbench } from '../../../src/bench/pgbench.js';
import { PGBENCH_TABLE_RULES, PROXY_DATABASE, PROXY_USER, proxyConfig, startShardGate } from '../../../src/bench/shardgate-process.js';
import { runTwoPhaseClient } from '../../../src/bench/two-phase-client.js';

// The hand-written two-phase client of the TPC-B comparison must do what ShardGate does:
// find every row where ShardGate placed it and commit each transaction whole.
describe('hand-written two-phase TPC-B client over 3 shards', () => {
  let shards: BenchCluster[] = [];
  beforeAll(async () => {
    shards = await startBenchClusters(3, { databases: [PROXY_DATABASE] });
    // The rows are placed by ShardGate (pgbench -i through the proxy), then the proxy is stopped:
    // the client runs alone against the shards.
    const proxy = await startShardGate(proxyConfig(shards.map((c) => c.url(PROXY_DATABASE)), PGBENCH_TABLE_RULES, { maxPerShard: 4 }));
    try {
      await initPgbench({ port: proxy.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE }, 1);
    } finally {
      await proxy.stop();
    }
  }, 180_000);
  afterAll(async () => {
    await Promise.all(shards.map((c) => c.destroy()));
  });

  const total = async (sql: string): Promise<number> => {
    let sum = 0;
    for (const c of shards) sum += Number((await c.query<{ n: string }>(sql, [], PROXY_DATABASE))[0]!.n);
    return sum;
  };

  it('keeps the four pgbench sums equal, commits most transactions with 2PC and leaves nothing prepared', async () => {
    const run = await runTwoPhaseClient({ shardUrls: shards.map((c) => c.url(PROXY_DATABASE)), clients: 4, durationS: 2, scale: 1 });
    expect(run.transactions).toBeGreaterThan(0);
    expect(run.latenciesMs).toHaveLength(run.transactions);
    // aid, tid and bid hash independently over 3 shards: most transactions write two or three.
    expect(run.twoPhasePercent).toBeGreaterThan(50);
    expect(run.twoPhasePercent).toBeLessThan(100);

    // An UPDATE sent to a shard that does not hold its row changes nothing, so any misrouting breaks a sum.
    const history = await total('SELECT coalesce(sum(delta), 0)::text AS n FROM pgbench_history');
    expect(await total('SELECT sum(abalance)::text AS n FROM pgbench_accounts')).toBe(history);
    expect(await total('SELECT sum(tbalance)::text AS n FROM pgbench_tellers')).toBe(history);
    expect(await total('SELECT sum(bbalance)::text AS n FROM pgbench_branches')).toBe(history);
    expect(await total('SELECT count(*)::text AS n FROM pgbench_history')).toBe(run.transactions);

    expect(await total('SELECT count(*)::text AS n FROM pg_prepared_xacts')).toBe(0);
    expect(await total("SELECT count(*)::text AS n FROM shardgate.tx_decision WHERE gid LIKE 'hw\\_%'")).toBe(0);
  }, 120_000);
});
