import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, sql } from './engine-fixture.js';

/**
 * EXPLAIN of a statement that runs on several shards shows ShardGate's plan
 * (the shards, the route, the combining step) and under it each shard's own
 * plan of the part it runs — compared with what each shard itself answers
 * for that part. One shard's statement is explained by that shard alone, as
 * before.
 */
describe('EXPLAIN across shards', () => {
  let shards: PgCluster[];
  let engine: Engine;
  let session: Session;

  beforeAll(async () => {
    shards = await startClusters(3, { databases: ['app'] });
    engine = await openClusterEngine(clusterConfig(shards));
    session = engine.session({ user: 'app', database: 'app' });
    await sql(session, 'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, country text, score int)');
    await sql(session, 'CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL)');
    await sql(session, "INSERT INTO users SELECT g, 'user ' || g, CASE WHEN g % 2 = 0 THEN 'fr' ELSE 'de' END, g % 50 FROM generate_series(1, 90) g");
  });
  afterAll(async () => {
    await session?.close();
    await engine?.close();
    await Promise.all((shards ?? []).map((c) => c.destroy()));
  });

  const lines = async (q: string): Promise<string[]> => (await sql(session, q)).rows.map((r) => r[0]!);

  it('a merged aggregate: the header, then each shard with its rewritten part and that shard\'s own plan', async () => {
    const got = await lines('EXPLAIN (COSTS off) SELECT country, count(*), avg(score) FROM users GROUP BY country ORDER BY country');
    expect(got[0]).toBe('ShardGate Merge  (shards: s0, s1, s2; route: all)');
    expect(got[1]).toMatch(/^ {2}Combine: combine partial aggregates count\(column 2\), avg\(sum of column \d+ ÷ count of column \d+\) into groups by column 1; merge the shards' ordered streams by column 1; /);
    const labels = got.filter((l) => l.startsWith('  ->  Shard '));
    expect(labels.map((l) => /^ {2}-> {2}Shard (s\d)/.exec(l)![1])).toEqual(['s0', 's1', 's2']);
    // Each shard's section is exactly that shard's EXPLAIN of the part it was sent, indented.
    let shown = 2;
    for (const [i, label] of labels.entries()) {
      const part = /\(runs: (.*)\)$/.exec(label)![1]!;
      expect(part).toMatch(/^SELECT country, count\(\*\)/);
      const own = (await direct(shards[i]!, `EXPLAIN (COSTS off) ${part}`)).map((r) => `        ${r[0]}`);
      const start = got.indexOf(label) + 1;
      expect(got.slice(start, start + own.length)).toEqual(own);
      shown += 1 + own.length;
    }
    expect(got.length).toBe(shown);
  });

  it('rows appended from every shard, EXPLAIN ANALYZE included: each shard reports its own actual rows', async () => {
    const got = await lines('EXPLAIN (ANALYZE, COSTS off, TIMING off, SUMMARY off) SELECT id FROM users WHERE score = 7');
    expect(got[0]).toBe('ShardGate Append  (shards: s0, s1, s2; route: all)');
    expect(got[1]).toBe("  Combine: append the shards' rows");
    const actual = got.filter((l) => /actual rows=\d+/.test(l)).map((l) => Number(/actual rows=(\d+)/.exec(l)![1]));
    const perShard = await Promise.all(shards.map(async (c) => Number((await direct(c, 'SELECT count(*) FROM users WHERE score = 7'))[0]![0])));
    // The top node of each shard's plan reports that shard's rows.
    expect(actual).toEqual(perShard);
    expect(perShard.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it('one shard by key: that shard\'s plan, unchanged', async () => {
    const got = await lines('EXPLAIN (COSTS off) SELECT name FROM users WHERE id = 5');
    const owner = await Promise.all(shards.map(async (c) => (await direct(c, 'SELECT count(*) FROM users WHERE id = 5'))[0]![0] === '1'));
    const own = (await direct(shards[owner.indexOf(true)]!, 'EXPLAIN (COSTS off) SELECT name FROM users WHERE id = 5')).map((r) => r[0]);
    expect(got).toEqual(own);
  });

  it('EXPLAIN of a multi-shard UPDATE without ANALYZE changes nothing; other formats are refused with 0A000', async () => {
    const got = await lines("EXPLAIN (COSTS off) UPDATE users SET name = 'x' WHERE score = 3");
    expect(got[0]).toBe('ShardGate Append  (shards: s0, s1, s2; route: all)');
    expect(got.filter((l) => l.trimStart().startsWith('Update on users'))).toHaveLength(3);
    const renamed = await Promise.all(shards.map(async (c) => Number((await direct(c, "SELECT count(*) FROM users WHERE name = 'x'"))[0]![0])));
    expect(renamed).toEqual([0, 0, 0]);
    await expect(sql(session, 'EXPLAIN (FORMAT JSON) SELECT id FROM users')).rejects.toMatchObject({ code: '0A000' });
  });
});
