import type { ShardName, TableName } from './names.js';

/** A shard after validation: a networked PostgreSQL server or an embedded PGlite folder. */
export type ShardSpec =
  | { readonly kind: 'postgres'; readonly name: ShardName; readonly url: string }
  | { readonly kind: 'embedded'; readonly name: ShardName; readonly dir: string };

/** How one logical table is placed on shards. */
export type TableRule =
  | { readonly kind: 'broadcast' }
  | { readonly kind: 'hash'; readonly key: string }
  | { readonly kind: 'mod'; readonly key: string }
  | {
      readonly kind: 'range';
      readonly key: string;
      /** First matching entry wins; an entry without `below` matches everything left. */
      readonly ranges: readonly { readonly below?: string | number; readonly shard: ShardName }[];
    };

/**
 * The validated configuration every layer works from. Shards keep the order in
 * which the file lists them: `mod` and `hash` number shards in that order.
 */
export interface ShardGateConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number } | null;
  readonly adminToken: string | null;
  readonly database: string;
  readonly auth: { readonly users: readonly { readonly name: string; readonly password: string }[]; readonly trust: boolean };
  readonly coordinatorId: string;
  readonly shards: readonly ShardSpec[];
  readonly defaultShard: ShardName;
  readonly pool: { readonly maxPerShard: number; readonly acquireTimeoutMs: number; readonly maxClients: number };
  readonly transactions: { readonly prepareTimeoutMs: number; readonly recoveryIntervalMs: number };
  readonly tables: ReadonlyMap<TableName, TableRule>;
  /** TLS offered to clients (paths absolute); null or absent: plaintext only. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly required: boolean } | null;
  /**
   * The saga log (src/saga): its database and schema; finished sagas, sent
   * outbox rows and barrier fences older than `retentionMs` are deleted in
   * batches of `cleanupBatch`. `classes` chooses the mode of each
   * transaction class's new global transactions (reloadable). Null or
   * absent: no saga log is configured.
   */
  readonly saga?: {
    readonly database: string;
    readonly schema: string;
    readonly retentionMs: number;
    readonly cleanupBatch: number;
    readonly classes?: Readonly<Record<string, SagaModeConfig>>;
    /** Inbox rows (consumer dedupe) older than this are deleted by the same cleanup; absent: kept. */
    readonly inboxRetentionMs?: number;
    /** The outbox relay `serve` runs; absent: none (the application runs its own). */
    readonly relay?: RelayConfig | null;
  } | null;
  /**
   * `shardgate cdc`'s settings from the file (the command-line flags win):
   * bytes of changes held in memory before spilling, the spill folder
   * (absolute), parts waiting on a shard before its reading pauses. Each null
   * when not given; the whole null or absent without a `cdc:` section.
   */
  readonly cdc?: { readonly memoryLimit: number | null; readonly spillDir: string | null; readonly maxWaitingParts: number | null } | null;
  /** Statements taking at least this many milliseconds are logged (duration, shards, gid, SQL truncated); null or absent: off. */
  readonly slowStatementMs?: number | null;
}

/** How a global transaction of a transaction class runs (src/saga/transaction-class.ts). */
export type TransactionMode = 'saga' | 'tcc' | 'outbox';

/**
 * The mode of a transaction class's new global transactions: `mode`, except
 * for the `rollout.percent` of gids (by hash) that get `rollout.mode`.
 */
export interface SagaModeConfig {
  readonly mode: TransactionMode;
  readonly rollout?: { readonly mode: TransactionMode; readonly percent: number };
}

/** Where the relay publishes: the broker, its URL (filled in), and the stream or exchange. */
export type RelaySinkConfig =
  | { readonly kind: 'nats'; readonly url: string; readonly stream: { readonly name: string; readonly subjects: readonly string[] } | null }
  | { readonly kind: 'rabbitmq'; readonly url: string; readonly exchange: string };

/**
 * `saga.relay`: every `intervalMs` the relay publishes up to `batchSize`
 * outbox rows (again at once while batches come back full); with `backCheck`,
 * prepared two-phase messages older than `afterMs` are settled every
 * `intervalMs` of its own, by an HTTP callback or the business database's
 * `message_decision` table.
 */
export interface RelayConfig {
  readonly sink: RelaySinkConfig;
  readonly intervalMs: number;
  readonly batchSize: number;
  readonly backCheck:
    | ({ readonly afterMs: number; readonly intervalMs: number } & (
        | { readonly kind: 'http'; readonly url: string }
        | { readonly kind: 'database'; readonly database: string; readonly schema: string | null }
      ))
    | null;
}
