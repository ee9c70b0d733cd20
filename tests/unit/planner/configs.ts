import { shardName, tableName } from '../../../src/config/names.js';
import type { ShardGateConfig, TableRule } from '../../../src/config/types.js';

function config(shards: readonly string[], tables: Record<string, TableRule>, defaultShard = shards[0] as string): ShardGateConfig {
  return {
    listen: { host: '127.0.0.1', port: 6432 },
    admin: null,
    adminToken: null,
    database: 'app',
    auth: { users: [], trust: true },
    coordinatorId: 'gw1',
    shards: shards.map((s, i) => ({ kind: 'postgres', name: shardName(s), url: `postgres://127.0.0.1:${55432 + i}/app` })),
    defaultShard: shardName(defaultShard),
    pool: { maxPerShard: 4, acquireTimeoutMs: 1000, maxClients: 100 },
    transactions: { prepareTimeoutMs: 5000, recoveryIntervalMs: 5000 },
    tables: new Map(Object.entries(tables).map(([k, v]) => [tableName(k), v])),
  };
}

const YEARS = [
  { below: '2026-01-01', shard: shardName('s0') },
  { below: '2027-01-01', shard: shardName('s1') },
  { shard: shardName('s2') },
];

/** Named configurations the golden cases refer to ("config" field; default: "main"). */
export const configs: Record<string, ShardGateConfig> = {
  main: config(['s0', 's1', 's2', 's3'], {
    accounts: { kind: 'hash', key: 'id' },
    trades: { kind: 'hash', key: 'account_id' },
    orders: { kind: 'mod', key: 'user_id' },
    order_items: { kind: 'mod', key: 'user_id' },
    events: { kind: 'range', key: 'created_at', ranges: YEARS },
    metrics: { kind: 'range', key: 'ts', ranges: YEARS },
    countries: { kind: 'broadcast' },
    currencies: { kind: 'broadcast' },
  }),
  pgbench: config(['s0', 's1'], {
    pgbench_accounts: { kind: 'hash', key: 'aid' },
    pgbench_tellers: { kind: 'hash', key: 'tid' },
    pgbench_branches: { kind: 'hash', key: 'bid' },
    pgbench_history: { kind: 'hash', key: 'aid' },
  }),
  ranges: config(['s0', 's1'], {
    readings: { kind: 'range', key: 'sensor', ranges: [{ below: 100, shard: shardName('s0') }, { below: 200, shard: shardName('s1') }] },
  }, 's1'),
};
