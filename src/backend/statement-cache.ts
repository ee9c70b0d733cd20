/**
 * Named prepared statements already parsed on one backend connection, keyed
 * by SQL text and parameter types, least recently used first. This is how
 * prepared statements survive pooling: whichever connection serves a session
 * parses a statement once and binds it by name afterwards.
 *
 * A statement is named on its second use on the connection; its first use
 * runs as the unnamed statement. Texts that never come back (a simple-protocol
 * client's statements with their literals inlined) then cost the shard no
 * named statement and the cache no eviction of statements that are reused.
 */
export class StatementCache {
  readonly #max: number;
  /** Map iteration order is insertion order: the first key is the least recently used. */
  readonly #names = new Map<string, string>();
  /** Keys used once and not named yet, oldest first, as many as the cache holds. */
  readonly #seen = new Set<string>();
  #counter = 0;

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  static key(sql: string, paramTypes: readonly number[] | undefined): string {
    return paramTypes === undefined || paramTypes.length === 0 ? sql : `${paramTypes.join(',')}\0${sql}`;
  }

  get size(): number {
    return this.#names.size;
  }

  /** The statement name for `key`, marked as most recently used; undefined when not parsed yet. */
  get(key: string): string | undefined {
    const name = this.#names.get(key);
    if (name !== undefined) {
      this.#names.delete(key);
      this.#names.set(key, name);
    }
    return name;
  }

  /**
   * Records a use of a statement that `get` did not know. The first use of a
   * key gets the unnamed statement (name ''); the second a new name, plus the
   * names evicted to stay within the bound, which the caller must Close (F)
   * on the server.
   */
  add(key: string): { readonly name: string; readonly evicted: readonly string[] } {
    if (!this.#seen.delete(key)) {
      this.#seen.add(key);
      if (this.#seen.size > this.#max) this.#seen.delete(this.#seen.values().next().value!);
      return { name: '', evicted: [] };
    }
    const name = `sg_${++this.#counter}`;
    this.#names.set(key, name);
    const evicted: string[] = [];
    for (const [oldKey, oldName] of this.#names) {
      if (this.#names.size <= this.#max) break;
      this.#names.delete(oldKey);
      evicted.push(oldName);
    }
    return { name, evicted };
  }

  /** Forgets one statement (its Parse failed, or the server no longer has it). */
  delete(key: string): void {
    this.#names.delete(key);
  }

  /** Forgets everything (after DISCARD ALL / DEALLOCATE ALL the server has none of them). */
  clear(): void {
    this.#names.clear();
    this.#seen.clear();
  }
}
