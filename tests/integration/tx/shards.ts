import pg from 'pg';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { Failpoints, TransactionManager, type TransactionManagerOptions } from '../../../src/tx/index.js';
import { PgSource, type PgConnection } from './pg-connection.js';

/** Test shards s0..s(n-1), one PostgreSQL cluster each, database `app` with table `account`. */
export class TestShards {
  readonly urls: Record<string, string>;
  readonly #sources: PgSource[] = [];

  private constructor(readonly clusters: readonly PgCluster[]) {
    this.urls = Object.fromEntries(clusters.map((c, i) => [`s${i}`, c.url('app')]));
  }

  static async start(n: number): Promise<TestShards> {
    const clusters = await startClusters(n, { databases: ['app'] });
    const shards = new TestShards(clusters);
    await shards.each('CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL)');
    return shards;
  }

  cluster(shard: string): PgCluster {
    return this.clusters[Number(shard.slice(1))]!;
  }

  /** Runs SQL on one shard with a fresh connection. */
  async query(shard: string, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ connectionString: this.urls[shard] });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  }

  async each(sql: string): Promise<void> {
    await Promise.all(Object.keys(this.urls).map((s) => this.query(s, sql)));
  }

  /** Prepared transaction identifiers on every shard. */
  async prepared(): Promise<string[]> {
    const all = await Promise.all(Object.keys(this.urls).map((s) => this.query(s, 'SELECT gid FROM pg_prepared_xacts ORDER BY gid')));
    return all.flat().map((r) => String(r.gid));
  }

  async decisions(shard: string): Promise<{ gid: string; outcome: string }[]> {
    return (await this.query(shard, 'SELECT gid, outcome FROM shardgate.tx_decision ORDER BY gid')) as { gid: string; outcome: string }[];
  }

  async ids(shard: string): Promise<number[]> {
    return (await this.query(shard, 'SELECT id FROM account ORDER BY id')).map((r) => Number(r.id));
  }

  source(maxPerShard?: number): PgSource {
    const source = new PgSource(this.urls, maxPerShard);
    this.#sources.push(source);
    return source;
  }

  /** A manager with no background loops unless asked for. */
  manager(opts: Partial<TransactionManagerOptions<PgConnection>> = {}): TransactionManager<PgConnection> {
    return new TransactionManager<PgConnection>({
      coordinatorId: 'gw1',
      source: opts.source ?? this.source(),
      prepareTimeoutMs: 2_000,
      acquireTimeoutMs: 5_000,
      recoveryIntervalMs: 0,
      deadlockCheckMs: 0,
      failpoints: new Failpoints(),
      ...opts,
    });
  }

  async destroy(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.close()));
    await Promise.all(this.clusters.map((c) => c.destroy()));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
