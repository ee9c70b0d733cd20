import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import type { TxStatus } from '../protocol/fields.js';

/** What the pool needs from a backend connection, whatever its kind. */
export interface PoolMember {
  /** False once the connection is closed or its peer went away. */
  readonly alive: boolean;
  /** True while a statement or COPY is in progress on it. */
  readonly busy: boolean;
  readonly txStatus: TxStatus;
  exec(sql: string): Promise<string>;
  close(): Promise<void>;
  /** Registers a listener called once when the connection dies by itself. */
  onDeath(listener: () => void): void;
}

/** Pool figures for one shard. `inUse` counts every connection not idle (checked out, being opened or reset). */
export interface PoolStats {
  readonly inUse: number;
  readonly idle: number;
  readonly waiting: number;
}

export interface ShardPoolOptions<C extends PoolMember> {
  readonly shard: ShardName;
  /** Most connections open at once (checked out, idle, being opened or reset). */
  readonly max: number;
  /** Opens a new connection; rejects with a PgError (shardUnavailable) when the shard cannot be reached. */
  readonly create: () => Promise<C>;
}

interface Waiter<C> {
  readonly resolve: (conn: C) => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Connections to one shard. Guarantees:
 * - never more than `max` connections open at once;
 * - waiters are served first come, first served; one that waits longer than
 *   its timeout gets `shardBusy` (40P01), so a transaction waiting on a shard
 *   held by another cannot wait forever (this is what breaks cross-shard waits
 *   on embedded shards, whose pool holds one connection);
 * - a connection handed out is idle (`txStatus` 'I'): one released inside a
 *   transaction is rolled back first, and destroyed if that fails;
 * - a connection released as broken, or found dead, is closed and its slot
 *   freed for a new one.
 */
export class ShardPool<C extends PoolMember> {
  readonly shard: ShardName;
  #max: number;
  readonly #create: () => Promise<C>;
  readonly #idle: C[] = [];
  readonly #checkedOut = new Set<C>();
  readonly #waiters: Waiter<C>[] = [];
  /** Every open connection plus those being opened: the figure `max` bounds. */
  #total = 0;
  #closed = false;
  readonly #closing = new Set<Promise<void>>();

  constructor(opts: ShardPoolOptions<C>) {
    this.shard = opts.shard;
    this.#max = Math.max(1, opts.max);
    this.#create = opts.create;
  }

  get max(): number {
    return this.#max;
  }

  /**
   * Changes the bound without dropping a connection in use: a larger one
   * serves waiters at once; a smaller one closes idle connections above it
   * now and lets the others go as they are released.
   */
  resize(max: number): void {
    this.#max = Math.max(1, max);
    while (this.#total > this.#max && this.#idle.length > 0) this.#destroy(this.#idle.pop()!);
    while (this.#waiters.length > 0 && this.#total < this.#max) this.#dispatch();
  }

  /** Hands out an idle connection, opening one if below `max`, else waits up to `timeoutMs`. */
  async acquire(timeoutMs: number): Promise<C> {
    if (this.#closed) throw this.#unavailable('the pool is closed');
    while (this.#idle.length > 0) {
      const conn = this.#idle.pop()!;
      if (conn.alive) {
        this.#checkedOut.add(conn);
        return conn;
      }
      this.#forget(conn);
    }
    if (this.#total < this.#max) {
      this.#total++;
      let conn: C;
      try {
        conn = await this.#open();
      } catch (err) {
        this.#total--;
        this.#dispatch();
        throw err;
      }
      if (this.#closed) {
        this.#destroy(conn);
        throw this.#unavailable('the pool is closed');
      }
      this.#checkedOut.add(conn);
      return conn;
    }
    return new Promise<C>((resolve, reject) => {
      const waiter: Waiter<C> = { resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new PgError(sgError('shardBusy', { shard: this.shard, timeoutMs }).fields, this.shard));
      }, Math.max(0, timeoutMs));
      this.#waiters.push(waiter);
    });
  }

  /**
   * Takes a connection back. `broken` (or a dead or still busy connection)
   * closes it; one left inside a transaction is rolled back before reuse.
   * Releasing a connection twice is ignored.
   */
  release(conn: C, broken = false): void {
    if (!this.#checkedOut.delete(conn)) return;
    if (broken || !conn.alive || conn.busy || this.#closed) {
      this.#destroy(conn);
      this.#dispatch();
      return;
    }
    if (conn.txStatus !== 'I') {
      // Rolling back is safe: the session gave the connection up, so whatever
      // it left open must not leak into the next session.
      conn.exec('ROLLBACK').then(
        () => (conn.alive && conn.txStatus === 'I' && !this.#closed ? this.#giveBack(conn) : this.#destroyThenDispatch(conn)),
        () => this.#destroyThenDispatch(conn),
      );
      return;
    }
    this.#giveBack(conn);
  }

  stats(): PoolStats {
    return { inUse: this.#total - this.#idle.length, idle: this.#idle.length, waiting: this.#waiters.length };
  }

  /** Closes every connection (checked out ones too) and fails every waiter; later acquires fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.#unavailable('the pool is closing'));
    }
    for (const conn of this.#idle.splice(0)) this.#destroy(conn);
    for (const conn of [...this.#checkedOut]) {
      this.#checkedOut.delete(conn);
      this.#destroy(conn);
    }
    await Promise.all([...this.#closing]);
  }

  async #open(): Promise<C> {
    const conn = await this.#create();
    conn.onDeath(() => {
      const i = this.#idle.indexOf(conn);
      if (i < 0) return; // checked out: its holder sees the failure and releases it
      this.#idle.splice(i, 1);
      this.#forget(conn);
      this.#dispatch();
    });
    return conn;
  }

  #giveBack(conn: C): void {
    if (this.#total > this.#max) {
      // Above a bound lowered by resize(): this connection goes.
      this.#destroyThenDispatch(conn);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter === undefined) {
      this.#idle.push(conn);
      return;
    }
    clearTimeout(waiter.timer);
    this.#checkedOut.add(conn);
    waiter.resolve(conn);
  }

  /** After a slot was freed: open a connection for the longest waiter, if any. */
  #dispatch(): void {
    if (this.#closed || this.#waiters.length === 0) return;
    if (this.#idle.length > 0) {
      this.#giveBack(this.#idle.pop()!);
      return;
    }
    if (this.#total >= this.#max) return;
    this.#total++;
    this.#open().then(
      (conn) => {
        if (this.#closed) this.#destroy(conn);
        else this.#giveBack(conn);
      },
      (err: unknown) => {
        this.#total--;
        const waiter = this.#waiters.shift();
        if (waiter === undefined) return;
        clearTimeout(waiter.timer);
        waiter.reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  #destroyThenDispatch(conn: C): void {
    this.#destroy(conn);
    this.#dispatch();
  }

  /** Closes a connection and frees its slot. */
  #destroy(conn: C): void {
    this.#total--;
    const closing = conn.close().catch(() => undefined);
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  /** Frees the slot of a connection that is already dead. */
  #forget(conn: C): void {
    this.#total--;
    void conn.close().catch(() => undefined);
  }

  #unavailable(reason: string): PgError {
    return new PgError(sgError('shardUnavailable', { shard: this.shard, reason }).fields, this.shard);
  }
}
