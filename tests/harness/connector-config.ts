import type { ShardGateConfig, ShardSpec } from '../../src/config/types.js';

/**
 * A configuration for pools over `shards` alone (createConnector, transaction
 * managers): no tables, no admin endpoint, trust authentication, the first
 * shard as default.
 */
export function connectorConfig(shards: readonly ShardSpec[], maxPerShard = 4): ShardGateConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    adminToken: null,
    database: 'app',
    auth: { users: [], trust: true },
    coordinatorId: 'test',
    shards: [...shards],
    defaultShard: shards[0]!.name,
    pool: { maxPerShard, acquireTimeoutMs: 5_000, maxClients: 100 },
    transactions: { prepareTimeoutMs: 5_000, recoveryIntervalMs: 5_000 },
    tables: new Map(),
  };
}
