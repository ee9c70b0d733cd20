import type { ShardName, TableName } from '../config/names.js';
import type { ShardGateConfig, TableRule } from '../config/types.js';
import type { Engine } from '../engine/engine.js';

/** What a reload needs of the engine. */
export type ReloadTarget = Pick<Engine, 'config' | 'connector' | 'reconfigure'>;

/** Outcome of a reload: applied, or refused with the reason (nothing changed then). */
export interface ReloadResult {
  readonly ok: boolean;
  readonly reason?: string;
  /** Tables whose rule changed (applied or not). */
  readonly changedTables?: readonly string[];
}

/**
 * Puts `next` in force on a running engine without dropping a connection, or
 * refuses it with a reason. Allowed: table rules of tables that hold no rows
 * anywhere (a new rule, a removed rule, a changed key, algorithm, ranges or
 * broadcast-ness would send their existing rows' keys to other shards),
 * `pool.maxPerShard`, `slowStatementMs`. Refused: any change to the shard
 * list (names, order, URLs, folders) — it moves rows or points at other
 * data — and to keys that need a restart (listen, admin, database, auth, tls,
 * coordinatorId, transactions, pool timeouts, saga other than
 * `saga.classes`). A change of `saga.classes` is taken: it only chooses the
 * mode of global transactions started after it. New statements use the new
 * rules; statements already running finish under the old ones.
 */
export async function reloadEngineConfig(engine: ReloadTarget, next: ShardGateConfig): Promise<ReloadResult> {
  const current = engine.config;
  const shardChange = describeShardChange(current, next);
  if (shardChange !== null) return { ok: false, reason: `${shardChange}: that would move existing rows or point at other data; restart with a migration instead` };
  const restartKey = firstRestartOnlyChange(current, next);
  if (restartKey !== null) return { ok: false, reason: `${restartKey} cannot change while running; restart ShardGate to change it` };
  const changed = changedTables(current.tables, next.tables);
  const withRows: string[] = [];
  for (const table of changed) {
    if (await tableHasRows(engine, table)) withRows.push(table);
  }
  if (withRows.length > 0) {
    return {
      ok: false,
      reason: `the rule of table ${withRows.join(', ')} changed and the table holds rows: existing rows would be read from the wrong shards; move the rows first or keep the rule`,
      changedTables: changed,
    };
  }
  engine.reconfigure(next);
  return { ok: true, changedTables: changed };
}

function describeShardChange(a: ShardGateConfig, b: ShardGateConfig): string | null {
  const names = (c: ShardGateConfig): string => c.shards.map((s) => s.name).join(', ');
  if (names(a) !== names(b)) return `the shard list changed (${names(a)} → ${names(b)})`;
  for (let i = 0; i < a.shards.length; i++) {
    const x = a.shards[i]!;
    const y = b.shards[i]!;
    const target = (s: typeof x): string => (s.kind === 'embedded' ? `embedded:${s.dir}` : s.url);
    if (target(x) !== target(y)) return `shard ${x.name} points elsewhere`;
  }
  if (a.defaultShard !== b.defaultShard) return `defaultShard changed (${a.defaultShard} → ${b.defaultShard})`;
  return null;
}

function firstRestartOnlyChange(a: ShardGateConfig, b: ShardGateConfig): string | null {
  const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);
  const keys: [string, unknown, unknown][] = [
    ['listen', a.listen, b.listen],
    ['admin', a.admin, b.admin],
    ['adminToken', a.adminToken, b.adminToken],
    ['database', a.database, b.database],
    ['auth', a.auth, b.auth],
    ['coordinatorId', a.coordinatorId, b.coordinatorId],
    ['transactions', a.transactions, b.transactions],
    ['pool.acquireTimeoutMs', a.pool.acquireTimeoutMs, b.pool.acquireTimeoutMs],
    ['pool.maxClients', a.pool.maxClients, b.pool.maxClients],
    ['tls', a.tls ?? null, b.tls ?? null],
    ['saga', withoutClasses(a.saga), withoutClasses(b.saga)],
  ];
  for (const [key, x, y] of keys) if (!same(x, y)) return key;
  return null;
}

/** The saga settings that need a restart: all but `classes`, which only chooses the mode of new global transactions. */
function withoutClasses(saga: ShardGateConfig['saga']): unknown {
  if (saga == null) return null;
  const { classes: _classes, ...rest } = saga;
  return rest;
}

/** Tables whose placement differs between two rule sets (a table with no rule lives on the default shard). */
export function changedTables(a: ReadonlyMap<TableName, TableRule>, b: ReadonlyMap<TableName, TableRule>): TableName[] {
  const out: TableName[] = [];
  for (const table of new Set([...a.keys(), ...b.keys()])) {
    if (JSON.stringify(a.get(table) ?? null) !== JSON.stringify(b.get(table) ?? null)) out.push(table);
  }
  return out.sort();
}

/** True when the table exists and has at least one row on some shard; an unreachable shard counts as "may have rows". */
async function tableHasRows(engine: ReloadTarget, table: TableName): Promise<boolean> {
  const results = await Promise.all(
    engine.connector.shards.map(async (shard: ShardName) => {
      let conn;
      try {
        conn = await engine.connector.acquire(shard, engine.config.pool.acquireTimeoutMs);
      } catch {
        return true;
      }
      let ok = false;
      try {
        const rel = (await conn.rows('SELECT pg_catalog.to_regclass($1)::text', [quoteTableName(table)]))[0]?.[0] ?? null;
        const found = rel === null ? false : (await conn.rows(`SELECT 1 FROM ${quoteTableName(table)} LIMIT 1`)).length > 0;
        ok = true;
        return found;
      } catch {
        return true;
      } finally {
        conn.release(!ok);
      }
    }),
  );
  return results.some(Boolean);
}

function quoteTableName(table: string): string {
  return table
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}
