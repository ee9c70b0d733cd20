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
  featureNotSupported: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: '{feature} is not supported by ShardGate',
    hint: '{hint}',
  },
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
