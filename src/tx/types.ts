import type { ShardName } from '../config/names.js';
import type { PgError } from '../errors/pg-error.js';

/**
 * The part of a backend connection the transaction manager uses. The engine's
 * ShardCursor satisfies it structurally; errors from the shard are thrown as
 * PgError with the shard's SQLSTATE.
 */
export interface TxConnection {
  readonly shard: ShardName;
  /** Runs one or more statements without parameters; resolves with the last command tag. */
  exec(sql: string): Promise<string>;
  /** Runs one statement with text parameters and returns its rows as text. */
  rows(sql: string, params?: readonly (string | null)[]): Promise<(string | null)[][]>;
  /** Asks the shard to cancel the statement running on this connection, if any. */
  cancel(): Promise<void>;
  /** Returns the connection to its pool; `broken` closes it instead. */
  release(broken?: boolean): void;
  /**
   * Queues statements to run ahead of the connection's next operation, in the
   * same write, so that an error in one of them skips that operation, which
   * then throws it; `listener` hears synchronously when they were sent and
   * whether they failed. A second call replaces statements not sent yet (an
   * empty list withdraws them); release() drops them. Returns false (or is
   * absent) when the connection cannot: the caller runs them with exec().
   */
  prelude?(statements: readonly string[], listener: (event: PreludeEvent) => void): boolean;
  /**
   * Told which global transaction the connection now serves (its id, also its
   * application_name), so statements can be tagged with it; optional.
   */
  joinedTransaction?(id: string): void;
}

/** What became of statements queued with `TxConnection.prelude`: sent with an operation, or failed (the operation did not run). */
export type PreludeEvent = { readonly kind: 'sent' } | { readonly kind: 'failed'; readonly error: PgError };

/** Hands out connections per shard (the engine's ShardConnector satisfies it). */
export interface TxConnectionSource<C extends TxConnection> {
  readonly shards: readonly ShardName[];
  /** Waits up to `timeoutMs` for a connection; throws a PgError (40P01 shardBusy) after that. */
  acquire(shard: ShardName, timeoutMs: number): Promise<C>;
  /**
   * True when a shard serves one connection at a time (embedded PGlite): lock
   * waits cannot happen there (they become acquire timeouts), so the deadlock
   * detector does not query it. Absent means false for every shard.
   */
  exclusive?(shard: ShardName): boolean;
}

/** The outcome of a global transaction as recorded on its anchor. */
export type Outcome = 'commit' | 'abort';

/** Structured log sink; `fields` always names the gid or shard concerned. */
export type TxLog = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

/** One prepared branch resolved by a recovery pass. */
export interface RecoveryDecision {
  /** The global transaction's gid (the decision row's key). */
  readonly gid: string;
  /** The shard that held the prepared branch. */
  readonly shard: ShardName;
  readonly outcome: Outcome;
  /** Why: what the anchor said, or that another instance had finished it already. */
  readonly reason: string;
}

/** A prepared branch of ours still waiting for its outcome. */
export interface InDoubtTransaction {
  readonly gid: string;
  /** The identifier the branch was prepared under (`pg_prepared_xacts.gid`). */
  readonly preparedGid: string;
  readonly shard: ShardName;
  /** The shard holding the decision; null when the identifier does not parse. */
  readonly anchor: ShardName | null;
  readonly ageMs: number;
  readonly anchorReachable: boolean;
  /** The decision row's outcome when the anchor answered and has one. */
  readonly decision: Outcome | null;
}

/**
 * Receives what the transaction manager does, for metrics (observe/Metrics
 * satisfies it structurally). Every method must return at once and never
 * throw; the default observer does nothing.
 */
export interface TxObserver {
  /** A global transaction ended: `local` (no shard written), `one_shard`, `two_phase`; outcome as the client saw it. */
  transactionEnded(kind: 'local' | 'one_shard' | 'two_phase', outcome: 'commit' | 'rollback' | 'error'): void;
  /** One two-phase commit step took `seconds`. */
  phaseTimed(phase: 'prepare' | 'decision' | 'commit_prepared', seconds: number): void;
  /** A two-phase commit was aborted because a PREPARE exceeded the prepare timeout. */
  prepareTimedOut(): void;
  /** Recovery finished one prepared branch with `outcome`. */
  recoveryDecided(outcome: Outcome): void;
  /** The deadlock detector broke a cycle spanning shards by cancelling one of our transactions. */
  deadlockBroken(): void;
  /** A cut was taken: the gates were held `holdSeconds`; `finished` decided branches were committed by the cut itself. */
  cutTaken?(holdSeconds: number, finished: number, delayed: number): void;
}

/** An observer that records nothing. */
export const NO_TX_OBSERVER: TxObserver = {
  transactionEnded: () => undefined,
  phaseTimed: () => undefined,
  prepareTimedOut: () => undefined,
  recoveryDecided: () => undefined,
  deadlockBroken: () => undefined,
};
