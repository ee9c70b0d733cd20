import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, onBoth, sql } from './engine-fixture.js';

const SCHEMA = [
  'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, country text, score int)',
  'CREATE TABLE orders (user_id int NOT NULL, id int NOT NULL, amount numeric(10,2) NOT NULL, placed date NOT NULL, PRIMARY KEY (user_id, id))',
  'CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL)',
];

function dataStatements(): string[] {
  const out = ["INSERT INTO countries (code, name) VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan'), ('br', 'Brazil')"];
  const countries = ['fr', 'de', 'jp', 'br', null];
  const users: string[] = [];
  for (let id = 1; id <= 60; id++) {
    const country = countries[id % 5];
    users.push(`(${id}, 'user ${String((id * 37) % 61).padStart(2, '0')}', ${country === null ? 'NULL' : `'${country}'`}, ${id % 7 === 0 ? 'NULL' : (id * 13) % 50})`);
  }
  out.push(`INSERT INTO users (id, name, country, score) VALUES ${users.join(', ')}`);
  const orders: string[] = [];
  for (let u = 1; u <= 60; u++) {
    for (let k = 1; k <= (u % 4) + 1; k++) orders.push(`(${u}, ${k}, ${((u * 7 + k * 11) % 97) + 0.25}, DATE '2026-01-01' + ${(u + k) % 30})`);
  }
  out.push(`INSERT INTO orders (user_id, id, amount, placed) VALUES ${orders.join(', ')}`);
  return out;
}

/** Queries whose merged result must equal the control's; `ordered` ones in the same order. */
const QUERIES: readonly { readonly q: string; readonly ordered: boolean }[] = [
  { q: 'SELECT id, name, country FROM users ORDER BY id', ordered: true },
  { q: 'SELECT id, name FROM users ORDER BY name DESC, id LIMIT 7 OFFSET 5', ordered: true },
  { q: 'SELECT id, score FROM users ORDER BY score NULLS FIRST, id LIMIT 10', ordered: true },
  { q: 'SELECT id FROM users', ordered: false },
  { q: 'SELECT count(*), sum(amount), min(amount), max(amount) FROM orders', ordered: true },
  { q: 'SELECT avg(amount) FROM orders', ordered: true },
  { q: 'SELECT user_id, count(*), sum(amount) FROM orders GROUP BY user_id ORDER BY user_id', ordered: true },
  { q: 'SELECT user_id, sum(amount) FROM orders GROUP BY user_id HAVING sum(amount) > 150 ORDER BY user_id', ordered: true },
  { q: 'SELECT placed, count(*) FROM orders GROUP BY placed ORDER BY count(*) DESC, placed LIMIT 5', ordered: true },
  { q: 'SELECT country, count(*), avg(score) FROM users GROUP BY country ORDER BY country', ordered: true },
  { q: 'SELECT DISTINCT country FROM users ORDER BY country', ordered: true },
  { q: 'SELECT DISTINCT country FROM users', ordered: false },
  { q: 'SELECT u.id, c.name FROM users u JOIN countries c ON c.code = u.country ORDER BY u.id', ordered: true },
  { q: 'SELECT c.name, count(*) FROM users u JOIN countries c ON c.code = u.country GROUP BY c.name ORDER BY c.name', ordered: true },
  { q: 'SELECT o.id, o.amount FROM orders o WHERE o.user_id = 7 ORDER BY o.id', ordered: true },
  { q: 'SELECT id, name FROM users WHERE id IN (3, 4, 5, 50) ORDER BY id', ordered: true },
  { q: 'SELECT id FROM users WHERE id BETWEEN 10 AND 20 ORDER BY id DESC', ordered: true },
  { q: 'SELECT * FROM countries ORDER BY code', ordered: true },
  // Interval partials are added and averaged by PostgreSQL on the final step, exactly as interval_avg does.
  { q: "SELECT avg(interval '1 day 3 hours' * score), sum(interval '1 month 7 seconds' * score) FROM users", ordered: true },
  { q: "SELECT country, avg(interval '1 day' * score / 7), count(*) FROM users GROUP BY country ORDER BY country NULLS FIRST", ordered: true },
  { q: "SELECT avg(interval '1 minute' * score) FROM users WHERE score IS NULL", ordered: true },
];

describe('cross-shard queries through the engine match one PostgreSQL server', () => {
  let clusters: PgCluster[];
  let shards: PgCluster[];
  let control: PgCluster;
  let engine: Engine;

  beforeAll(async () => {
    clusters = await startClusters(4, { databases: ['app'] });
    shards = clusters.slice(0, 3);
    control = clusters[3]!;
    engine = await openClusterEngine(clusterConfig(shards));
    const session = engine.session({ user: 'app', database: 'app' });
    await onBoth(session, control, [...SCHEMA, ...dataStatements()]);
    await session.close();
  });

  afterAll(async () => {
    await engine?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  it('spreads the rows over every shard and keeps broadcast tables whole on each', async () => {
    const counts = await Promise.all(shards.map(async (c) => Number((await direct(c, 'SELECT count(*) FROM users'))[0]![0])));
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(60);
    for (const c of shards) expect((await direct(c, 'SELECT count(*) FROM countries'))[0]![0]).toBe('4');
  });

  for (const { q, ordered } of QUERIES) {
    it(`${ordered ? 'same rows, same order' : 'same rows'}: ${q}`, async () => {
      const session = engine.session({ user: 'app', database: 'app' });
      try {
        const got = (await sql(session, q)).rows;
        const want = await direct(control, q);
        const norm = (rows: (string | null)[][]): string[] => rows.map((r) => JSON.stringify(r));
        if (ordered) expect(norm(got)).toEqual(norm(want));
        else expect(norm(got).sort()).toEqual(norm(want).sort());
      } finally {
        await session.close();
      }
    });
  }

  it('commits a write to every shard atomically and leaves no prepared transaction', async () => {
    const session = engine.session({ user: 'app', database: 'app' });
    const res = await sql(session, "UPDATE users SET name = name || '!' WHERE id <= 6");
    expect(res.tag).toBe('UPDATE 6');
    await session.close();
    const names = await Promise.all(shards.map((c) => direct(c, "SELECT count(*) FROM users WHERE name LIKE '%!'")));
    expect(names.map((r) => Number(r[0]![0])).reduce((a, b) => a + b, 0)).toBe(6);
    for (const c of shards) expect(await direct(c, 'SELECT gid FROM pg_prepared_xacts')).toEqual([]);
  });

  it('rolls back a failed multi-shard write on every shard', async () => {
    const session = engine.session({ user: 'app', database: 'app' });
    // id 60 would collide only on its own shard; the others must not keep their part.
    await expect(sql(session, "INSERT INTO users (id, name) VALUES (61, 'a'), (62, 'b'), (60, 'dup')")).rejects.toMatchObject({ code: '23505' });
    await session.close();
    for (const c of shards) expect(await direct(c, 'SELECT id FROM users WHERE id IN (61, 62)')).toEqual([]);
  });

  it('passes parameters through and routes by them', async () => {
    const session = engine.session({ user: 'app', database: 'app' });
    const res = await sql(session, 'SELECT name FROM users WHERE id = $1', ['9']);
    expect(res.rows).toEqual(await direct(control, 'SELECT name FROM users WHERE id = $1', [9]));
    await session.close();
  });
});
