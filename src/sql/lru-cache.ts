/** One cache entry, linked in recency order (head: most recent). */
interface Entry<K, V> {
  readonly key: K;
  value: V;
  newer: Entry<K, V> | null;
  older: Entry<K, V> | null;
}

/**
 * A bounded map that forgets the least recently used entry when full. Reads
 * and writes are O(1); a read marks the entry as recently used.
 *
 * Recency lives in a linked list, not in the Map's insertion order: a read
 * never deletes and re-inserts its key. V8's Map leaves a deleted entry in
 * its bucket chain until the next rehash, so re-inserting a hot key on every
 * read made that key's lookups walk thousands of dead entries (≈15 µs per read
 * with 5 000 entries cached), and taking the oldest key through `keys().next()`
 * walked the dead entries at the front of the table.
 */
export class LruCache<K, V> {
  readonly #max: number;
  readonly #map = new Map<K, Entry<K, V>>();
  #newest: Entry<K, V> | null = null;
  #oldest: Entry<K, V> | null = null;

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (e !== this.#newest) {
      this.#unlink(e);
      this.#pushNewest(e);
    }
    return e.value;
  }

  set(key: K, value: V): void {
    const existing = this.#map.get(key);
    if (existing !== undefined) {
      existing.value = value;
      if (existing !== this.#newest) {
        this.#unlink(existing);
        this.#pushNewest(existing);
      }
      return;
    }
    if (this.#map.size >= this.#max && this.#oldest !== null) {
      const old = this.#oldest;
      this.#unlink(old);
      this.#map.delete(old.key);
    }
    const e: Entry<K, V> = { key, value, newer: null, older: null };
    this.#map.set(key, e);
    this.#pushNewest(e);
  }

  clear(): void {
    this.#map.clear();
    this.#newest = null;
    this.#oldest = null;
  }

  #unlink(e: Entry<K, V>): void {
    if (e.newer === null) this.#newest = e.older;
    else e.newer.older = e.older;
    if (e.older === null) this.#oldest = e.newer;
    else e.older.newer = e.newer;
    e.newer = null;
    e.older = null;
  }

  #pushNewest(e: Entry<K, V>): void {
    e.older = this.#newest;
    e.newer = null;
    if (this.#newest !== null) this.#newest.newer = e;
    this.#newest = e;
    this.#oldest ??= e;
  }
}
