import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardName, tableName } from '../../../src/config/names.js';
import type { TableRule } from '../../../src/config/types.js';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { clusterConfig, openClusterEngine, sql } from './engine-fixture.js';

/** The same rules on embedded (PGlite) shards: moving INSERT … SELECT, INSERT without columns, statements outside transactions, temporary tables. */
describe('shard rules on embedded shards', () => {
  let dir: string;
  let engine: Engine;
  const fresh = (): Session => engine.session({ user: 'app', database: 'app' });
  const failCode = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'no error',
      (e: unknown) => (e as { code?: string }).code ?? String(e),
    );
  /** Rows of one shard, read through a shard hint. */
  const onShard = async (s: Session, shard: string, text: string): Promise<(string | null)[][]> => (await sql(s, `${text} /* shardgate:shard=${shard} */`)).rows;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardgate-rules-'));
    const tables = new Map<ReturnType<typeof tableName>, TableRule>([
      [tableName('items'), { kind: 'mod', key: 'id' }],
      [tableName('copies'), { kind: 'hash', key: 'id' }],
    ]);
    const config = clusterConfig([], { tables, shards: ['e0', 'e1'].map((n) => ({ kind: 'embedded' as const, name: shardName(n), dir: join(dir, n) })), defaultShard: shardName('e0') });
    engine = await openClusterEngine(config);
    const s = fresh();
    await sql(s, 'CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)');
    await sql(s, 'CREATE TABLE copies (label text NOT NULL, id int PRIMARY KEY)');
    await sql(s, `INSERT INTO items (id, label) VALUES ${Array.from({ length: 30 }, (_, i) => `(${i + 1}, 'item ${i + 1}')`).join(', ')}`);
    await s.close();
  });

  afterAll(async () => {
    await engine?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('moves INSERT … SELECT rows, and routes an INSERT without a column list', async () => {
    const s = fresh();
    expect((await sql(s, 'INSERT INTO copies (id, label) SELECT id, label FROM items WHERE id > $1', ['10'])).tag).toBe('INSERT 0 20');
    await sql(s, "INSERT INTO copies VALUES ('extra', 100)");
    for (const shard of ['e0', 'e1']) {
      for (const [id] of await onShard(s, shard, 'SELECT id::text FROM copies')) expect(engine.planner.shardForKey(tableName('copies'), id ?? null)).toBe(shard);
    }
    expect((await sql(s, 'SELECT count(*), sum(id) FROM copies')).rows).toEqual([['21', String(((11 + 30) * 20) / 2 + 100)]]);
    await s.close();
  });

  it('refuses an expression over aggregates across embedded shards (no compute connection to evaluate it on) with 0A000, never answering without it', async () => {
    const s = fresh();
    const refusal = await sql(s, 'SELECT coalesce(sum(id), 0), round(avg(id), 2) FROM items').then(
      () => null,
      (e: unknown) => e as { code?: string; fields?: { hint?: string } },
    );
    expect(refusal?.code).toBe('0A000');
    expect(refusal?.fields?.hint).toMatch(/compute the expression in the application/);
    // The aggregates themselves still merge.
    expect((await sql(s, 'SELECT sum(id), avg(id) FROM items')).rows).toEqual([['465', '15.5000000000000000']]);
    await s.close();
  });

  it('runs CREATE INDEX CONCURRENTLY outside a transaction, and keeps a temporary table on one written shard', async () => {
    const s = fresh();
    expect((await sql(s, 'CREATE INDEX CONCURRENTLY items_label ON items (label)')).tag).toBe('CREATE INDEX');
    await sql(s, 'BEGIN');
    expect(await failCode(sql(s, 'CREATE INDEX CONCURRENTLY items_label2 ON items (label)'))).toBe('25001');
    await sql(s, 'ROLLBACK');
    await sql(s, 'BEGIN');
    await sql(s, 'CREATE TEMP TABLE scratch (id int)');
    await sql(s, "UPDATE items SET label = 'two' WHERE id = 2");
    expect(await failCode(sql(s, "UPDATE items SET label = 'one' WHERE id = 1"))).toBe('0A000');
    expect((await sql(s, 'COMMIT')).tag).toBe('ROLLBACK');
    expect((await sql(s, 'SELECT label FROM items WHERE id = 2')).rows).toEqual([['item 2']]);
    await s.close();
  });
});
