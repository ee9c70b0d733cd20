import type { PgError } from '../errors/index.js';
import { breaksConnection } from './combine-errors.js';
import type { ExecEvent } from './session-api.js';
import type { ShardCursor, ShardEvent, ShardQuery } from './shard-cursor.js';

const DONE: IteratorResult<never, void> = { done: true, value: undefined };

/**
 * The events of `inner`, unchanged; `end` runs once when the iteration
 * finishes, fails or is returned early. One promise per event, where an
 * async generator layer (`for await … yield`) costs several.
 */
export function withEnd<T>(inner: AsyncIterable<T>, end: () => void): AsyncIterableIterator<T> {
  const it = inner[Symbol.asyncIterator]();
  let open = true;
  const finish = (): void => {
    if (!open) return;
    open = false;
    end();
  };
  const self: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => self,
    next: () =>
      it.next().then(
        (r) => {
          if (r.done === true) finish();
          return r;
        },
        (err: unknown) => {
          finish();
          throw err;
        },
      ),
    return: async (value?: unknown) => {
      try {
        await it.return?.(value);
      } finally {
        finish();
      }
      return DONE;
    },
  };
  return self;
}

/** What a direct run needs from its session. */
export interface DirectRunContext {
  /** The statement's connection: taken for it alone, or its transaction's participant on the shard. */
  readonly acquire: () => Promise<ShardCursor>;
  /** Connections with a statement in flight, for cancel(). */
  readonly running: Set<ShardCursor>;
  /** The statement is over (`error` undefined when it succeeded): a connection taken for it alone goes back. */
  readonly done: (conn: ShardCursor, error: unknown) => void;
  /** The error the caller sees for `err` (inside a transaction, the transaction fails with it). */
  readonly fail: (err: unknown) => PgError;
}

/** `done` of a statement outside a transaction: the connection goes back, closed when an error broke it or it is left inside a transaction. */
export function releaseAfter(conn: ShardCursor, error: unknown): void {
  conn.release((error !== undefined && breaksConnection(error)) || conn.txStatus !== 'I');
}

/**
 * One statement on one shard whose events pass through unchanged: the most
 * common statement (a point read, a write to one shard, in autocommit or in
 * a transaction), run as the session's general path would run it — on the
 * connection `acquire` gives, handed to `done` when the result ends, errors
 * turned into what `fail` says. It differs only in cost: no generator layers
 * between the shard's events and the client, one promise per event.
 */
export class DirectRun implements AsyncIterableIterator<ExecEvent> {
  readonly #ctx: DirectRunContext;
  readonly #query: ShardQuery;
  #conn: ShardCursor | null = null;
  #inner: AsyncIterator<ShardEvent> | null = null;
  #finished = false;
  readonly #onResult = (r: IteratorResult<ShardEvent>): IteratorResult<ExecEvent, void> => {
    if (r.done === true) this.#end(undefined);
    return r;
  };
  readonly #onError = (err: unknown): never => {
    this.#end(err ?? new Error('unknown error'));
    throw this.#ctx.fail(err);
  };

  constructor(ctx: DirectRunContext, query: ShardQuery) {
    this.#ctx = ctx;
    this.#query = query;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ExecEvent> {
    return this;
  }

  next(): Promise<IteratorResult<ExecEvent, void>> {
    const inner = this.#inner;
    if (inner !== null) return inner.next().then(this.#onResult, this.#onError);
    if (this.#finished) return Promise.resolve(DONE);
    return this.#start();
  }

  async return(): Promise<IteratorResult<ExecEvent, void>> {
    const inner = this.#inner;
    if (inner === null) {
      this.#finished = true;
      return DONE;
    }
    let error: unknown;
    try {
      await inner.return?.();
    } catch (err) {
      error = err ?? new Error('unknown error');
    }
    this.#end(error);
    return DONE;
  }

  async #start(): Promise<IteratorResult<ExecEvent, void>> {
    this.#finished = true;
    let conn: ShardCursor;
    try {
      conn = await this.#ctx.acquire();
    } catch (err) {
      throw this.#ctx.fail(err);
    }
    this.#conn = conn;
    this.#finished = false;
    this.#ctx.running.add(conn);
    try {
      this.#inner = conn.query(this.#query)[Symbol.asyncIterator]();
    } catch (err) {
      this.#end(err ?? new Error('unknown error'));
      throw this.#ctx.fail(err);
    }
    return this.#inner.next().then(this.#onResult, this.#onError);
  }

  #end(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#inner = null;
    const conn = this.#conn;
    this.#conn = null;
    if (conn === null) return;
    this.#ctx.running.delete(conn);
    this.#ctx.done(conn, error);
  }
}
