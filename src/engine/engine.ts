import type { ShardName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { Planner } from '../planner/planner.js';
import { initParser } from '../sql/parser.js';
import { Metrics } from '../observe/metrics.js';
import { TransactionManager } from '../tx/index.js';
import type { EngineContext, EngineLog, ServerDefaults } from './engine-context.js';
import { observeConnector } from './observed-connector.js';
import { ObservedPlanner } from './observed-planner.js';
import { ObservedSession, type SessionObservation, type SessionView } from './observed-session.js';
import type { SessionInfo } from './session.js';
import type { ShardConnector, ShardCursor } from './shard-cursor.js';
import { TableColumns } from './table-columns.js';

export type { EngineLog, ServerDefaults } from './engine-context.js';
export type { SessionInfo } from './session.js';

/** What an engine runs on. */
export interface EngineDeps {
  /** Backend pools; the engine owns it from here on and closes it in close(). */
  readonly connector: ShardConnector & { serverVersion?(shard: ShardName): string; exclusive?(shard: ShardName): boolean; resizePools?(maxPerShard: number): void };
  readonly log?: EngineLog;
  /** Where statements, routing, transactions, 2PC phases, pools and in-doubt counts are reported; default Metrics.disabled(). */
  readonly metrics?: Metrics;
  /** OpenTelemetry spans per statement, route, shard execution and 2PC phase (no-op unless an SDK is registered); default false. */
  readonly tracing?: boolean;
  /** Tag statements inside global transactions with an sqlcommenter comment naming the transaction; default false. */
  readonly tagTransactions?: boolean;
  /** Transaction manager options beyond the configuration (tests shorten the deadlock check, for example). */
  readonly transactions?: { readonly deadlockCheckMs?: number; readonly recoveryGraceMs?: number };
}

/**
 * The engine shared by the wire server and the library: the planner, the
 * transaction manager (recovery running from `open` on) and the backend
 * pools. Each client gets a `Session` from `session()`.
 */
export class Engine {
  #config: ShardGateConfig;
  #planner: Planner;
  readonly transactions: TransactionManager<ShardCursor>;
  readonly connector: ShardConnector;
  readonly metrics: Metrics;
  /** Open client sessions (wire and library), for the admin API. */
  readonly sessions = new Set<SessionView>();
  readonly #context: EngineContext;
  readonly #observation: SessionObservation;
  readonly #tracing: boolean;
  #defaults: Promise<ServerDefaults> | null = null;
  #closed = false;

  private constructor(config: ShardGateConfig, planner: Planner, transactions: TransactionManager<ShardCursor>, deps: EngineDeps, connector: ShardConnector) {
    this.#config = config;
    this.#planner = planner;
    this.transactions = transactions;
    this.connector = connector;
    this.metrics = deps.metrics ?? Metrics.disabled();
    this.#tracing = deps.tracing ?? false;
    const log = deps.log ?? (() => undefined);
    const current = { config: (): ShardGateConfig => this.#config, planner: (): Planner => this.#planner };
    this.#observation = { metrics: this.metrics, tracing: this.#tracing, slowStatementMs: () => current.config().slowStatementMs ?? null, log };
    this.#context = {
      // Getters: a reload swaps the configuration and planner; each statement reads the current ones.
      get config() {
        return current.config();
      },
      get planner() {
        return current.planner();
      },
      transactions,
      connector,
      log,
      tableColumns: new TableColumns(),
      serverDefaults: () => this.#serverDefaults(deps),
    };
  }

  /**
   * Loads the SQL parser, builds the planner and starts the transaction
   * manager, whose first recovery pass resolves transactions left prepared
   * by an earlier crash before this resolves.
   */
  static async open(config: ShardGateConfig, deps: EngineDeps): Promise<Engine> {
    await initParser();
    const metrics = deps.metrics ?? Metrics.disabled();
    const tracing = deps.tracing ?? false;
    const observed = metrics.enabled || tracing || deps.tagTransactions === true;
    const connector = observed ? observeConnector(deps.connector, { metrics, tracing, tagTransactions: deps.tagTransactions ?? false }) : deps.connector;
    const planner = Engine.#newPlanner(config, metrics, tracing);
    const transactions = new TransactionManager<ShardCursor>({
      coordinatorId: config.coordinatorId,
      source: connector,
      observer: metrics,
      prepareTimeoutMs: config.transactions.prepareTimeoutMs,
      acquireTimeoutMs: config.pool.acquireTimeoutMs,
      recoveryIntervalMs: config.transactions.recoveryIntervalMs,
      ...(deps.transactions?.deadlockCheckMs !== undefined ? { deadlockCheckMs: deps.transactions.deadlockCheckMs } : {}),
      ...(deps.transactions?.recoveryGraceMs !== undefined ? { recoveryGraceMs: deps.transactions.recoveryGraceMs } : {}),
      ...(deps.log ? { log: deps.log } : {}),
    });
    await transactions.start();
    const engine = new Engine(config, planner, transactions, deps, connector);
    engine.#reportGauges();
    return engine;
  }

  /** The configuration in force (replaced by `reconfigure`). */
  get config(): ShardGateConfig {
    return this.#config;
  }

  /** The planner in force; sessions read it for every statement, so a reload applies to new statements only. */
  get planner(): Planner {
    return this.#planner;
  }

  static #newPlanner(config: ShardGateConfig, metrics: Metrics, tracing: boolean): Planner {
    return metrics.enabled || tracing ? new ObservedPlanner(config, metrics, tracing) : new Planner(config);
  }

  /**
   * Puts a new configuration in force without dropping a connection: a new
   * planner for statements that start from now on (statements running keep
   * theirs), and new pool sizes. The caller has checked that the change
   * moves no rows (shards, URLs and rules of tables holding rows unchanged).
   */
  reconfigure(next: ShardGateConfig): void {
    const planner = Engine.#newPlanner(next, this.metrics, this.#tracing);
    // Both swaps happen in one synchronous step, so no statement sees one without the other.
    this.#config = next;
    this.#planner = planner;
    const resize = (this.connector as EngineDeps['connector']).resizePools;
    if (typeof resize === 'function') resize.call(this.connector, next.pool.maxPerShard);
  }

  /** Pool and in-doubt gauges, read at each scrape. */
  #reportGauges(): void {
    if (!this.metrics.enabled) return;
    for (const shard of this.connector.shards) this.metrics.shardKnown(shard);
    this.metrics.setPoolSource(() => [...this.connector.stats()].map(([shard, p]) => ({ shard, inUse: p.inUse, idle: p.idle, waiting: p.waiting })));
    this.metrics.setInDoubtSource(async () => {
      const graceMs = this.transactions.recoveryGraceMs;
      const ages = new Map<string, number>();
      for (const t of await this.transactions.inDoubt()) if (t.ageMs >= graceMs) ages.set(t.gid, Math.max(ages.get(t.gid) ?? 0, t.ageMs));
      return { count: ages.size, oldestAgeSeconds: ages.size === 0 ? 0 : Math.max(...ages.values()) / 1000 };
    });
  }

  /** A new client session (no I/O until it runs something). */
  session(info: SessionInfo): ObservedSession {
    return new ObservedSession(this.#context, info, this.#observation, this.sessions);
  }

  /** Stops the transaction manager and closes every backend connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.transactions.stop();
    } finally {
      await this.connector.close();
    }
  }

  /** server_version and TimeZone of the default shard, asked once. */
  #serverDefaults(deps: EngineDeps): Promise<ServerDefaults> {
    this.#defaults ??= (async (): Promise<ServerDefaults> => {
      const shard = this.config.defaultShard;
      const conn = await this.connector.acquire(shard, this.config.pool.acquireTimeoutMs);
      try {
        const row = (await conn.rows("SELECT pg_catalog.current_setting('server_version'), pg_catalog.current_setting('TimeZone')"))[0] ?? [];
        const known = deps.connector.serverVersion?.(shard) ?? '';
        return { serverVersion: known !== '' ? known : (row[0] ?? ''), timeZone: row[1] ?? 'UTC' };
      } finally {
        conn.release();
      }
    })();
    // A failure (shard down) is not cached: the next session asks again.
    this.#defaults.catch(() => {
      this.#defaults = null;
    });
    return this.#defaults;
  }
}
