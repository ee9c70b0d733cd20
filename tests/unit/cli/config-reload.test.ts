import { describe, expect, it } from 'vitest';
import { changedTables, reloadEngineConfig, type ReloadTarget } from '../../../src/cli/config-reload.js';
import { parseConfig } from '../../../src/config/parse-config.js';
import type { ShardGateConfig } from '../../../src/config/types.js';
import type { ShardCursor } from '../../../src/engine/shard-cursor.js';

const base = {
  shards: { s0: 'postgres://postgres@127.0.0.1:1/app', s1: 'postgres://postgres@127.0.0.1:2/app' },
  tables: { items: { key: 'id' }, empty: { key: 'id', algorithm: 'mod' } },
};

/** An engine whose shards hold rows in `tablesWithRows` only; records reconfigure calls. */
function fakeEngine(config: ShardGateConfig, tablesWithRows: readonly string[]): ReloadTarget & { applied: ShardGateConfig[] } {
  const applied: ShardGateConfig[] = [];
  const cursor = (shard: string): ShardCursor =>
    ({
      shard,
      rows: async (sql: string, params?: readonly (string | null)[]) => {
        if (sql.includes('to_regclass')) return [[params?.[0] ?? null]];
        const table = /FROM "([^"]+)"/.exec(sql)?.[1] ?? '';
        return tablesWithRows.includes(table) ? [['1']] : [];
      },
      release: () => undefined,
    }) as unknown as ShardCursor;
  const engine = {
    applied,
    config,
    connector: { shards: config.shards.map((s) => s.name), acquire: async (shard: string) => cursor(shard), stats: () => new Map(), close: async () => undefined },
    reconfigure(next: ShardGateConfig) {
      applied.push(next);
      engine.config = next;
    },
  };
  return engine as unknown as ReloadTarget & { applied: ShardGateConfig[] };
}

describe('configuration reload decisions', () => {
  it('applies new rules for tables without rows, and pool sizes', async () => {
    const engine = fakeEngine(parseConfig(base), ['items']);
    const next = parseConfig({ ...base, pool: { maxPerShard: 5 }, tables: { ...base.tables, empty: { key: 'other' }, added: { broadcast: true } } });
    const result = await reloadEngineConfig(engine, next);
    expect(result).toEqual({ ok: true, changedTables: ['added', 'empty'] });
    expect(engine.applied).toEqual([next]);
  });

  it('refuses a rule change for a table holding rows, naming it, and applies nothing', async () => {
    const engine = fakeEngine(parseConfig(base), ['items']);
    for (const items of [{ key: 'other' }, { key: 'id', algorithm: 'mod' }, { broadcast: true }]) {
      const result = await reloadEngineConfig(engine, parseConfig({ ...base, tables: { ...base.tables, items } }));
      expect(result.ok).toBe(false);
      expect(result.reason).toContain('items');
    }
    const removed = await reloadEngineConfig(engine, parseConfig({ ...base, tables: { empty: base.tables.empty } }));
    expect(removed.ok).toBe(false);
    expect(engine.applied).toEqual([]);
  });

  it('refuses shard list and URL changes, and keys that need a restart', async () => {
    const engine = fakeEngine(parseConfig(base), []);
    const cases = [
      { ...base, shards: { ...base.shards, s2: 'postgres://postgres@127.0.0.1:3/app' } },
      { ...base, shards: { s1: base.shards.s1, s0: base.shards.s0 } },
      { ...base, shards: { ...base.shards, s1: 'postgres://postgres@127.0.0.1:9/app' } },
      { ...base, defaultShard: 's1' },
      { ...base, coordinatorId: 'other' },
      { ...base, listen: '127.0.0.1:7000' },
    ];
    for (const raw of cases) expect((await reloadEngineConfig(engine, parseConfig(raw))).ok, JSON.stringify(raw)).toBe(false);
    expect(engine.applied).toEqual([]);
  });

  it('takes a change of saga.classes (the mode of new global transactions) and refuses other saga changes', async () => {
    const saga = { database: 'postgres://h/app', classes: { payment: { mode: 'saga' } } };
    const engine = fakeEngine(parseConfig({ ...base, saga }), []);
    const rolled = parseConfig({ ...base, saga: { ...saga, classes: { payment: { mode: 'saga', rollout: { mode: 'tcc', percent: 10 } } } } });
    expect(await reloadEngineConfig(engine, rolled)).toEqual({ ok: true, changedTables: [] });
    expect(engine.applied).toEqual([rolled]);
    const moved = await reloadEngineConfig(engine, parseConfig({ ...base, saga: { ...saga, database: 'postgres://other/app' } }));
    expect(moved).toEqual({ ok: false, reason: 'saga cannot change while running; restart ShardGate to change it' });
    expect(engine.applied).toEqual([rolled]);
  });

  it('treats a table as changed when a rule appears, disappears or differs', () => {
    const a = parseConfig(base).tables;
    const b = parseConfig({ ...base, tables: { items: { key: 'id' }, fresh: { key: 'id' } } }).tables;
    expect(changedTables(a, b)).toEqual(['empty', 'fresh']);
    expect(changedTables(a, a)).toEqual([]);
  });
});
