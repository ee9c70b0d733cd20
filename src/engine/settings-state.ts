import type { ShardName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/index.js';
import { breaksConnection } from './combine-errors.js';
import type { ExecEvent } from './session-api.js';
import { REPORTED_SETTINGS, SessionSettings, settingIdent, UNKNOWN_SETTING } from './session-settings.js';
import type { ShardCursor } from './shard-cursor.js';

/**
 * Where a SET takes effect: outside a transaction, checked on a connection
 * of the default shard taken for it; inside one, on every connection that
 * joined the transaction.
 */
export type SettingsTarget =
  | { readonly kind: 'session'; readonly acquire: () => Promise<ShardCursor> }
  | { readonly kind: 'transaction'; readonly connections: () => Promise<ShardCursor[]> };

/** Session settings and the reported values the client has been told, saved and restored together. */
export interface SettingsSnapshot {
  readonly settings: ReadonlyMap<string, string>;
  readonly reported: ReadonlyMap<string, string>;
}

/**
 * A session's PostgreSQL settings plus what it has reported to the client
 * (ParameterStatus). Every change reads the new value of a reported setting
 * back from a shard, so the client sees the canonical form PostgreSQL would
 * report ('German' → 'German, DMY').
 */
export class SettingsState {
  readonly values: SessionSettings;
  readonly #reported = new Map<string, string>();

  constructor(startup: ReadonlyMap<string, string>) {
    this.values = new SessionSettings(startup);
  }

  /** Records the values reported at startup. */
  reportedAtStart(params: ReadonlyMap<string, string>): void {
    for (const [name, value] of params) this.#reported.set(name, value);
  }

  snapshot(): SettingsSnapshot {
    return { settings: this.values.snapshot(), reported: new Map(this.#reported) };
  }

  /** Restores a snapshot; yields ParameterStatus for reported values that change back. */
  *restore(snap: SettingsSnapshot): Generator<ExecEvent, void, undefined> {
    this.values.restore(snap.settings);
    for (const [name, value] of snap.reported) {
      if (this.#reported.get(name) === value) continue;
      this.#reported.set(name, value);
      yield { kind: 'parameterStatus', name, value };
    }
  }

  /**
   * SET (or RESET, value null) of a session setting. Inside a transaction the
   * connections' record of it becomes unknown, because the transaction may
   * still roll it back; the next session using them sets it again.
   */
  async *set(name: string, value: string | null, target: SettingsTarget): AsyncGenerator<ExecEvent, void, undefined> {
    if (target.kind === 'session') {
      const before = this.values.snapshot();
      this.values.set(name, value);
      yield* this.#onConnection(before, [name], target.acquire);
      return;
    }
    const stmt = value === null ? `RESET ${settingIdent(name)}` : `SET ${settingIdent(name)} TO ${value}`;
    const conns = await target.connections();
    for (const conn of conns) {
      conn.settings.set(name, UNKNOWN_SETTING);
      await conn.exec(stmt);
    }
    this.values.set(name, value);
    yield* this.reportChanges(conns[0]!, [name]);
  }

  /** RESET ALL. */
  async *resetAll(target: SettingsTarget): AsyncGenerator<ExecEvent, void, undefined> {
    const names = this.values.names();
    if (target.kind === 'session') {
      const before = this.values.snapshot();
      this.values.clear();
      yield* this.#onConnection(before, names, target.acquire);
      return;
    }
    const conns = await target.connections();
    for (const conn of conns) {
      for (const key of conn.settings.keys()) conn.settings.set(key, UNKNOWN_SETTING);
      await conn.exec('RESET ALL');
    }
    this.values.clear();
    yield* this.reportChanges(conns[0]!, names);
  }

  /** Applies the settings on a fresh connection (restoring `before` if the shard refuses them) and reports changes. */
  async *#onConnection(before: ReadonlyMap<string, string>, names: readonly string[], acquire: () => Promise<ShardCursor>): AsyncGenerator<ExecEvent, void, undefined> {
    const conn = await acquire();
    let broken = false;
    try {
      try {
        await this.values.apply(conn);
      } catch (err) {
        this.values.restore(before);
        throw err;
      }
      yield* this.reportChanges(conn, names);
    } catch (err) {
      broken = breaksConnection(err);
      throw err;
    } finally {
      conn.release(broken);
    }
  }

  /** ParameterStatus events for reported settings among `names` whose value changed, as `conn` shows them. */
  async *reportChanges(conn: ShardCursor, names: readonly string[]): AsyncGenerator<ExecEvent, void, undefined> {
    const wanted = names.filter((n) => REPORTED_SETTINGS.has(n));
    if (wanted.length === 0) return;
    for (const [name, value] of await this.current(conn, wanted)) {
      if (this.#reported.get(name) === value) continue;
      this.#reported.set(name, value);
      yield { kind: 'parameterStatus', name, value };
    }
  }

  /**
   * Reported name → value of lower-case setting names, read from a
   * connection; application_name comes from the session itself (transaction
   * branches carry their gid as application_name).
   */
  async current(conn: ShardCursor, names: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const fromShard = names.filter((n) => n !== 'application_name');
    if (names.includes('application_name')) out.set('application_name', this.#applicationName());
    if (fromShard.length === 0) return out;
    const sql = `SELECT ${fromShard.map((n) => `pg_catalog.current_setting('${n.replace(/'/g, "''")}')`).join(', ')}`;
    const row = (await conn.rows(sql))[0] ?? [];
    fromShard.forEach((n, i) => out.set(REPORTED_SETTINGS.get(n)!, row[i] ?? ''));
    return out;
  }

  #applicationName(): string {
    const stmt = this.values.snapshot().get('application_name');
    if (stmt === undefined) return '';
    const literal = /(?:TO |, )'((?:[^']|'')*)'(?:, false\))?$/s.exec(stmt);
    if (literal) return literal[1]!.replace(/''/g, "'");
    return /TO (\S+)$/.exec(stmt)?.[1] ?? '';
  }
}

/** The value of one of ShardGate's own settings (SHOW shardgate.*); 42704 for an unknown name. */
export function shardgateSetting(config: ShardGateConfig, hint: ShardName | null, name: string): string {
  switch (name) {
    case 'shardgate.shard':
      return hint ?? 'DEFAULT';
    case 'shardgate.shards':
      return config.shards.map((s) => s.name).join(',');
    case 'shardgate.default_shard':
      return config.defaultShard;
    case 'shardgate.coordinator_id':
      return config.coordinatorId;
    default:
      throw sgError('unknownSetting', { name });
  }
}

/** The shard named by `SET shardgate.shard` (null for DEFAULT / RESET); refuses other shardgate.* names and unknown shards. */
export function parseHint(config: ShardGateConfig, name: string, value: string | null): ShardName | null {
  if (name !== 'shardgate.shard') throw sgError('unknownSetting', { name });
  const text = value === null ? null : value.replace(/^'(.*)'$/s, '$1').replace(/''/g, "'");
  if (text === null || text.toUpperCase() === 'DEFAULT' || text === '') return null;
  const shards = config.shards.map((s) => s.name);
  const shard = shards.find((s) => s === text);
  if (shard === undefined) throw sgError('unknownShard', { shard: text, shards: shards.join(', ') });
  return shard;
}
