/** A transaction open right now in this instance. */
export interface InFlightTx {
  /** Global transaction id; null until the transaction has one (it is assigned when a branch opens). */
  readonly gid: string | null;
  /** Who runs it: `user@address:port` for a wire client, `library` in-process. */
  readonly client: string;
  /** ISO 8601 time of BEGIN (or of the first statement of an implicit transaction). */
  readonly startedAt: string;
  readonly ageSeconds: number;
  readonly state: 'active' | 'idle_in_transaction' | 'aborted' | 'preparing' | 'committing' | 'rolling_back';
  /** Shards with an open branch. */
  readonly participants: readonly string[];
  /** SQL of the statement running now, or null between statements. */
  readonly currentStatement: string | null;
}

/** A prepared transaction of ours older than the recovery grace period. */
export interface InDoubtTx {
  readonly gid: string;
  /** The shard holding the decision row (named in the gid). */
  readonly anchor: string;
  /** Shards where `pg_prepared_xacts` still lists the gid. */
  readonly preparedOn: readonly string[];
  /** ISO 8601 time of the oldest PREPARE TRANSACTION. */
  readonly preparedAt: string;
  readonly ageSeconds: number;
  /** The outcome recorded on the anchor; null when none is recorded or the anchor cannot be read. */
  readonly decision: 'commit' | 'abort' | null;
  readonly anchorReachable: boolean;
}

/** One shard as a health check saw it. */
export interface ShardHealth {
  readonly shard: string;
  readonly kind: 'postgres' | 'embedded';
  readonly healthy: boolean;
  /** Round trip of the check; null when it failed. */
  readonly latencyMs: number | null;
  /** Why it is unhealthy (SQLSTATE and message), null when healthy. */
  readonly error: string | null;
  readonly pool: { readonly inUse: number; readonly idle: number; readonly waiting: number } | null;
  /** server_version, when the check reached the shard. */
  readonly serverVersion?: string | null;
  /** max_prepared_transactions (0 means two-phase commit cannot work there), when the check reached the shard. */
  readonly maxPreparedTransactions?: number | null;
}

/** Result of resolving one in-doubt transaction. */
export interface ResolveResult {
  readonly gid: string;
  readonly outcome: 'commit' | 'abort';
}

/**
 * What the admin server reads and asks for; implemented over the engine and
 * the transaction manager. The admin server adds no policy of its own:
 * `resolve` finishes a transaction by the decision recorded on its anchor
 * only (never by guess) and throws a PgError when it cannot, and `reload`
 * refuses changes that would move existing rows.
 */
export interface AdminSource {
  inFlight(): readonly InFlightTx[];
  inDoubt(): Promise<readonly InDoubtTx[]>;
  shardHealth(): Promise<readonly ShardHealth[]>;
  /** Throws PgError 42704 when `gid` is not in doubt; another PgError when the decision cannot be read or applied. */
  resolve(gid: string): Promise<ResolveResult>;
  /** The running configuration; masked again by the server before it is sent. */
  config(): unknown;
  reload(): Promise<{ readonly ok: boolean; readonly reason?: string }>;
}

/** The saga states an operator lists: still moving (running, compensating), or waiting for them (exhausted). */
export type SagaListStatus = 'running' | 'compensating' | 'exhausted';
export const SAGA_LIST_STATUSES: readonly SagaListStatus[] = ['running', 'compensating', 'exhausted'];

/** One step of a saga as the admin API shows it. */
export interface SagaStepSummary {
  readonly name: string;
  readonly stage: number;
  readonly status: string;
  /** Failed attempts of the current phase. */
  readonly attempts: number;
  /** Every attempt of either phase. */
  readonly calls: number;
  /** ISO 8601 time of the next attempt; null when none is scheduled. */
  readonly nextAttemptAt: string | null;
  readonly lastError: string | null;
}

/** One saga as the admin API shows it. */
export interface SagaSummary {
  readonly gid: string;
  /** The definition's name, or the transaction class's. */
  readonly definition: string;
  /** For a transaction class: the mode chosen at submit (saga, tcc, outbox); null for a plain definition. */
  readonly mode: string | null;
  readonly status: string;
  /** ISO 8601 time of submission. */
  readonly startedAt: string;
  readonly ageSeconds: number;
  /** For an exhausted saga: `RETRY_EXHAUSTED: step <name> (<phase>): <last error>`. */
  readonly lastError: string | null;
  readonly steps: readonly SagaStepSummary[];
}

/**
 * What the admin server reads and changes about sagas; implemented in
 * src/saga over the saga log. `retry` puts an exhausted saga's exhausted
 * steps back to due; `abandon` ends a saga that is not finished as
 * `abandoned`, visibly. Both throw a PgError: 42704 for an unknown gid,
 * 55000 when the saga is in the wrong state, 55P03 while a coordinator holds it.
 */
export interface SagaAdminSource {
  /** Sagas in the given states, oldest first, at most `limit`. */
  list(statuses: readonly SagaListStatus[], limit: number): Promise<readonly SagaSummary[]>;
  retry(gid: string): Promise<SagaSummary>;
  abandon(gid: string): Promise<SagaSummary>;
}
