import type { ShardName, TableName } from '../config/names.js';
import type { GlobalTransaction } from '../tx/index.js';
import type { SettingsSnapshot } from './settings-state.js';
import type { ShardCursor } from './shard-cursor.js';

/** What a rollback (of the transaction or to a savepoint) restores in the session. */
export interface SessionSnapshot extends SettingsSnapshot {
  readonly hint: ShardName | null;
}

interface SavepointMark {
  readonly name: string;
  readonly session: SessionSnapshot;
  readonly localSettings: ReadonlyMap<string, string>;
  readonly localHint: ShardName | null | undefined;
}

/**
 * A session's current global transaction with the session state tied to it:
 * what to restore on rollback, SET LOCAL values (sent to shards that join
 * later, since the transaction manager joins them outside this session's
 * statements), and the connections already set up.
 */
export class TxScope {
  readonly tx: GlobalTransaction<ShardCursor>;
  /** True after BEGIN; false for the implicit transaction of a multi-statement query. */
  explicit: boolean;
  readonly atStart: SessionSnapshot;
  /** SET LOCAL statements by setting name, in the order given. */
  localSettings = new Map<string, string>();
  /** SET LOCAL shardgate.shard: undefined when not set in this transaction. */
  localHint: ShardName | null | undefined = undefined;
  /** Connections that joined and got this transaction's SET LOCAL statements. */
  readonly seen = new Set<ShardCursor>();
  /**
   * Shards whose branch can no longer PREPARE TRANSACTION, with what was done
   * there (a temporary object, LISTEN/NOTIFY, a cursor WITH HOLD). Kept after
   * ROLLBACK TO: PostgreSQL keeps the restriction for the whole transaction.
   */
  readonly notPreparable = new Map<ShardName, string>();
  /** Tables whose DDL ran in this transaction: their cached column order is forgotten again when it ends. */
  readonly ddlTables = new Set<TableName>();
  /** Column orders read inside this transaction (they may reflect its own uncommitted DDL). */
  readonly columns = new Map<TableName, readonly string[]>();
  readonly #savepoints: SavepointMark[] = [];

  constructor(tx: GlobalTransaction<ShardCursor>, explicit: boolean, atStart: SessionSnapshot) {
    this.tx = tx;
    this.explicit = explicit;
    this.atStart = atStart;
  }

  get failed(): boolean {
    return this.tx.state === 'failed';
  }

  /**
   * The error to raise (0A000) when writing `adding` too would make a branch
   * that cannot PREPARE one of two or more written shards, which would fail
   * at COMMIT; null when the write is fine.
   */
  unpreparableWrite(adding: readonly ShardName[], extra?: ReadonlyMap<ShardName, string>): { what: string; shards: ShardName[] } | null {
    const written = new Set<ShardName>(adding);
    for (const [shard, p] of this.tx.participants) if (p.wrote) written.add(shard);
    if (written.size < 2) return null;
    for (const map of [this.notPreparable, extra ?? new Map<ShardName, string>()]) {
      for (const [shard, what] of map) if (written.has(shard)) return { what, shards: [...written].sort() };
    }
    return null;
  }

  /** Savepoints currently defined (cursors remember it: ROLLBACK TO closes those declared after the savepoint). */
  get depth(): number {
    return this.#savepoints.length;
  }

  savepoint(name: string, session: SessionSnapshot): void {
    this.#savepoints.push({ name, session, localSettings: new Map(this.localSettings), localHint: this.localHint });
  }

  /** Forgets the savepoint and every later one (RELEASE). */
  release(name: string): void {
    const at = this.#lastIndex(name);
    if (at >= 0) this.#savepoints.splice(at);
  }

  /** The session state to restore for ROLLBACK TO (the savepoint stays defined), or null if unknown. */
  rollbackTo(name: string): SessionSnapshot | null {
    const at = this.#lastIndex(name);
    if (at < 0) return null;
    const mark = this.#savepoints[at]!;
    this.#savepoints.splice(at + 1);
    this.localSettings = new Map(mark.localSettings);
    this.localHint = mark.localHint;
    return mark.session;
  }

  #lastIndex(name: string): number {
    for (let i = this.#savepoints.length - 1; i >= 0; i--) if (this.#savepoints[i]!.name === name) return i;
    return -1;
  }
}

/** Shards of the transaction that have joined. */
export function joinedShards(tx: GlobalTransaction<ShardCursor>): ShardName[] {
  return [...tx.participants.keys()];
}
