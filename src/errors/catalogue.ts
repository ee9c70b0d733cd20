import { PgError } from './pg-error.js';

/**
 * ShardGate's own errors: one entry per situation. The docs' error table is
 * generated from this list (`npm run docs:errors`), so it is the only place a
 * message, SQLSTATE or hint is written.
 */
export interface CatalogueEntry {
  readonly sqlstate: string;
  readonly severity: 'ERROR' | 'FATAL';
  /** Message template; `{name}` placeholders are filled from the arguments. */
  readonly message: string;
  readonly hint?: string;
}

export const catalogue = {
  syntaxError: { sqlstate: '42601', severity: 'ERROR', message: '{message}' },
  unsupportedCrossShard: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'cannot execute this statement across shards: {reason}',
    hint: '{hint}',
  },
  multiShardWriteInTransaction: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'this transaction would write to shards {shards}; writes to several shards in one transaction are not supported yet',
    hint: 'Keep each transaction\'s writes on one shard (filter by the sharding key), or run the writes as separate transactions.',
  },
  multiShardWrite: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'this statement would write to shards {shards}; a statement that writes to several shards is not supported yet',
    hint: 'Filter by the sharding key so the statement writes one shard.',
  },
  unknownShard: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'unknown shard "{shard}"',
    hint: 'Use one of the configured shards: {shards}.',
  },
  invalidShardingKey: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'cannot route on {table}.{column}: {reason}',
    hint: 'Pass the sharding key as a literal or a text-format parameter of a known type.',
  },
  noShardForKey: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'no shard covers {table}.{column} = {value}',
    hint: 'Add a range entry without `below` to catch every remaining value.',
  },
  inFailedTransaction: {
    sqlstate: '25P02',
    severity: 'ERROR',
    message: 'current transaction is aborted, commands ignored until end of transaction block',
  },
  protocolViolation: { sqlstate: '08P01', severity: 'FATAL', message: 'protocol violation: {reason}' },
  invalidNulByte: { sqlstate: '22021', severity: 'ERROR', message: 'invalid byte sequence for encoding "UTF8": 0x00' },
  messageTooLarge: {
    sqlstate: '08P01',
    severity: 'FATAL',
    message: 'message of {size} bytes exceeds the limit of {limit} bytes',
  },
  passwordFailed: {
    sqlstate: '28P01',
    severity: 'FATAL',
    message: 'password authentication failed for user "{user}"',
  },
  tlsRequired: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: 'this server accepts only encrypted connections: connect with TLS',
    hint: 'use sslmode=require, or sslmode=verify-full with the server certificate\'s CA as sslrootcert',
  },
  invalidAuthorization: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: '{reason}',
  },
  unknownDatabase: {
    sqlstate: '3D000',
    severity: 'FATAL',
    message: 'database "{database}" does not exist',
    hint: 'Connect to database "{expected}".',
  },
  unsupportedProtocolVersion: {
    sqlstate: '0A000',
    severity: 'FATAL',
    message: 'unsupported frontend protocol {major}.{minor}: ShardGate speaks 3.0',
  },
  queryCanceled: { sqlstate: '57014', severity: 'ERROR', message: 'canceling statement due to user request' },
  shardBusy: {
    sqlstate: '40P01',
    severity: 'ERROR',
    message: 'could not get a connection to shard {shard} within {timeoutMs} ms',
    hint: 'Retry the transaction; raise pool.maxPerShard if this happens under normal load.',
  },
  shardUnavailable: {
    sqlstate: '08006',
    severity: 'ERROR',
    message: 'shard {shard} is unavailable: {reason}',
  },
  tooManyConnections: {
    sqlstate: '53300',
    severity: 'FATAL',
    message: 'too many client connections ({limit})',
  },
  unknownPreparedStatement: { sqlstate: '26000', severity: 'ERROR', message: 'prepared statement "{name}" does not exist' },
  duplicatePreparedStatement: { sqlstate: '42P05', severity: 'ERROR', message: 'prepared statement "{name}" already exists' },
  unknownPortal: { sqlstate: '34000', severity: 'ERROR', message: 'portal "{name}" does not exist' },
  duplicatePortal: { sqlstate: '42P03', severity: 'ERROR', message: 'portal "{name}" already exists' },
  bindParameterCount: {
    sqlstate: '08P01',
    severity: 'ERROR',
    message: 'bind message supplies {supplied} parameters, but prepared statement "{name}" requires {required}',
  },
  bindFormatCount: {
    sqlstate: '08P01',
    severity: 'ERROR',
    message: 'bind message has {formats} parameter formats but {params} parameters',
  },
  unexpectedCopyMessage: {
    sqlstate: '08P01',
    severity: 'ERROR',
    message: 'unexpected message type 0x{code} during COPY from stdin',
  },
  adminShutdown: {
    sqlstate: '57P01',
    severity: 'FATAL',
    message: 'terminating connection because ShardGate is shutting down',
  },
  orderByPositionNotInSelectList: {
    sqlstate: '42P10',
    severity: 'ERROR',
    message: 'ORDER BY position {position} is not in select list',
  },
  cdcManifest: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'cannot start change data capture from {file}: {reason}',
    hint: 'Give the manifest.json of a complete `shardgate export --cdc` taken of these same shards.',
  },
  cdcOption: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'shardgate cdc {option}: {reason}',
    hint: 'See `shardgate cdc --help`.',
  },
  exportNoPrimaryKey: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'cannot export table {table}: it has no primary key, so its rows cannot be split into key ranges nor loaded idempotently',
    hint: 'Add a primary key to the table, or pass --allow-no-primary-key to export it as one chunk per shard.',
  },
  exportNeedsServer: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: '{command} needs PostgreSQL servers, and shard "{shard}" is embedded',
    hint: 'Point every shard at a PostgreSQL server: an embedded shard serves one session, and an export holds its snapshot in one session while others read under it.',
  },
  exportFolder: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'cannot use {dir} for the export: {reason}',
    hint: 'Give --out an empty or new folder, or the folder of an unfinished export of these same shards to resume it.',
  },
  exportCutLost: {
    sqlstate: '72000',
    severity: 'ERROR',
    message: 'the cut of the export in {dir} is gone on shard "{shard}": {reason}',
    hint: 'An exported snapshot lives only as long as the transaction that holds it (its holder process ended, or the shard restarted). Remove the folder and run the export again.',
  },
  exportOption: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'shardgate export {option}: {reason}',
    hint: 'See `shardgate export --help`.',
  },
  importManifest: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'cannot import {dir}: {reason}',
    hint: 'Give the folder of a complete `shardgate export`.',
  },
  importForeignKey: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'cannot import the foreign key {name} of table {table}: {reason}; nothing was imported',
    hint: 'Give the target rules under which it holds (the referenced table broadcast, or both tables sharded the same way with the key columns matched), or run the import with --skip-unenforceable-foreign-keys to load the rows without it (each one left out is named in a warning).',
  },
  importUnplaceable: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'cannot import {what}: {reason}; nothing was imported',
    hint: '{hint}',
  },
  importChecksum: {
    sqlstate: 'XX001',
    severity: 'ERROR',
    message: 'chunk file {file} does not match the manifest ({reason}); nothing of it was loaded',
    hint: 'The export folder is damaged: copy the file again from the original export, or export again.',
  },
  cdcEventTooLarge: {
    sqlstate: '54000',
    severity: 'ERROR',
    message: 'transaction {id} ({changes} changes) is larger than one {sink} message may be: {limit} bytes ({setting})',
    hint: "Raise the broker's message size limit (and the setting named), or use the stdout or webhook sink, which stream transactions of any size. The slots stay where they are: nothing is lost.",
  },
  cdcNeedsServer: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'change data capture needs PostgreSQL servers, and shard "{shard}" is embedded',
    hint: 'Point the shard at a PostgreSQL server with wal_level = logical.',
  },
  invalidReadConsistency: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'invalid value for parameter "shardgate.read_consistency": "{value}"',
    hint: "Use 'shard' (each shard's own snapshot) or 'snapshot' (every shard at one cut).",
  },
  snapshotNeedsRepeatableRead: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'shardgate.read_consistency is \'snapshot\' but this transaction is {level}: its statements would not read one cut',
    hint: "Begin it with BEGIN ISOLATION LEVEL REPEATABLE READ (or SERIALIZABLE), or SET shardgate.read_consistency = 'shard'.",
  },
  subqueryMoreThanOneRow: {
    sqlstate: '21000',
    severity: 'ERROR',
    message: 'more than one row returned by a subquery used as an expression',
  },
  featureNotSupported: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: '{feature} is not supported by ShardGate',
    hint: '{hint}',
  },
  prepareTimeout: {
    sqlstate: '57014',
    severity: 'ERROR',
    message: 'PREPARE TRANSACTION on shard {shard} did not finish within {timeoutMs} ms; the transaction was rolled back on every shard',
    hint: 'Retry the transaction; raise transactions.prepareTimeoutMs if shard {shard} is slow under normal load.',
  },
  commitFenced: {
    sqlstate: '40001',
    severity: 'ERROR',
    message: 'transaction {gid} was aborted by recovery before its commit was recorded; nothing was committed',
    hint: 'Retry the transaction.',
  },
  commitOutcomeUnknown: {
    sqlstate: '08007',
    severity: 'ERROR',
    message: 'the outcome of transaction {gid} is unknown: its anchor shard {shard} could not be reached ({reason})',
    hint: 'Recovery commits or rolls it back on every shard once shard {shard} is reachable; check before retrying.',
  },
  distributedDeadlock: {
    sqlstate: '40P01',
    severity: 'ERROR',
    message: 'deadlock detected across shards {shards}',
    hint: 'Retry the transaction; taking locks in a consistent order avoids this.',
  },
  unknownSavepoint: { sqlstate: '3B001', severity: 'ERROR', message: 'savepoint "{name}" does not exist' },
  failpoint: { sqlstate: '08006', severity: 'ERROR', message: 'failpoint {name} fired on shard {shard}' },
  invalidTextRepresentation: { sqlstate: '22P02', severity: 'ERROR', message: 'invalid input syntax for type {type}: "{value}"' },
  valueOutOfRange: { sqlstate: '22003', severity: 'ERROR', message: '{reason}' },
  divisionByZero: { sqlstate: '22012', severity: 'ERROR', message: 'division by zero' },
  invalidRowCountInLimit: { sqlstate: '2201W', severity: 'ERROR', message: 'LIMIT must not be negative' },
  invalidRowCountInOffset: { sqlstate: '2201X', severity: 'ERROR', message: 'OFFSET must not be negative' },
  unknownSetting: {
    sqlstate: '42704',
    severity: 'ERROR',
    message: 'unrecognized configuration parameter "{name}"',
    hint: 'ShardGate\'s own settings are shardgate.shard, shardgate.read_consistency, shardgate.shards, shardgate.default_shard and shardgate.coordinator_id.',
  },
  executeParameterCount: { sqlstate: '42601', severity: 'ERROR', message: 'wrong number of parameters for prepared statement "{name}"' },
  duplicateCursor: { sqlstate: '42P03', severity: 'ERROR', message: 'cursor "{name}" already exists' },
  unknownCursor: { sqlstate: '34000', severity: 'ERROR', message: 'cursor "{name}" does not exist' },
  cursorForwardOnly: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'cursor can only scan forward',
    hint: 'A cursor over several shards reads forward only (FETCH [FORWARD] n | ALL, MOVE [FORWARD] n | ALL); filter its query by the sharding key for a SCROLL cursor.',
  },
  noTransactionBlock: { sqlstate: '25P01', severity: 'ERROR', message: '{command} can only be used in transaction blocks' },
  cannotRunInTransaction: { sqlstate: '25001', severity: 'ERROR', message: '{command} cannot run inside a transaction block' },
  transactionRolledBack: {
    sqlstate: '40000',
    severity: 'ERROR',
    message: 'the statement was rolled back: shard {shards} had aborted its part of the transaction',
    hint: 'Retry the statement.',
  },
  transactionEnded: {
    sqlstate: '25000',
    severity: 'ERROR',
    message: 'this query belongs to a transaction that has already ended; it was not run',
    hint: 'Await every query inside transaction(async tx => …) before the callback returns, or run it outside the transaction.',
  },
  notPreparableAcrossShards: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'cannot use {what} in a transaction that writes to several shards ({shards})',
    hint: 'A transaction that writes two or more shards commits with PREPARE TRANSACTION, which PostgreSQL refuses after {what} on that shard. Keep such a transaction on one written shard, or do this outside it.',
  },
  sagaNotFound: {
    sqlstate: '42704',
    severity: 'ERROR',
    message: 'no saga has the gid "{gid}"',
    hint: 'List the sagas with GET /api/sagas; finished sagas are deleted after the retention.',
  },
  sagaNotRetryable: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'saga {gid} is {status}; only an exhausted saga can be retried',
    hint: 'A running or compensating saga is retried by its coordinator already; a finished one has nothing left to do.',
  },
  sagaAlreadyFinished: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'saga {gid} has already ended as {status}; there is nothing to abandon',
  },
  sagaRetryExhausted: {
    sqlstate: '40003',
    severity: 'ERROR',
    message: 'saga {gid} ended as RETRY_EXHAUSTED; the outcome of its step is unknown: {lastError}',
    hint: 'Nothing was compensated. Check the participant, then retry the saga (POST /api/sagas/{gid}/retry) or abandon it (POST /api/sagas/{gid}/abandon).',
  },
  sagaAbandoned: {
    sqlstate: '40003',
    severity: 'ERROR',
    message: 'saga {gid} was abandoned by an operator before it ended; the outcome of its open steps is unknown: {lastError}',
    hint: 'Ask the operator who abandoned it what was settled by hand; submit a new saga if the work is still wanted.',
  },
  sagaWaitTimeout: {
    sqlstate: '57014',
    severity: 'ERROR',
    message: 'saga {gid} did not end within {timeoutMs} ms; it is still {status}',
    hint: 'The saga goes on; wait again, or follow it with GET /api/sagas.',
  },
  sagaBusy: {
    sqlstate: '55P03',
    severity: 'ERROR',
    message: 'saga {gid} is being advanced by a coordinator right now',
    hint: 'Try again in a moment: a coordinator holds a saga only for the length of one move.',
  },
  undefinedTable: { sqlstate: '42P01', severity: 'ERROR', message: 'relation "{table}" does not exist' },
  internal: {
    sqlstate: 'XX000',
    severity: 'ERROR',
    message: 'internal ShardGate error (a bug; please report it): {reason}',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorId = keyof typeof catalogue;

function fill(template: string, args: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => String(args[key] ?? `{${key}}`));
}

/** Builds the PgError for a catalogue entry. */
export function sgError(id: ErrorId, args: Readonly<Record<string, string | number>> = {}, extra: { position?: number; detail?: string } = {}): PgError {
  const entry: CatalogueEntry = catalogue[id];
  const hint = entry.hint === undefined ? undefined : fill(entry.hint, args);
  return new PgError({
    severity: entry.severity,
    code: entry.sqlstate,
    message: fill(entry.message, args),
    ...(hint !== undefined && hint !== '' && !hint.includes('{') ? { hint } : {}),
    ...(extra.detail !== undefined ? { detail: extra.detail } : {}),
    ...(extra.position !== undefined ? { position: String(extra.position) } : {}),
  });
}
