import type { ShardName } from '../config/names.js';
import type { ShardGateConfig, ShardSpec } from '../config/types.js';
import type { ShardConnector, ShardCursor } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import type { BackendConnection } from './backend-connection.js';
import { connectPostgres, parsePostgresUrl, type ConnectOptions } from './connect-postgres.js';
import { openEmbedded } from './pglite-transport.js';
import { ShardLease } from './shard-lease.js';
import { ShardPool, type PoolStats } from './shard-pool.js';

/** What `createConnector` returns: pools for every shard plus what the server layer reports to clients. */
export interface BackendConnector extends ShardConnector {
  /** server_version last reported by the shard ('' when it was never reached). */
  serverVersion(shard: ShardName): string;
  /** Pool figures of one shard. */
  pool(shard: ShardName): ShardPool<BackendConnection>;
  /** Sets `pool.maxPerShard` of every networked shard (embedded shards keep their one connection); no connection in use is dropped. */
  resizePools(maxPerShard: number): void;
  /** True for an embedded shard: one session, held exclusively from acquire to release (TxConnectionSource.exclusive). */
  exclusive(shard: ShardName): boolean;
}

export type ConnectorOptions = ConnectOptions;

/**
 * Builds one pool per configured shard, in the configured order.
 * Networked shards get `pool.maxPerShard` connections each; an embedded shard
 * is one PGlite session, so its pool holds exactly one connection, held
 * exclusively from acquire to release (a statement blocked on a lock freezes
 * PGlite, so nothing may share it; waiting for it ends in 40P01 after the
 * acquire timeout).
 *
 * Embedded shards are opened here (a folder that cannot be opened rejects);
 * networked shards are tried once to learn their version, and one that is
 * down does not stop start-up: its acquires fail with 08006 until it is back.
 */
export async function createConnector(config: ShardGateConfig, opts: ConnectorOptions = {}): Promise<BackendConnector> {
  const pools = new Map<ShardName, ShardPool<BackendConnection>>();
  const versions = new Map<ShardName, string>();
  const remember = (conn: BackendConnection): BackendConnection => {
    if (conn.serverVersion !== '') versions.set(conn.shard, conn.serverVersion);
    return conn;
  };
  for (const spec of config.shards) {
    const open = opener(spec, opts);
    pools.set(spec.name, new ShardPool({ shard: spec.name, max: spec.kind === 'embedded' ? 1 : config.pool.maxPerShard, create: async () => remember(await open()) }));
  }
  const warmUp = await Promise.allSettled(
    config.shards.map(async (spec) => {
      const pool = pools.get(spec.name)!;
      pool.release(await pool.acquire(config.pool.acquireTimeoutMs));
    }),
  );
  const failedEmbedded = warmUp.findIndex((r, i) => r.status === 'rejected' && config.shards[i]!.kind === 'embedded');
  if (failedEmbedded >= 0) {
    await Promise.all([...pools.values()].map((p) => p.close()));
    throw (warmUp[failedEmbedded] as PromiseRejectedResult).reason;
  }

  const shards = config.shards.map((s) => s.name);
  const poolOf = (shard: ShardName): ShardPool<BackendConnection> => {
    const pool = pools.get(shard);
    if (pool === undefined) throw new PgError(sgError('unknownShard', { shard, shards: shards.join(', ') }).fields);
    return pool;
  };
  return {
    shards,
    acquire(shard: ShardName, timeoutMs: number): Promise<ShardCursor> {
      let pool: ShardPool<BackendConnection>;
      try {
        pool = poolOf(shard);
      } catch (err) {
        return Promise.reject(err as Error);
      }
      return pool.acquire(timeoutMs).then((conn) => new ShardLease(conn, pool));
    },
    stats(): ReadonlyMap<ShardName, PoolStats> {
      return new Map([...pools].map(([name, pool]) => [name, pool.stats()]));
    },
    serverVersion: (shard) => versions.get(shard) ?? '',
    pool: poolOf,
    exclusive: (shard) => config.shards.find((s) => s.name === shard)?.kind === 'embedded',
    resizePools(maxPerShard: number): void {
      for (const spec of config.shards) if (spec.kind !== 'embedded') pools.get(spec.name)!.resize(maxPerShard);
    },
    async close(): Promise<void> {
      await Promise.all([...pools.values()].map((p) => p.close()));
    },
  } satisfies BackendConnector;
}

function opener(spec: ShardSpec, opts: ConnectorOptions): () => Promise<BackendConnection> {
  if (spec.kind === 'embedded') return () => openEmbedded(spec.name, spec.dir, opts);
  const target = parsePostgresUrl(spec.url);
  return () => connectPostgres(spec.name, target, opts);
}
