import { psql, startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/** The table every client test works on, sharded by id over two shards. */
export const ACCOUNT_DDL = 'CREATE TABLE account (id bigint PRIMARY KEY, owner text, balance numeric NOT NULL DEFAULT 0);';

/** Two PostgreSQL shards behind a proxy, with table `account` (key id) created through the proxy. */
export async function startAccountSetup(): Promise<ShardedSetup> {
  const setup = await startShardedSetup(2, { account: { key: 'id' } });
  const created = await psql(setup.proxy.port, ACCOUNT_DDL);
  if (created.code !== 0) {
    await setup.stop();
    throw new Error(`CREATE TABLE through the proxy failed (${created.code}): ${created.stderr}`);
  }
  return setup;
}

/** Row count of a table on each shard, read directly from the shards. */
export async function countsPerShard(setup: ShardedSetup, table: string): Promise<number[]> {
  return Promise.all(
    setup.clusters.map(async (c) => Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`, [], 'app'))[0]?.n)),
  );
}
