import type { ShardName } from '../config/names.js';
import type { CopyInSink, CopyOutOptions, PreludeEvent, ShardCursor, ShardEvent, ShardQuery, StatementDescription } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import type { TxStatus } from '../protocol/fields.js';
import type { BackendConnection } from './backend-connection.js';
import type { ShardPool } from './shard-pool.js';

/**
 * One checkout of a pooled connection, as the engine sees it. After
 * `release()` every method throws XX000, so a session that kept a stale
 * reference cannot touch a connection another session now holds.
 */
export class ShardLease implements ShardCursor {
  readonly shard: ShardName;
  #conn: BackendConnection | null;
  readonly #pool: ShardPool<BackendConnection>;

  constructor(conn: BackendConnection, pool: ShardPool<BackendConnection>) {
    this.shard = conn.shard;
    this.#conn = conn;
    this.#pool = pool;
  }

  get txStatus(): TxStatus {
    return this.#held().txStatus;
  }
  get settings(): Map<string, string> {
    return this.#held().settings;
  }
  /** The connection underneath, for this folder's tests and diagnostics (server version, cache size). */
  get connection(): BackendConnection {
    return this.#held();
  }

  query(q: ShardQuery): AsyncIterable<ShardEvent> {
    return this.#held().query(q);
  }
  exec(sql: string): Promise<string> {
    return this.#call((c) => c.exec(sql));
  }
  rows(sql: string, params?: readonly (string | null)[]): Promise<(string | null)[][]> {
    return this.#call((c) => c.rows(sql, params));
  }
  describe(sql: string, paramTypes?: readonly number[]): Promise<StatementDescription> {
    return this.#call((c) => c.describe(sql, paramTypes));
  }
  copyIn(sql: string): Promise<CopyInSink> {
    return this.#call((c) => c.copyIn(sql));
  }
  copyOut(sql: string, opts?: CopyOutOptions): AsyncGenerator<Buffer, string> {
    return this.#held().copyOut(sql, opts);
  }
  cancel(): Promise<void> {
    return this.#conn === null ? Promise.resolve() : this.#conn.cancel();
  }
  prelude(statements: readonly string[], listener: (event: PreludeEvent) => void): boolean {
    return this.#held().prelude(statements, listener);
  }

  /** Gives the connection back; statements queued by prelude() and not sent are dropped, never run for the next holder. */
  release(broken = false): void {
    const conn = this.#conn;
    if (conn === null) return;
    this.#conn = null;
    conn.discardPrelude();
    this.#pool.release(conn, broken);
  }

  #call<T>(fn: (c: BackendConnection) => Promise<T>): Promise<T> {
    try {
      return fn(this.#held());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #held(): BackendConnection {
    if (this.#conn === null) throw new PgError(sgError('internal', { reason: `shard ${this.shard} connection used after release` }).fields, this.shard);
    return this.#conn;
  }
}
