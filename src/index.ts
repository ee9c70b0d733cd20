/**
 * ShardGate as a Node.js library: `ShardGate.open(config)` then `query()` and
 * `transaction()`. The engine and its session interface are exported for
 * embedding ShardGate in other servers.
 */
export { ShardGate, type QueryResult, type ResultField, type Queryable, type Transaction, type CopySource, type OpenOptions } from './library/shard-gate.js';
export { Engine, type EngineDeps, type EngineLog, type SessionInfo } from './engine/engine.js';
export type { EngineSession, ClientStatement, ExecEvent } from './engine/session-api.js';
export { PgError, isRetryable, type ErrorFields } from './errors/index.js';
export { loadConfig, ConfigError } from './config/load.js';
export type { ShardGateConfig, ShardSpec, TableRule } from './config/types.js';
export type { RawConfig } from './config/schema.js';
export { shardName, tableName, type ShardName, type TableName } from './config/names.js';
// Carrying the gid and the trace across services (HTTP and gRPC), and metrics
// for applications that serve their own /metrics.
export * from './observe/propagation/index.js';
export { Metrics } from './observe/metrics.js';
