/**
 * Shard connections: networked PostgreSQL and embedded PGlite behind one
 * protocol-level connection core, pooled per shard. Implements the engine's
 * ShardCursor / ShardConnector.
 */
export { createConnector, type BackendConnector, type ConnectorOptions } from './connector.js';
export { BackendConnection, DEFAULT_BATCH_SIZE, DEFAULT_STATEMENT_CACHE_SIZE, type BackendConnectionOptions } from './backend-connection.js';
export { connectPostgres, openPostgresSession, parsePostgresUrl, type PostgresTarget, type ConnectOptions } from './connect-postgres.js';
export { openEmbedded, PgliteTransport, EMBEDDED_MAX_PREPARED_TRANSACTIONS } from './pglite-transport.js';
export { TcpTransport } from './tcp-transport.js';
export { ShardPool, type PoolMember, type PoolStats, type ShardPoolOptions } from './shard-pool.js';
export { ShardLease } from './shard-lease.js';
export { StatementCache } from './statement-cache.js';
export { BufferedCopySink, COPY_CHUNK_BYTES, COPY_MAX_UNCHUNKED_BYTES } from './buffered-copy-sink.js';
export { NetworkCopySink } from './network-copy-sink.js';
export type { Transport } from './transport.js';
