import type { ShardName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { Planner } from '../planner/planner.js';
import { initParser } from '../sql/parser.js';
import { TransactionManager } from '../tx/index.js';
import type { EngineContext, EngineLog, ServerDefaults } from './engine-context.js';
import { Session, type SessionInfo } from './session.js';
import type { ShardConnector, ShardCursor } from './shard-cursor.js';

export type { EngineLog, ServerDefaults } from './engine-context.js';
export type { SessionInfo } from './session.js';

/** What an engine runs on. */
export interface EngineDeps {
  /** Backend pools; the engine owns it from here on and closes it in close(). */
  readonly connector: ShardConnector & { serverVersion?(shard: ShardName): string; exclusive?(shard: ShardName): boolean };
  readonly log?: EngineLog;
  /** Transaction manager options beyond the configuration (tests shorten the deadlock check, for example). */
  readonly transactions?: { readonly deadlockCheckMs?: number; readonly recoveryGraceMs?: number };
}

/**
 * The engine shared by the wire server and the library: the planner, the
 * transaction manager (recovery running from `open` on) and the backend
 * pools. Each client gets a `Session` from `session()`.
 */
export class Engine {
  readonly config: ShardGateConfig;
  readonly planner: Planner;
  readonly transactions: TransactionManager<ShardCursor>;
  readonly connector: ShardConnector;
  readonly #context: EngineContext;
  #defaults: Promise<ServerDefaults> | null = null;
  #closed = false;

  private constructor(config: ShardGateConfig, planner: Planner, transactions: TransactionManager<ShardCursor>, deps: EngineDeps) {
    this.config = config;
    this.planner = planner;
    this.transactions = transactions;
    this.connector = deps.connector;
    const log = deps.log ?? (() => undefined);
    this.#context = {
      config,
      planner,
      transactions,
      connector: deps.connector,
      log,
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
    const planner = new Planner(config);
    const transactions = new TransactionManager<ShardCursor>({
      coordinatorId: config.coordinatorId,
      source: deps.connector,
      prepareTimeoutMs: config.transactions.prepareTimeoutMs,
      acquireTimeoutMs: config.pool.acquireTimeoutMs,
      recoveryIntervalMs: config.transactions.recoveryIntervalMs,
      ...(deps.transactions?.deadlockCheckMs !== undefined ? { deadlockCheckMs: deps.transactions.deadlockCheckMs } : {}),
      ...(deps.transactions?.recoveryGraceMs !== undefined ? { recoveryGraceMs: deps.transactions.recoveryGraceMs } : {}),
      ...(deps.log ? { log: deps.log } : {}),
    });
    await transactions.start();
    return new Engine(config, planner, transactions, deps);
  }

  /** A new client session (no I/O until it runs something). */
  session(info: SessionInfo): Session {
    return new Session(this.#context, info);
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
      const conn = await deps.connector.acquire(shard, this.config.pool.acquireTimeoutMs);
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
