import type { ChangeLog, SpillStore } from './spill.js';

/**
 * Row keys a part holds in a map before they move to a log of their own
 * (held and spilled like changes, under the store's memory limit).
 */
export const ROW_KEYS_IN_MEMORY = 4096;

/** When two parts' keys are both in logs, this many keys of one are loaded at a time and the other log is read once per load. */
const COMPARE_CHUNK = 65_536;

/** The (sub)transactions that wrote an item: one xid, or several (0 when the server sent none). */
type Xids = number | Set<number>;

function addXid(m: Map<string, Xids>, item: string, xid: number): void {
  const had = m.get(item);
  if (had === undefined) m.set(item, xid);
  else if (typeof had === 'number') {
    if (had !== xid) m.set(item, new Set([had, xid]));
  } else had.add(xid);
}

function dropXid(m: Map<string, Xids>, xid: number): void {
  for (const [item, xids] of m) {
    if (xids === xid) m.delete(item);
    else if (typeof xids !== 'number') {
      xids.delete(xid);
      if (xids.size === 0) m.delete(item);
    }
  }
}

/** What one change writes, for the ordering rule (see README.md "Ordering guarantee"). */
export type RowWrite =
  /** One row, by its replica-identity key (the key columns' values, or the whole old row with REPLICA IDENTITY FULL), as JSON text. */
  | { readonly kind: 'row'; readonly table: string; readonly key: string }
  /** A new row of a table without a replica identity: no other transaction can have written it; only the table's lock counts. */
  | { readonly kind: 'table'; readonly table: string }
  /** Every row of the table: TRUNCATE (its ACCESS EXCLUSIVE lock), or a change whose row the stream does not identify. */
  | { readonly kind: 'whole'; readonly table: string };

/**
 * The rows a transaction part wrote, exactly, for the ordering rule: two
 * parts conflict when they wrote a common row, or one wrote a whole table
 * the other wrote in. Those are the conflicts the server itself enforces
 * with locks (a row's lock, a unique index's wait, TRUNCATE's table lock
 * against every writer's), which is what the no-deadlock argument of
 * README.md needs. The first `inMemory` row keys are held in a map; past
 * that they all go to a log of the store (spill.ts), which counts them
 * against the memory limit and moves them to a `keys-<n>.spill` file like
 * any log: a large part's keys cost memory only while the limit allows.
 * Tables stay in memory (a part writes few). Keys of a subtransaction that
 * rolled back are dropped with it (its locks were released).
 */
export class RowKeys {
  readonly #store: SpillStore;
  readonly #inMemory: number;
  /** Every table written (any change takes the table's ROW EXCLUSIVE lock). */
  readonly #tables = new Map<string, Xids>();
  /** Tables written whole. */
  readonly #whole = new Map<string, Xids>();
  /** `table\u0000key` while at most `inMemory`; empty once `#log` holds them. */
  #rows = new Map<string, Xids>();
  #log: ChangeLog | null = null;

  constructor(store: SpillStore, inMemory: number = ROW_KEYS_IN_MEMORY) {
    this.#store = store;
    this.#inMemory = inMemory;
  }

  /** True once the keys are in a log (comparing reads it, from memory or a file). */
  get inLog(): boolean {
    return this.#log !== null;
  }

  /** Records what a change of (sub)transaction `xid` (0 when unknown) wrote. */
  add(xid: number, w: RowWrite): void {
    addXid(this.#tables, w.table, xid);
    if (w.kind === 'whole') addXid(this.#whole, w.table, xid);
    if (w.kind !== 'row') return;
    const item = `${w.table}\u0000${w.key}`;
    if (this.#log !== null) {
      this.#log.append(xid, item);
      return;
    }
    addXid(this.#rows, item, xid);
    if (this.#rows.size <= this.#inMemory) return;
    const log = this.#store.log('keys');
    for (const [k, xids] of this.#rows) for (const x of typeof xids === 'number' ? [xids] : xids) log.append(x, k);
    this.#log = log;
    this.#rows = new Map();
  }

  /** Subtransaction `xid` rolled back (Stream Abort): what it wrote is no longer written, and its locks are gone. */
  abortSubtransaction(xid: number): void {
    dropXid(this.#tables, xid);
    dropXid(this.#whole, xid);
    dropXid(this.#rows, xid);
    this.#log?.abortSubtransaction(xid);
  }

  /** Frees the keys (and their file); not used again. */
  release(): void {
    this.#log?.release();
    this.#log = null;
    this.#rows = new Map();
    this.#tables.clear();
    this.#whole.clear();
  }

  /** True when `this` and `other` wrote a common row, or one wrote a whole table the other wrote in. */
  conflicts(other: RowKeys): boolean {
    const [fewer, more] = this.#tables.size <= other.#tables.size ? [this, other] : [other, this];
    const common = new Set<string>();
    for (const t of fewer.#tables.keys()) {
      if (!more.#tables.has(t)) continue;
      if (this.#whole.has(t) || other.#whole.has(t)) return true;
      common.add(t);
    }
    return common.size > 0 && this.#sharesRow(other, common);
  }

  #sharesRow(other: RowKeys, common: ReadonlySet<string>): boolean {
    if (this.#log === null && other.#log === null) {
      const [fewer, more] = this.#rows.size <= other.#rows.size ? [this.#rows, other.#rows] : [other.#rows, this.#rows];
      for (const k of fewer.keys()) if (more.has(k)) return true;
      return false;
    }
    if (this.#log === null || other.#log === null) {
      const [inMap, log] = this.#log === null ? [this.#rows, other.#log!] : [other.#rows, this.#log];
      for (const k of log.json()) if (inMap.has(k)) return true;
      return false;
    }
    // Both in logs: a chunk of one side's keys (of the common tables) at a time, against all of the other's.
    const probe = other.#log;
    let chunk = new Set<string>();
    const hit = (): boolean => {
      for (const k of probe.json()) if (chunk.has(k)) return true;
      return false;
    };
    for (const k of this.#log.json()) {
      if (!common.has(k.slice(0, k.indexOf('\u0000')))) continue;
      chunk.add(k);
      if (chunk.size < COMPARE_CHUNK) continue;
      if (hit()) return true;
      chunk = new Set();
    }
    return chunk.size > 0 && hit();
  }
}
