import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, onBoth, sql } from './engine-fixture.js';

/**
 * SQL PREPARE/EXECUTE/DEALLOCATE and SQL cursors through the engine, each
 * script run statement by statement on one session and on one connection to
 * an unsharded server holding the same rows: every statement must give the
 * same rows, the same command tag, or the same SQLSTATE.
 */

const SCHEMA = 'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, score int)';
const ROWS = 3000;

const SCRIPTS: readonly (readonly string[])[] = [
  // Prepared statements routed by their arguments.
  [
    'PREPARE byid (int) AS SELECT id, name, score FROM users WHERE id = $1',
    'EXECUTE byid(1)',
    'EXECUTE byid(2)',
    'EXECUTE byid(3)',
    'EXECUTE byid(1 + 4)',
    "EXECUTE byid('6')",
    'EXECUTE byid(7.6)',
    'EXECUTE byid(NULL)',
    'EXECUTE byid(1, 2)',
    'EXECUTE byid',
    'PREPARE byid AS SELECT 1',
    'DEALLOCATE byid',
    'EXECUTE byid(1)',
    'DEALLOCATE byid',
    'DEALLOCATE PREPARE nosuch',
  ],
  [
    'PREPARE top (int) AS SELECT id, score FROM users ORDER BY score DESC, id LIMIT $1',
    'EXECUTE top(5)',
    'PREPARE ins (int, text) AS INSERT INTO users (id, name, score) VALUES ($1, $2, 0)',
    "EXECUTE ins(100001, 'a')",
    "EXECUTE ins(100002, 'b')",
    'PREPARE upd AS UPDATE users SET score = score + 1 WHERE id = $1 RETURNING id, score',
    'EXECUTE upd(100002)',
    'SELECT id, score FROM users WHERE id > 100000 ORDER BY id',
    'PREPARE badtype (nosuchtype) AS SELECT $1',
    'PREPARE badtable AS SELECT * FROM nosuchtable',
    'DEALLOCATE ALL',
    'EXECUTE top(1)',
    'DELETE FROM users WHERE id > 100000',
  ],
  // A cursor on one shard: every direction.
  [
    'DECLARE c CURSOR FOR SELECT id, name FROM users WHERE id = 4',
    'BEGIN',
    'DECLARE c SCROLL CURSOR FOR SELECT id, name FROM users WHERE id IN (3, 6, 9, 12, 15) ORDER BY id',
    'FETCH 2 FROM c',
    'FETCH NEXT FROM c',
    'FETCH PRIOR FROM c',
    'FETCH ABSOLUTE 5 FROM c',
    'MOVE BACKWARD 2 IN c',
    'FETCH ALL FROM c',
    'FETCH BACKWARD ALL FROM c',
    'DECLARE c CURSOR FOR SELECT 1',
    'CLOSE c',
    'FETCH c',
    'ROLLBACK',
  ],
  // Cursors over every shard, merged in order, read forward.
  [
    'BEGIN',
    'DECLARE m NO SCROLL CURSOR FOR SELECT id, name, score FROM users ORDER BY score, id',
    'FETCH 7 FROM m',
    'MOVE 1500 IN m',
    'FETCH FORWARD 1200 FROM m',
    'FETCH ALL FROM m',
    'FETCH 1 FROM m',
    'DECLARE g CURSOR FOR SELECT score, count(*) FROM users GROUP BY score ORDER BY score',
    'FETCH 3 FROM g',
    'FETCH ALL FROM g',
    'CLOSE ALL',
    'FETCH g',
    'COMMIT',
  ],
  // WITH HOLD across COMMIT; closed by ROLLBACK; savepoints.
  [
    'BEGIN',
    'DECLARE h CURSOR WITH HOLD FOR SELECT id FROM users ORDER BY id',
    'DECLARE w CURSOR FOR SELECT id FROM users WHERE id = 2',
    'FETCH 2 FROM h',
    'COMMIT',
    'FETCH 3 FROM h',
    'FETCH w',
    'BEGIN',
    'DECLARE r CURSOR WITH HOLD FOR SELECT id FROM users WHERE id = 8',
    'FETCH 2 FROM h',
    'ROLLBACK',
    'FETCH r',
    'FETCH 2 FROM h',
    'BEGIN',
    'DECLARE a CURSOR FOR SELECT id FROM users WHERE id = 10',
    'SAVEPOINT s',
    'DECLARE b CURSOR FOR SELECT id FROM users WHERE id = 11',
    'ROLLBACK TO s',
    'FETCH b',
    'ROLLBACK',
    'BEGIN',
    'DECLARE a CURSOR FOR SELECT id FROM users WHERE id = 10',
    'FETCH a',
    'COMMIT',
    'DECLARE o CURSOR WITH HOLD FOR SELECT id, name FROM users WHERE id = 13',
    'FETCH ALL FROM o',
    'CLOSE o',
    'CLOSE h',
    'FETCH h',
  ],
];

type Outcome = { rows: (string | null)[][]; tag: string } | { code: string };

async function viaEngine(session: Session, text: string): Promise<Outcome> {
  try {
    return await sql(session, text);
  } catch (err) {
    return { code: (err as { code?: string }).code ?? String(err) };
  }
}

async function viaControl(client: pg.Client, text: string): Promise<Outcome> {
  try {
    const res = await client.query({ text, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
    const tag = [res.command, res.command === 'INSERT' ? '0' : null, res.rowCount].filter((x) => x !== null && x !== undefined).join(' ');
    return { rows: (res.rows ?? []) as (string | null)[][], tag };
  } catch (err) {
    return { code: (err as { code?: string }).code ?? String(err) };
  }
}

/** node-pg reports the tag as command + row count; the engine's tag is compared in that form. */
function normalTag(o: Outcome): Outcome {
  if ('code' in o) return o;
  const [command, ...rest] = o.tag.split(' ');
  const words = command === 'DECLARE' || command === 'CLOSE' || command === 'DEALLOCATE' ? [command] : [command, ...rest];
  return { rows: o.rows, tag: words.join(' ') };
}

describe('SQL prepared statements and cursors through the engine match one PostgreSQL server', () => {
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
    const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, 'user ${i + 1}', ${(i * 7919) % 101})`).join(', ');
    await onBoth(session, control, [SCHEMA, `INSERT INTO users (id, name, score) VALUES ${values}`]);
    await session.close();
  });

  afterAll(async () => {
    await engine?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  it('spreads the rows over every shard', async () => {
    const counts = await Promise.all(shards.map(async (c) => Number((await direct(c, 'SELECT count(*) FROM users'))[0]![0])));
    expect(counts.every((n) => n > 0)).toBe(true);
  });

  SCRIPTS.forEach((script, k) => {
    it(`script ${k + 1}: ${script[0]}`, async () => {
      const session = engine.session({ user: 'app', database: 'app' });
      const client = new pg.Client({ connectionString: control.url('app') });
      await client.connect();
      try {
        for (const text of script) {
          const got = normalTag(await viaEngine(session, text));
          const want = normalTag(await viaControl(client, text));
          expect({ text, ...got }).toEqual({ text, ...want });
        }
      } finally {
        await session.close();
        await client.end();
      }
    });
  });

  it('routes EXECUTE to the shard its argument names', async () => {
    const session = engine.session({ user: 'app', database: 'app' });
    try {
      await sql(session, "PREPARE touch (int) AS UPDATE users SET name = name || '+' WHERE id = $1");
      for (const id of ['1', '2', '3']) expect((await sql(session, `EXECUTE touch(${id})`)).tag).toBe('UPDATE 1');
      // users is sharded by id mod 3: each shard holds exactly one of the touched rows.
      const touched = await Promise.all(shards.map(async (c) => (await direct(c, "SELECT id FROM users WHERE name LIKE '%+'")).map((r) => r[0])));
      expect(touched.map((ids) => ids.length)).toEqual([1, 1, 1]);
      expect(touched.flat().sort()).toEqual(['1', '2', '3']);
    } finally {
      await session.close();
    }
  });

  it('keeps the connections of a cursor WITH HOLD past COMMIT and returns them at CLOSE', async () => {
    const inUse = (): number => [...engine.connector.stats().values()].reduce((n, s) => n + s.inUse, 0);
    const session = engine.session({ user: 'app', database: 'app' });
    try {
      expect(inUse()).toBe(0);
      await sql(session, 'BEGIN');
      await sql(session, 'DECLARE k CURSOR WITH HOLD FOR SELECT id FROM users ORDER BY id');
      await sql(session, 'COMMIT');
      // One connection per shard stays with the cursor.
      expect(inUse()).toBe(shards.length);
      expect((await sql(session, 'FETCH 2 FROM k')).rows).toEqual([['1'], ['2']]);
      await sql(session, 'CLOSE k');
      expect(inUse()).toBe(0);
      await sql(session, 'BEGIN');
      await sql(session, 'DECLARE r CURSOR WITH HOLD FOR SELECT id FROM users WHERE id = 1');
      await sql(session, 'ROLLBACK');
      expect(inUse()).toBe(0);
    } finally {
      await session.close();
    }
  });
});
