import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, onBoth, sql } from './engine-fixture.js';

/**
 * TABLESAMPLE over sharded tables, through the engine on three shards, against
 * the same rows on one unsharded server. A sample of 100 % holds every row,
 * so the answers must be equal; a TABLESAMPLE once read only the default
 * shard (a third of the rows).
 */

const SCHEMA = [
  'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL)',
  'CREATE TABLE orders (user_id int NOT NULL, id int NOT NULL, amount numeric(10,2) NOT NULL, PRIMARY KEY (user_id, id))',
];

function dataStatements(): string[] {
  const users: string[] = [];
  const orders: string[] = [];
  for (let id = 1; id <= 90; id++) {
    users.push(`(${id}, 'user ${id}')`);
    for (let k = 1; k <= (id % 3) + 1; k++) orders.push(`(${id}, ${k}, ${((id * 7 + k * 11) % 97) + 0.5})`);
  }
  return [`INSERT INTO users (id, name) VALUES ${users.join(', ')}`, `INSERT INTO orders (user_id, id, amount) VALUES ${orders.join(', ')}`];
}

const QUERIES: readonly string[] = [
  'SELECT count(*) FROM users TABLESAMPLE SYSTEM (100)',
  'SELECT count(*) FROM users TABLESAMPLE BERNOULLI (100)',
  'SELECT count(*) FROM users AS u TABLESAMPLE BERNOULLI (100) REPEATABLE (7)',
  'SELECT count(*), sum(amount) FROM orders TABLESAMPLE SYSTEM (100)',
  'SELECT id FROM users TABLESAMPLE SYSTEM (100) ORDER BY id',
  'SELECT count(*), sum(o.amount) FROM orders AS o TABLESAMPLE SYSTEM (100) WHERE o.user_id = 7',
];

describe('TABLESAMPLE over a sharded table reads every shard, as one PostgreSQL server does', () => {
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

  it('spreads the rows over every shard', async () => {
    const counts = await Promise.all(shards.map(async (c) => Number((await direct(c, 'SELECT count(*) FROM users'))[0]![0])));
    expect(counts.every((n) => n > 0 && n < 90)).toBe(true);
  });

  for (const q of QUERIES) {
    it(`same answer: ${q}`, async () => {
      const session = engine.session({ user: 'app', database: 'app' });
      try {
        expect((await sql(session, q)).rows).toEqual(await direct(control, q));
      } finally {
        await session.close();
      }
    });
  }

  it('refuses a WITH query it cannot see into (MERGE) instead of running it on one shard', async () => {
    const session = engine.session({ user: 'app', database: 'app' });
    try {
      const q = 'WITH m AS (MERGE INTO orders o USING users u ON o.user_id = u.id WHEN MATCHED THEN DELETE RETURNING o.id) SELECT count(*) FROM m';
      await expect(sql(session, q)).rejects.toMatchObject({ code: '0A000' });
    } finally {
      await session.close();
    }
    const left = await Promise.all(shards.map(async (c) => Number((await direct(c, 'SELECT count(*) FROM orders'))[0]![0])));
    expect(left.reduce((a, b) => a + b, 0)).toBe(Number((await direct(control, 'SELECT count(*) FROM orders'))[0]![0]));
  });
});
