import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, onBoth, sql } from './engine-fixture.js';

/**
 * Statements whose combining step PostgreSQL evaluates on a compute
 * connection (final-step/) describe their columns as one server does: the
 * client's names, not the temporary table's c0, c1, …; and a client column
 * named like one of those does not change the order.
 */
describe('column names of statements combined on the final step', () => {
  let clusters: PgCluster[];
  let engine: Engine;
  let session: Session;

  beforeAll(async () => {
    clusters = await startClusters(3, { databases: ['app'] });
    engine = await openClusterEngine(clusterConfig(clusters.slice(0, 2)));
    session = engine.session({ user: 'app', database: 'app' });
    const ddl = 'CREATE TABLE users (id int PRIMARY KEY, name text, country text, score int)';
    const data = "INSERT INTO users SELECT g, 'n' || g, CASE WHEN g % 3 = 0 THEN 'fr' ELSE 'de' END, g % 7 FROM generate_series(1, 40) g";
    await onBoth(session, clusters[2]!, [ddl, data]);
  });
  afterAll(async () => {
    await session?.close();
    await engine?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  async function described(q: string): Promise<{ names: string[]; rows: (string | null)[][] }> {
    let names: string[] = [];
    for await (const ev of session.execute({ sql: q, params: [], paramFormats: [], resultFormats: [] })) {
      if (ev.kind === 'fields') names = ev.fields.map((f) => f.name);
    }
    return { names, rows: (await sql(session, q)).rows };
  }

  async function control(q: string): Promise<{ names: string[]; rows: (string | null)[][] }> {
    const c = new pg.Client({ connectionString: clusters[2]!.url('app') });
    await c.connect();
    let res: pg.QueryArrayResult;
    try {
      res = await c.query({ text: q, rowMode: 'array' });
    } finally {
      await c.end();
    }
    return { names: res.fields.map((f) => f.name), rows: await direct(clusters[2]!, q) };
  }

  for (const q of [
    "SELECT avg(interval '1 day' * score) AS a, count(*) FROM users",
    "SELECT country, sum(interval '1 hour' * score) FROM users GROUP BY country ORDER BY country",
    // The client's own c1 names the second column; ORDER BY c1 still means the client's c1.
    "SELECT score AS c1, avg(interval '1 minute' * id) AS c0 FROM users GROUP BY score ORDER BY c1 DESC",
  ]) {
    it(q, async () => {
      expect(await described(q)).toEqual(await control(q));
    });
  }
});
