import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, onBoth, sql } from './engine-fixture.js';

/**
 * A HAVING the merge evaluates in the proxy is removed from the shards'
 * statement, and its parameters with it: the shards must get only the
 * parameters their statement still uses, renumbered (a shard given two for a
 * statement with one answers 08P01; one left without a use of $1 cannot type
 * it). Same answers as one server, with parameters before, after and only in
 * HAVING.
 */
describe('parameters in HAVING and elsewhere in a merged statement', () => {
  let clusters: PgCluster[];
  let engine: Engine;

  beforeAll(async () => {
    clusters = await startClusters(4, { databases: ['app'] });
    engine = await openClusterEngine(clusterConfig(clusters.slice(0, 3)));
    const session = engine.session({ user: 'app', database: 'app' });
    const ddl = 'CREATE TABLE orders (user_id int NOT NULL, id int NOT NULL, amount int NOT NULL, PRIMARY KEY (user_id, id))';
    const data = 'INSERT INTO orders SELECT u, k, (u * 7 + k * 11) % 97 FROM generate_series(1, 60) u, generate_series(1, 5) k';
    await onBoth(session, clusters[3]!, [ddl, data]);
    await session.close();
  });
  afterAll(async () => {
    await engine?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  const cases: [string, string[]][] = [
    ['SELECT user_id, sum(amount) FROM orders WHERE amount > $1 GROUP BY user_id HAVING sum(amount) > $2 ORDER BY user_id', ['20', '150']],
    ['SELECT user_id, sum(amount) FROM orders WHERE amount > $2 GROUP BY user_id HAVING sum(amount) > $1 ORDER BY user_id', ['150', '20']],
    ['SELECT user_id, count(*) FROM orders WHERE amount < $2 GROUP BY user_id HAVING count(*) >= $1 ORDER BY user_id LIMIT $3', ['3', '60', '7']],
    ['SELECT user_id, max(amount) FROM orders GROUP BY user_id HAVING max(amount) > $1 AND min(amount) < $2 ORDER BY user_id', ['80', '10']],
  ];
  for (const [q, params] of cases) {
    it(q, async () => {
      const session = engine.session({ user: 'app', database: 'app' });
      try {
        const got = (await sql(session, q, params)).rows;
        const want = await direct(clusters[3]!, q, params);
        expect(want.length).toBeGreaterThan(0);
        expect(got).toEqual(want);
      } finally {
        await session.close();
      }
    });
  }
});
