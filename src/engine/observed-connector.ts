import type { ShardName } from '../config/names.js';
import type { Metrics } from '../observe/metrics.js';
import { recordSpanError, SPAN, shardgateAttributes, startSpan, tracingLive, withSqlComment } from '../observe/tracing.js';
import { SpanKind, type Span } from '@opentelemetry/api';
import type { TxStatus } from '../protocol/fields.js';
import { statementShards } from './observed-session.js';
import type { CopyInSink, CopyOutOptions, PreludeEvent, ShardConnector, ShardCursor, ShardEvent, ShardQuery, StatementDescription } from './shard-cursor.js';

/** What the observed connector reports and adds. */
export interface ConnectorObservation {
  readonly metrics: Metrics;
  /** Open a `shardgate.shard.execute` span per statement (no-op without an OpenTelemetry SDK). */
  readonly tracing: boolean;
  /**
   * Append `/*shardgate_tx='<transaction id>'*\/` to statements run inside a
   * global transaction, sent uncached (the unnamed statement), so that
   * `pg_stat_activity.query` and the shard's logs name the transaction.
   */
  readonly tagTransactions: boolean;
}

/** sqlcommenter key of the transaction tag: the transaction id, which is also the branch's application_name and the stem of its gid. */
export const TX_TAG_KEY = 'shardgate_tx';

/**
 * Wraps a connector so that every client statement run on a shard
 * (`query`, COPY) is timed into `shardgate_shard_statement_duration_seconds`
 * and counted per shard, inside a shard-execution span, and tagged with its
 * global transaction's id when it runs in one. ShardGate's own control
 * statements (`exec`, `rows`: BEGIN, SET, COMMIT, PREPARE, catalog reads) are
 * neither counted nor tagged; transactions and 2PC phases have metrics of
 * their own. Other members (serverVersion, exclusive, resizePools…) pass
 * through unchanged.
 */
export function observeConnector<T extends ShardConnector>(connector: T, obs: ConnectorObservation): T {
  const wrapped: ShardConnector = {
    shards: connector.shards,
    acquire: (shard: ShardName, timeoutMs: number) => connector.acquire(shard, timeoutMs).then((conn) => new ObservedCursor(conn, obs)),
    stats: () => connector.stats(),
    close: () => connector.close(),
  };
  // Optional members of the concrete connector (serverVersion, exclusive, pool, resizePools) stay reachable.
  return new Proxy(connector, {
    get(target, prop, receiver) {
      if (prop === 'acquire') return wrapped.acquire;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** One leased connection, observed. */
class ObservedCursor implements ShardCursor {
  readonly shard: ShardName;
  readonly #inner: ShardCursor;
  readonly #obs: ConnectorObservation;
  /** The global transaction this connection serves until released, if any. */
  #txId: string | null = null;

  constructor(inner: ShardCursor, obs: ConnectorObservation) {
    this.shard = inner.shard;
    this.#inner = inner;
    this.#obs = obs;
  }

  get txStatus(): TxStatus {
    return this.#inner.txStatus;
  }

  get settings(): Map<string, string> {
    return this.#inner.settings;
  }

  /** Called by the transaction manager when this connection joins a global transaction. */
  joinedTransaction(id: string): void {
    this.#txId = id;
  }

  query(q: ShardQuery): AsyncIterable<ShardEvent> {
    statementShards.getStore()?.add(this.shard);
    const id = this.#txId;
    // The tag makes every text unique per transaction: sent uncached so it never evicts the statements that are reused.
    const sent = id !== null && this.#obs.tagTransactions ? { ...q, sql: withSqlComment(q.sql, { [TX_TAG_KEY]: id }), cache: false } : q;
    return this.#timed(this.#inner.query(sent), id);
  }

  /**
   * The statement's events unchanged, timed from the call to the end of the
   * result (or the consumer stopping early). Wraps the iterator rather than
   * adding a generator layer, so each event costs no extra promise.
   */
  #timed(source: AsyncIterable<ShardEvent>, id: string | null): AsyncIterable<ShardEvent> {
    const metrics = this.#obs.metrics;
    const tracing = this.#obs.tracing && tracingLive();
    if (!metrics.enabled && !tracing) return source;
    const shard = this.shard;
    return {
      [Symbol.asyncIterator]: (): AsyncIterator<ShardEvent> => {
        const it = source[Symbol.asyncIterator]();
        const span: Span | null = tracing
          ? startSpan(SPAN.shardExecute, shardgateAttributes({ shard, ...(id !== null ? { gid: id } : {}) }), { kind: SpanKind.CLIENT })
          : null;
        const started = performance.now();
        let open = true;
        const finish = (err?: unknown): void => {
          if (!open) return;
          open = false;
          metrics.statementExecuted(shard, (performance.now() - started) / 1000);
          if (span !== null) {
            if (err !== undefined) recordSpanError(span, err);
            span.end();
          }
        };
        return {
          next: () =>
            it.next().then(
              (r) => {
                if (r.done === true) finish();
                return r;
              },
              (err: unknown) => {
                finish(err ?? new Error('unknown error'));
                throw err;
              },
            ),
          return: async (value?: unknown) => {
            try {
              return (await it.return?.(value)) ?? { done: true, value: undefined };
            } finally {
              finish();
            }
          },
        };
      },
    };
  }

  exec(sql: string): Promise<string> {
    return this.#inner.exec(sql);
  }

  rows(sql: string, params?: readonly (string | null)[]): Promise<(string | null)[][]> {
    return this.#inner.rows(sql, params);
  }

  describe(sql: string, paramTypes?: readonly number[]): Promise<StatementDescription> {
    return this.#inner.describe(sql, paramTypes);
  }

  async copyIn(sql: string): Promise<CopyInSink> {
    const started = performance.now();
    const sink = await this.#inner.copyIn(sql);
    const done = (): void => this.#obs.metrics.statementExecuted(this.shard, (performance.now() - started) / 1000);
    return {
      write: (data) => sink.write(data),
      end: async () => {
        try {
          return await sink.end();
        } finally {
          done();
        }
      },
      fail: async (message) => {
        try {
          await sink.fail(message);
        } finally {
          done();
        }
      },
    };
  }

  async *copyOut(sql: string, opts?: CopyOutOptions): AsyncGenerator<Buffer, string> {
    const started = performance.now();
    try {
      return yield* this.#inner.copyOut(sql, opts);
    } finally {
      this.#obs.metrics.statementExecuted(this.shard, (performance.now() - started) / 1000);
    }
  }

  cancel(): Promise<void> {
    return this.#inner.cancel();
  }

  prelude(statements: readonly string[], listener: (event: PreludeEvent) => void): boolean {
    return this.#inner.prelude?.(statements, listener) ?? false;
  }

  release(broken?: boolean): void {
    this.#txId = null;
    this.#inner.release(broken);
  }
}
