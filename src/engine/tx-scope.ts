import type { ShardName } from '../config/names.js';
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
  readonly #savepoints: SavepointMark[] = [];

  constructor(tx: GlobalTransaction<ShardCursor>, explicit: boolean, atStart: SessionSnapshot) {
    this.tx = tx;
    this.explicit = explicit;
    this.atStart = atStart;
  }

  get failed(): boolean {
    return this.tx.state === 'failed';
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
