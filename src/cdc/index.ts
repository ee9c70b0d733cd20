/**
 * Change data capture: decoding of PostgreSQL's logical replication stream
 * (pgoutput messages, the streaming replication CopyData wrappers, LSNs).
 * The replication client is the one file here doing I/O; see README.md.
 */
export * from './lsn.js';
export type * from './pgoutput-message.js';
export {
  TRUNCATE_CASCADE,
  TRUNCATE_RESTART_IDENTITY,
} from './pgoutput-message.js';
export * from './decode-pgoutput.js';
export * from './replication-message.js';
export * from './assembler.js';
export * from './replication-client.js';
export * from './json-line.js';
export * from './cdc-sink.js';
export * from './cdc-runner.js';
export * from './cdc-metrics.js';
export * from './snapshot-filter.js';
export * from './manifest-start.js';
export * from './spill.js';
