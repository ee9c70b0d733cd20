import type { StatementDescription } from '../engine/shard-cursor.js';

/** Descriptions kept per connection; the oldest goes first beyond this. */
const MAX_ENTRIES = 256;

/**
 * Command tags after which a cached description may be wrong: schema changes,
 * settings (search_path), rollbacks (which can undo schema changes), and SQL
 * PREPARE, DEALLOCATE, DECLARE and CLOSE (EXECUTE and FETCH describe what they name).
 */
const INVALIDATING_TAGS = new Set(['CREATE', 'ALTER', 'DROP', 'SET', 'RESET', 'DISCARD', 'ROLLBACK', 'IMPORT', 'LOAD', 'PREPARE', 'DEALLOCATE', 'DECLARE', 'CLOSE']);

/**
 * Statement descriptions (parameter types and result columns) of one client
 * connection, by SQL text and declared parameter types. Clients that re-Parse
 * the same unnamed statement for every execution (pgbench -M extended, most
 * drivers) then pay for a describe once, not per execution. Any command that
 * can change what a statement means clears the cache and bumps `generation`,
 * which also marks descriptions held by prepared statements as stale.
 */
export class DescriptionCache {
  readonly #entries = new Map<string, StatementDescription>();
  #generation = 0;

  get generation(): number {
    return this.#generation;
  }

  get(sql: string, paramTypes: readonly number[]): StatementDescription | undefined {
    return this.#entries.get(key(sql, paramTypes));
  }

  set(sql: string, paramTypes: readonly number[], description: StatementDescription): void {
    if (this.#entries.size >= MAX_ENTRIES) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key(sql, paramTypes), description);
  }

  /** Called with every command tag the client receives. */
  noteCommand(tag: string): void {
    const space = tag.indexOf(' ');
    const verb = space < 0 ? tag : tag.slice(0, space);
    if (INVALIDATING_TAGS.has(verb)) {
      this.#entries.clear();
      this.#generation++;
    }
  }
}

function key(sql: string, paramTypes: readonly number[]): string {
  return paramTypes.length === 0 ? sql : `${paramTypes.join(',')}\0${sql}`;
}
