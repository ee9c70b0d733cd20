import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** How a transaction committed: DESIGN.md "Transactions". */
export type TransactionKind = 'local' | 'one_shard' | 'two_phase';
/** How a transaction ended, as the client saw it. */
export type TransactionOutcome = 'commit' | 'rollback' | 'error';
/** The timed steps of two-phase commit (DESIGN.md "Two-phase commit with the decision on a participant"). */
export type CommitPhase = 'prepare' | 'decision' | 'commit_prepared';
/** Which kind of routing decision a statement's Plan carried. */
export type RouteKind = 'single' | 'multi' | 'all' | 'broadcast-read' | 'broadcast-write' | 'default' | 'hint';
/** What recovery did with one in-doubt prepared transaction. */
export type RecoveryOutcome = 'commit' | 'abort';

export const TRANSACTION_KINDS: readonly TransactionKind[] = ['local', 'one_shard', 'two_phase'];
export const TRANSACTION_OUTCOMES: readonly TransactionOutcome[] = ['commit', 'rollback', 'error'];
export const COMMIT_PHASES: readonly CommitPhase[] = ['prepare', 'decision', 'commit_prepared'];
export const ROUTE_KINDS: readonly RouteKind[] = ['single', 'multi', 'all', 'broadcast-read', 'broadcast-write', 'default', 'hint'];
export const RECOVERY_OUTCOMES: readonly RecoveryOutcome[] = ['commit', 'abort'];

/** Which half of a saga step ran (src/saga: the action forward, the compensation backward). */
export type SagaPhase = 'action' | 'compensation';
/** What one step attempt answered (src/saga/retry-policy.ts StepResult kinds). */
export type SagaAttemptOutcome = 'success' | 'ongoing' | 'failure' | 'error';
/** How a saga ended: by its coordinator (committed, compensated, exhausted) or by an operator (abandoned). */
export type SagaEnd = 'committed' | 'compensated' | 'exhausted' | 'abandoned';
/** Why a step attempt is run again: an error answer (counted against the cap) or an ONGOING one (not counted). */
export type SagaRetryCause = 'error' | 'ongoing';

export const SAGA_PHASES: readonly SagaPhase[] = ['action', 'compensation'];
export const SAGA_ATTEMPT_OUTCOMES: readonly SagaAttemptOutcome[] = ['success', 'ongoing', 'failure', 'error'];
export const SAGA_ENDS: readonly SagaEnd[] = ['committed', 'compensated', 'exhausted', 'abandoned'];
export const SAGA_RETRY_CAUSES: readonly SagaRetryCause[] = ['error', 'ongoing'];
/** What a back-check answered about a prepared two-phase message (src/saga/two-phase-message.ts). */
export type BackCheckOutcome = 'commit' | 'rollback' | 'unknown';
export const BACK_CHECK_OUTCOMES: readonly BackCheckOutcome[] = ['commit', 'rollback', 'unknown'];

/** Relay lag runs from milliseconds (a relay keeping up) to minutes (a broker that was down). */
const RELAY_LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The transactional outbox at the moment of a scrape. */
export interface OutboxStats {
  /** Committed messages not yet acknowledged by the broker (prepared and cancelled ones excluded). */
  readonly unsent: number;
  /** Age in seconds of the oldest of them; 0 when there is none. */
  readonly oldestUnsentAgeSeconds: number;
}

/** One shard's pool at the moment of a scrape. */
export interface PoolStats {
  readonly shard: string;
  /** Backend connections lent to a session or transaction. */
  readonly inUse: number;
  /** Open backend connections nobody holds. */
  readonly idle: number;
  /** Requests queued for a connection. */
  readonly waiting: number;
}

/** In-doubt prepared transactions at the moment of a scrape. */
export interface InDoubtStats {
  readonly count: number;
  /** Age of the oldest one in seconds; 0 when there is none. */
  readonly oldestAgeSeconds: number;
}

/** Read at every scrape; may be async (the value is awaited before the text is produced). */
export type StatsSource<T> = () => T | Promise<T>;

/** Options of `new Metrics()`. */
export interface MetricsOptions {
  /** false: every method is a no-op and `text()` is empty (measures the cost of metrics). Default true. */
  readonly enabled?: boolean;
  /** Shards whose per-shard series start at zero, so dashboards show them before the first statement. */
  readonly shards?: readonly string[];
}

/** Latency buckets in seconds, of every latency histogram ShardGate exports: 0.1 ms (a PGlite point query is ~0.3 ms) to 10 s. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Every Prometheus metric ShardGate exports, in a registry of its own (never
 * prom-client's global one, so two instances in one process, or an application
 * with its own metrics, never collide). Callers report events through verbs
 * (`statementExecuted`, `transactionEnded`, …) and never touch metric objects,
 * so the names below can change in one place. Label values come from closed
 * sets (the types above) or configured shard names, so cardinality is bounded
 * by configuration. Gauges about pools and in-doubt transactions are read from
 * callbacks at scrape time, never pushed.
 */
export class Metrics {
  /** Content-Type of `text()`: Prometheus text exposition format 0.0.4. */
  static readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';

  readonly enabled: boolean;
  readonly #registry = new Registry();
  #poolSource: StatsSource<readonly PoolStats[]> | null = null;
  #inDoubtSource: StatsSource<InDoubtStats> | null = null;
  // Each source is read once per scrape, before the registry renders, so a
  // source that queries shards is not called once per gauge.
  #scrapedPools: readonly PoolStats[] = [];
  #scrapedInDoubt: InDoubtStats = { count: 0, oldestAgeSeconds: 0 };
  #outboxSource: StatsSource<OutboxStats> | null = null;
  #scrapedOutbox: OutboxStats = { unsent: 0, oldestUnsentAgeSeconds: 0 };

  readonly #clientConnections: Gauge;
  readonly #statements: Counter<'shard'>;
  readonly #statementSeconds: Histogram<'shard'>;
  readonly #transactions: Counter<'kind' | 'outcome'>;
  readonly #phaseSeconds: Histogram<'phase'>;
  readonly #xaTimeouts: Counter;
  readonly #recoveryDecisions: Counter<'outcome'>;
  readonly #deadlocksBroken: Counter;
  readonly #cuts: Counter;
  readonly #gateHoldSeconds: Histogram;
  readonly #cutFinished: Counter;
  readonly #cutDelayed: Counter;
  readonly #routingDecisions: Counter<'route'>;
  readonly #sagaEnds: Counter<'status'>;
  readonly #sagaStarts: Counter<'class' | 'mode'>;
  readonly #sagaRetries: Counter<'phase' | 'cause'>;
  readonly #sagaExhausted: Counter<'phase'>;
  readonly #sagaStepSeconds: Histogram<'phase' | 'outcome'>;
  readonly #relayPublished: Counter;
  readonly #relayFailures: Counter;
  readonly #relayLagSeconds: Histogram;
  readonly #relayBackChecks: Counter<'answer'>;

  constructor(opts: MetricsOptions = {}) {
    this.enabled = opts.enabled ?? true;
    const registers = [this.#registry];
    this.#clientConnections = new Gauge({
      name: 'shardgate_client_connections',
      help: 'Client sessions currently connected (wire clients and library sessions).',
      registers,
    });
    this.#statements = new Counter({
      name: 'shardgate_shard_statements_total',
      help: 'Statements executed on a shard, by shard.',
      labelNames: ['shard'],
      registers,
    });
    this.#statementSeconds = new Histogram({
      name: 'shardgate_shard_statement_duration_seconds',
      help: 'Time from sending a statement to a shard to its completion, by shard.',
      labelNames: ['shard'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const pools = (): readonly PoolStats[] => this.#scrapedPools;
    const poolGauge = (name: string, help: string, pick: (p: PoolStats) => number): Gauge<'shard'> =>
      new Gauge({
        name,
        help,
        labelNames: ['shard'],
        registers,
        collect() {
          // Reset first so a shard removed by a reload stops being reported.
          this.reset();
          for (const p of pools()) this.set({ shard: p.shard }, pick(p));
        },
      });
    poolGauge('shardgate_pool_connections_in_use', 'Backend connections currently lent out, by shard.', (p) => p.inUse);
    poolGauge('shardgate_pool_connections_idle', 'Open backend connections not lent out, by shard.', (p) => p.idle);
    poolGauge('shardgate_pool_waiting_requests', 'Requests waiting for a backend connection, by shard.', (p) => p.waiting);
    this.#transactions = new Counter({
      name: 'shardgate_transactions_total',
      help: 'Ended transactions by kind (local, one_shard, two_phase) and outcome (commit, rollback, error).',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.#phaseSeconds = new Histogram({
      name: 'shardgate_2pc_phase_duration_seconds',
      help: 'Duration of each two-phase commit phase: prepare, decision (anchor commit), commit_prepared.',
      labelNames: ['phase'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#xaTimeouts = new Counter({
      name: 'shardgate_xa_timeout_total',
      help: 'Two-phase commits aborted because PREPARE TRANSACTION did not finish within transactions.prepareTimeoutMs.',
      registers,
    });
    const transactions = this.#transactions;
    new Gauge({
      name: 'shardgate_cross_shard_txn_ratio',
      help: 'Share of ended transactions that wrote to two or more shards (two_phase / all), since start; 0 before the first.',
      registers,
      async collect() {
        let all = 0;
        let crossed = 0;
        for (const v of (await transactions.get()).values) {
          all += v.value;
          if (v.labels.kind === 'two_phase') crossed += v.value;
        }
        this.set(all === 0 ? 0 : crossed / all);
      },
    });
    const inDoubt = (): InDoubtStats => this.#scrapedInDoubt;
    new Gauge({
      name: 'shardgate_in_doubt_transactions',
      help: 'Prepared transactions of ours older than the recovery grace period, not yet resolved.',
      registers,
      collect() {
        this.set(inDoubt().count);
      },
    });
    new Gauge({
      name: 'shardgate_in_doubt_oldest_age_seconds',
      help: 'Age of the oldest in-doubt prepared transaction; 0 when there is none.',
      registers,
      collect() {
        this.set(inDoubt().oldestAgeSeconds);
      },
    });
    this.#recoveryDecisions = new Counter({
      name: 'shardgate_recovery_decisions_total',
      help: 'In-doubt prepared transactions finished by recovery, by outcome (commit, abort).',
      labelNames: ['outcome'],
      registers,
    });
    this.#deadlocksBroken = new Counter({
      name: 'shardgate_distributed_deadlocks_broken_total',
      help: 'Deadlock cycles spanning shards broken by cancelling their youngest transaction.',
      registers,
    });
    this.#cuts = new Counter({
      name: 'shardgate_cuts_total',
      help: 'Cuts taken: transactions whose branches began at one cut across every shard.',
      registers,
    });
    this.#gateHoldSeconds = new Histogram({
      name: 'shardgate_cut_gate_hold_seconds',
      help: 'How long a cut held the commit gate on the shards: the longest a commit could be delayed by it.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#cutFinished = new Counter({
      name: 'shardgate_cut_finished_commits_total',
      help: 'Decided two-phase branches a cut committed itself before taking its snapshots (their coordinator was mid-commit or gone).',
      registers,
    });
    this.#cutDelayed = new Counter({
      name: 'shardgate_cut_delayed_commits_total',
      help: 'Commit decisions that waited for a cut: waiting for the commit gate when the cut released it.',
      registers,
    });
    this.#routingDecisions = new Counter({
      name: 'shardgate_routing_decisions_total',
      help: 'Statements routed, by route kind (single, multi, all, broadcast-read, broadcast-write, default, hint).',
      labelNames: ['route'],
      registers,
    });

    this.#sagaEnds = new Counter({
      name: 'shardgate_saga_finished_total',
      help: 'Sagas that reached a terminal state in this process, by status (committed, compensated, exhausted by a coordinator; abandoned by an operator).',
      labelNames: ['status'],
      registers,
    });
    this.#sagaStarts = new Counter({
      name: 'shardgate_saga_started_total',
      help: 'Global transactions of a transaction class submitted by this process, by class and the mode chosen for them (mode setting and rollout).',
      labelNames: ['class', 'mode'],
      registers,
    });
    const sagaEnds = this.#sagaEnds;
    new Gauge({
      name: 'shardgate_saga_compensation_rate',
      help: 'compensated / (committed + compensated + exhausted + abandoned) over the sagas this process finished since it started; 0 before the first.',
      registers,
      async collect() {
        let all = 0;
        let compensated = 0;
        for (const v of (await sagaEnds.get()).values) {
          all += v.value;
          if (v.labels.status === 'compensated') compensated += v.value;
        }
        this.set(all === 0 ? 0 : compensated / all);
      },
    });
    this.#sagaRetries = new Counter({
      name: 'shardgate_saga_step_retries_total',
      help: 'Step attempts scheduled to run again, by phase and cause (error: counted against maxAttempts; ongoing: the same interval, not counted).',
      labelNames: ['phase', 'cause'],
      registers,
    });
    this.#sagaExhausted = new Counter({
      name: 'shardgate_saga_steps_exhausted_total',
      help: 'Steps that reached maxAttempts or the saga deadline (RETRY_EXHAUSTED, a dead letter for an operator), by phase.',
      labelNames: ['phase'],
      registers,
    });
    this.#sagaStepSeconds = new Histogram({
      name: 'shardgate_saga_step_duration_seconds',
      help: 'Duration of one step attempt (the call to the participant or the local function), by phase and answer.',
      labelNames: ['phase', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const outbox = (): OutboxStats => this.#scrapedOutbox;
    new Gauge({
      name: 'shardgate_saga_outbox_unsent_messages',
      help: 'Committed outbox messages not yet acknowledged by the broker.',
      registers,
      collect() {
        this.set(outbox().unsent);
      },
    });
    new Gauge({
      name: 'shardgate_saga_outbox_lag_seconds',
      help: 'Age of the oldest committed outbox message not yet acknowledged by the broker (now - created_at, database clock); 0 when none waits.',
      registers,
      collect() {
        this.set(outbox().oldestUnsentAgeSeconds);
      },
    });

    this.#relayPublished = new Counter({
      name: 'shardgate_saga_relay_published_total',
      help: 'Outbox messages the relay of this process published and the broker acknowledged (marked sent).',
      registers,
    });
    this.#relayFailures = new Counter({
      name: 'shardgate_saga_relay_failures_total',
      help: 'Relay batches whose publish failed (broker down, refused, not acknowledged); their messages stay unsent and are published again.',
      registers,
    });
    this.#relayLagSeconds = new Histogram({
      name: 'shardgate_saga_relay_lag_seconds',
      help: 'Per published message: from the outbox row written (created_at) to the broker acknowledgement being recorded, on the database clock.',
      buckets: RELAY_LAG_BUCKETS,
      registers,
    });
    this.#relayBackChecks = new Counter({
      name: 'shardgate_saga_relay_back_checks_total',
      help: 'Prepared two-phase messages asked about by the back-check, by answer (commit: published; rollback: cancelled; unknown: asked again).',
      labelNames: ['answer'],
      registers,
    });

    // Series with closed label sets start at zero, so rate() and ratios work from the first scrape.
    for (const kind of TRANSACTION_KINDS) for (const outcome of TRANSACTION_OUTCOMES) this.#transactions.inc({ kind, outcome }, 0);
    for (const phase of COMMIT_PHASES) this.#phaseSeconds.zero({ phase });
    for (const outcome of RECOVERY_OUTCOMES) this.#recoveryDecisions.inc({ outcome }, 0);
    for (const route of ROUTE_KINDS) this.#routingDecisions.inc({ route }, 0);
    for (const status of SAGA_ENDS) this.#sagaEnds.inc({ status }, 0);
    for (const phase of SAGA_PHASES) {
      this.#sagaExhausted.inc({ phase }, 0);
      for (const cause of SAGA_RETRY_CAUSES) this.#sagaRetries.inc({ phase, cause }, 0);
      for (const outcome of SAGA_ATTEMPT_OUTCOMES) this.#sagaStepSeconds.zero({ phase, outcome });
    }
    for (const answer of BACK_CHECK_OUTCOMES) this.#relayBackChecks.inc({ answer }, 0);
    for (const shard of opts.shards ?? []) this.shardKnown(shard);
  }

  /** A metrics object that records nothing: every method returns at once and `text()` is empty. */
  static disabled(): Metrics {
    return new Metrics({ enabled: false });
  }

  /** Starts a shard's per-shard series at zero (at start-up and after a reload adds a shard). */
  shardKnown(shard: string): void {
    if (!this.enabled) return;
    this.#statements.inc({ shard }, 0);
    this.#statementSeconds.zero({ shard });
  }

  /** A client session opened (wire connection after startup, or a library session). */
  clientConnected(): void {
    if (this.enabled) this.#clientConnections.inc();
  }

  /** A client session closed, however it ended. */
  clientDisconnected(): void {
    if (this.enabled) this.#clientConnections.dec();
  }

  /** One statement finished on `shard` after `seconds` (successful or not). */
  statementExecuted(shard: string, seconds: number): void {
    if (!this.enabled) return;
    this.#statements.inc({ shard });
    this.#statementSeconds.observe({ shard }, seconds);
  }

  /** A transaction ended. `kind` is how it committed or would have committed. */
  transactionEnded(kind: TransactionKind, outcome: TransactionOutcome): void {
    if (this.enabled) this.#transactions.inc({ kind, outcome });
  }

  /** One phase of a two-phase commit took `seconds`. */
  phaseTimed(phase: CommitPhase, seconds: number): void {
    if (this.enabled) this.#phaseSeconds.observe({ phase }, seconds);
  }

  /** A two-phase commit was aborted because a prepare exceeded its timeout. */
  prepareTimedOut(): void {
    if (this.enabled) this.#xaTimeouts.inc();
  }

  /** Recovery finished one in-doubt transaction with `outcome`. */
  recoveryDecided(outcome: RecoveryOutcome): void {
    if (this.enabled) this.#recoveryDecisions.inc({ outcome });
  }

  /** A distributed deadlock was broken (its youngest transaction got 40P01). */
  deadlockBroken(): void {
    if (this.enabled) this.#deadlocksBroken.inc();
  }

  /** A cut was taken; the gates were held `holdSeconds`, and `delayed` commit decisions waited for them. */
  cutTaken(holdSeconds: number, finished: number, delayed: number): void {
    if (!this.enabled) return;
    this.#cuts.inc();
    this.#gateHoldSeconds.observe(holdSeconds);
    if (finished > 0) this.#cutFinished.inc(finished);
    if (delayed > 0) this.#cutDelayed.inc(delayed);
  }

  /** A statement was routed with a Plan of this kind. */
  routed(route: RouteKind): void {
    if (this.enabled) this.#routingDecisions.inc({ route });
  }

  /** One saga step attempt of `phase` answered `outcome` after `seconds`. */
  sagaStepTimed(phase: SagaPhase, outcome: SagaAttemptOutcome, seconds: number): void {
    if (this.enabled) this.#sagaStepSeconds.observe({ phase, outcome }, seconds);
  }

  /** A saga step attempt was scheduled to run again. */
  sagaStepRetried(phase: SagaPhase, cause: SagaRetryCause): void {
    if (this.enabled) this.#sagaRetries.inc({ phase, cause });
  }

  /** A saga step was exhausted (RETRY_EXHAUSTED). */
  sagaStepExhausted(phase: SagaPhase): void {
    if (this.enabled) this.#sagaExhausted.inc({ phase });
  }

  /** A global transaction of transaction class `cls` was submitted in `mode`. */
  sagaStarted(cls: string, mode: string): void {
    if (this.enabled) this.#sagaStarts.inc({ class: cls, mode });
  }

  /** A saga reached a terminal state. */
  sagaFinished(status: SagaEnd): void {
    if (this.enabled) this.#sagaEnds.inc({ status });
  }

  /** The relay published `lagsSeconds.length` messages, each that many seconds after it was written. */
  relayPublished(lagsSeconds: readonly number[]): void {
    if (!this.enabled) return;
    this.#relayPublished.inc(lagsSeconds.length);
    for (const lag of lagsSeconds) this.#relayLagSeconds.observe(lag);
  }

  /** A relay batch failed to publish. */
  relayFailed(): void {
    if (this.enabled) this.#relayFailures.inc();
  }

  /** A back-check pass answered these counts. */
  relayBackChecked(counts: Readonly<Record<BackCheckOutcome, number>>): void {
    if (!this.enabled) return;
    for (const answer of BACK_CHECK_OUTCOMES) if (counts[answer] > 0) this.#relayBackChecks.inc({ answer }, counts[answer]);
  }

  /** Where the outbox gauges are read from at each scrape (replaces the previous source). */
  setOutboxSource(source: StatsSource<OutboxStats> | null): void {
    this.#outboxSource = source;
  }

  /** Where pool gauges are read from at each scrape (replaces the previous source). */
  setPoolSource(source: StatsSource<readonly PoolStats[]> | null): void {
    this.#poolSource = source;
  }

  /** Where in-doubt gauges are read from at each scrape (replaces the previous source). */
  setInDoubtSource(source: StatsSource<InDoubtStats> | null): void {
    this.#inDoubtSource = source;
  }

  /** The Prometheus text exposition of every metric; '' when disabled. */
  async text(): Promise<string> {
    if (!this.enabled) return '';
    [this.#scrapedPools, this.#scrapedInDoubt, this.#scrapedOutbox] = await Promise.all([this.#readPools(), this.#readInDoubt(), this.#readOutbox()]);
    return this.#registry.metrics();
  }

  /** Names of the registered metric families (without _bucket/_sum/_count suffixes). */
  metricNames(): string[] {
    return this.#registry.getMetricsAsArray().map((m) => m.name);
  }

  async #readPools(): Promise<readonly PoolStats[]> {
    // A failing source must not break the whole scrape: the pool gauges are simply absent.
    try {
      return (await this.#poolSource?.()) ?? [];
    } catch {
      return [];
    }
  }

  async #readOutbox(): Promise<OutboxStats> {
    try {
      return (await this.#outboxSource?.()) ?? { unsent: 0, oldestUnsentAgeSeconds: 0 };
    } catch {
      return { unsent: Number.NaN, oldestUnsentAgeSeconds: Number.NaN };
    }
  }

  async #readInDoubt(): Promise<InDoubtStats> {
    try {
      return (await this.#inDoubtSource?.()) ?? { count: 0, oldestAgeSeconds: 0 };
    } catch {
      // NaN shows as a gap in graphs instead of a reassuring but false zero.
      return { count: Number.NaN, oldestAgeSeconds: Number.NaN };
    }
  }
}
