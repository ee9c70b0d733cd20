import { AsyncLocalStorage } from 'node:async_hooks';
import { context, SpanKind, trace, type Context } from '@opentelemetry/api';
import type { Metrics } from '../observe/metrics.js';
import { recordSpanError, SPAN, shardgateAttributes, startSpan, traceContextFromSql, tracingLive } from '../observe/tracing.js';
import type { GlobalTransaction } from '../tx/index.js';
import type { EngineContext, EngineLog } from './engine-context.js';
import { withEnd } from './pass-through.js';
import { Session, type SessionInfo } from './session.js';
import type { ClientStatement, ExecEvent } from './session-api.js';
import type { ShardCursor } from './shard-cursor.js';

/** How sessions are observed; shared by every session of an engine. */
export interface SessionObservation {
  readonly metrics: Metrics;
  /** Statement spans, continuing a client's sqlcommenter traceparent. */
  readonly tracing: boolean;
  /** Log statements that take at least this long (config `slowStatementMs`); null: off. */
  readonly slowStatementMs: () => number | null;
  readonly log: EngineLog;
}

/** Longest SQL text put in a slow-statement log line; parameters are never logged (they may be secrets). */
export const SLOW_SQL_MAX_CHARS = 500;

/**
 * Shards that ran statements for the client statement in progress, noted by
 * the observed connector while a slow-statement threshold is set.
 */
export const statementShards = new AsyncLocalStorage<Set<string>>();

/** A client session as the admin API lists it. */
export interface SessionView {
  readonly client: string;
  readonly connectedAt: number;
  /** SQL of the statement running now, or null between statements. */
  readonly currentStatement: string | null;
  readonly transaction: GlobalTransaction<ShardCursor> | null;
}

/**
 * A Session that reports what it does: the client-connection gauge, a
 * `shardgate.statement` span around each statement (the parent of routing,
 * shard execution and 2PC spans; continuing the trace of a `traceparent` in
 * an sqlcommenter comment on the client's SQL), a slow-statement log line
 * (duration, shards, gid, SQL truncated, never parameter values), and its
 * current statement for the admin API. Statements run exactly as in Session.
 */
export class ObservedSession extends Session implements SessionView {
  readonly client: string;
  readonly connectedAt = Date.now();
  #current: string | null = null;
  readonly #obs: SessionObservation;
  readonly #registry: Set<SessionView>;
  #open = true;

  constructor(ctx: EngineContext, info: SessionInfo, obs: SessionObservation, registry: Set<SessionView>) {
    super(ctx, info);
    const app = info.parameters?.application_name;
    this.client = `${info.user}@${info.database}${app !== undefined && app !== '' ? ` (${app})` : ''}`;
    this.#obs = obs;
    this.#registry = registry;
    registry.add(this);
    obs.metrics.clientConnected();
  }

  get currentStatement(): string | null {
    return this.#current;
  }

  override execute(stmt: ClientStatement): AsyncIterable<ExecEvent> {
    const slowMs = this.#obs.slowStatementMs();
    const tracing = this.#obs.tracing && tracingLive();
    this.#current = stmt.sql;
    if (!tracing && slowMs === null) return withEnd(super.execute(stmt), () => (this.#current = null));
    return this.#observed(stmt, slowMs, tracing);
  }

  async *#observed(stmt: ClientStatement, slowMs: number | null, tracing: boolean): AsyncGenerator<ExecEvent, void, undefined> {
    const started = performance.now();
    const atStart = this.transaction;
    const shards = slowMs === null ? null : new Set<string>();
    let ctx: Context = context.active();
    const span = tracing ? startSpan(SPAN.statement, shardgateAttributes({}), { kind: SpanKind.SERVER, parent: traceContextFromSql(stmt.sql) ?? ctx }) : null;
    // A span nobody records (no SDK registered, or not sampled) has no children worth nesting: skip the context switches.
    const recording = span?.isRecording() ?? false;
    if (span !== null && recording) ctx = trace.setSpan(ctx, span);
    // Planning happens when execute() is called: inside the statement's span too.
    const open = (): AsyncIterator<ExecEvent> => super.execute(stmt)[Symbol.asyncIterator]();
    const inner = recording ? context.with(ctx, open) : open();
    const next = (): Promise<IteratorResult<ExecEvent, void>> => (shards === null ? inner.next() : statementShards.run(shards, () => inner.next()));
    // Each step runs in the statement's span (and shard set), so routing, shard and 2PC spans nest under it.
    const step = recording ? (): Promise<IteratorResult<ExecEvent, void>> => context.with(ctx, next) : next;
    let failed = false;
    try {
      for (let r = await step(); r.done !== true; r = await step()) yield r.value;
    } catch (err) {
      failed = true;
      if (span !== null) recordSpanError(span, err);
      throw err;
    } finally {
      if (!failed) await inner.return?.();
      // A COMMIT ends the transaction: name it by the one it ended (whose gid 2PC has set by now).
      const tx = this.transaction ?? atStart;
      const id = tx === null ? null : (tx.gid ?? tx.id);
      if (span !== null) {
        if (id !== null) span.setAttributes(shardgateAttributes({ gid: id }));
        span.end();
      }
      this.#current = null;
      if (slowMs !== null) {
        const ms = performance.now() - started;
        if (ms >= slowMs) {
          this.#obs.log('warn', 'slow statement', {
            ...(id !== null ? { gid: id } : {}),
            durationMs: Math.round(ms * 1000) / 1000,
            shards: [...(shards ?? [])].sort(),
            sql: stmt.sql.length > SLOW_SQL_MAX_CHARS ? `${stmt.sql.slice(0, SLOW_SQL_MAX_CHARS)}…` : stmt.sql,
            params: stmt.params?.length ?? 0,
          });
        }
      }
    }
  }

  override async close(): Promise<void> {
    if (this.#open) {
      this.#open = false;
      this.#registry.delete(this);
      this.#obs.metrics.clientDisconnected();
    }
    await super.close();
  }
}
