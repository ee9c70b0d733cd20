import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../harness/seeded-random.js';
import { startWireServer, type WireServerFixture } from './wire-server-fixture.js';

/**
 * pg_prepared_statements and pg_cursors through the proxy list the client's
 * own prepared statements and cursors, as one PostgreSQL server lists them
 * for a session that ran the same statements (compared column by column,
 * creation times aside), and never what the pooled shard connections hold
 * for other clients.
 */

const STATEMENTS = "SELECT name, statement, parameter_types::text, from_sql, generic_plans, custom_plans FROM pg_prepared_statements ORDER BY name";
const CURSORS = 'SELECT name, statement, is_holdable, is_binary, is_scrollable FROM pg_cursors ORDER BY name';

let fx: WireServerFixture;
let controlUrl: string;
const controls: pg.Client[] = [];

async function control(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: controlUrl });
  controls.push(c);
  await c.connect();
  return c;
}

/** Rows, or the SQLSTATE of the error. */
async function answer(c: pg.Client, sql: string | pg.QueryConfig): Promise<unknown> {
  try {
    const r = await c.query({ ...(typeof sql === 'string' ? { text: sql } : sql), rowMode: 'array' });
    return r.rows;
  } catch (err) {
    return { code: (err as { code?: string }).code };
  }
}

beforeAll(async () => {
  fx = await startWireServer({ item: { key: 'id' } });
  await fx.clusters[0]!.query('CREATE DATABASE control');
  controlUrl = fx.clusters[0]!.url('control');
  const setup = 'CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL)';
  const rows = "INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 40) g";
  const c = await fx.client();
  await c.query(setup);
  await c.query(rows);
  const k = await control();
  await k.query(setup);
  await k.query(rows);
}, 120_000);

afterAll(async () => {
  await Promise.all(controls.map((c) => c.end().catch(() => undefined)));
  await fx?.close();
});

describe('session views through the proxy', () => {
  it('list SQL and protocol prepared statements with their types and plan counts as one server does', async () => {
    const script: (string | pg.QueryConfig)[] = [
      'PREPARE p(int, text) AS SELECT $1 + 1, $2',
      "EXECUTE p(1, 'a')",
      'PREPARE q AS SELECT count(*) FROM item',
      'EXECUTE q',
      'EXECUTE q',
      'PREPARE r AS SELECT label FROM item WHERE id = $1',
      'EXECUTE r(3)',
      { name: 'byid', text: 'SELECT label FROM item WHERE id = $1', values: [7] },
      { name: 'byid', text: 'SELECT label FROM item WHERE id = $1', values: [8] },
      { name: 'typed', text: 'SELECT $1::int8 + $2', values: [1, 2] },
      STATEMENTS,
      'DEALLOCATE q',
      STATEMENTS,
      "SELECT s.name FROM pg_catalog.pg_prepared_statements AS s WHERE s.from_sql ORDER BY 1",
      'SELECT count(*) FROM pg_prepared_statements WHERE parameter_types = CAST(ARRAY[23] AS regtype[])',
    ];
    const proxy = await fx.client();
    const direct = await control();
    for (const step of script) {
      expect(await answer(proxy, step), JSON.stringify(step)).toEqual(await answer(direct, step));
    }
  });

  it('do not show what other clients prepared on the pooled connections', async () => {
    const other = await fx.client();
    for (let i = 0; i < 5; i++) await other.query({ name: `other_${i}`, text: 'SELECT label FROM item WHERE id = $1', values: [i + 1] });
    await other.query("SELECT label FROM item WHERE id = 2 AND label <> 'secret literal'");
    const fresh = await fx.client();
    expect((await fresh.query(STATEMENTS)).rows).toEqual([]);
    expect((await fresh.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE '%secret%'")).rows).toEqual([{ n: 0 }]);
  });

  it('list cursors declared with and without HOLD, BINARY, SCROLL as one server does', async () => {
    const script = [
      'BEGIN',
      'DECLARE a SCROLL CURSOR FOR SELECT label FROM item WHERE id = 1',
      'DECLARE b CURSOR FOR SELECT label FROM item WHERE id = 2',
      'DECLARE c BINARY NO SCROLL CURSOR FOR SELECT id FROM item WHERE id = 3',
      'DECLARE d NO SCROLL CURSOR WITH HOLD FOR SELECT id FROM item ORDER BY id',
      CURSORS,
      'FETCH 2 FROM d',
      'CLOSE b',
      CURSORS,
      'COMMIT',
      // Only the WITH HOLD cursor outlives the transaction.
      CURSORS,
      // Outside a transaction block, 25P01 comes before the name's 42P03 (seed 48284 of the generated sequences).
      'DECLARE d CURSOR FOR SELECT 1',
      'CLOSE ALL',
      CURSORS,
    ];
    const proxy = await fx.client();
    const direct = await control();
    for (const step of script) expect(await answer(proxy, step), step).toEqual(await answer(direct, step));
  });

  it('refuse with 0A000 the columns whose value only the plan decides, and answer the others', async () => {
    const proxy = await fx.client();
    await proxy.query('BEGIN');
    // Over both shards the cursor reads forward through the merge; one server might have let it scroll back.
    await proxy.query('DECLARE m CURSOR FOR SELECT id FROM item ORDER BY id');
    await expect(proxy.query('SELECT is_scrollable FROM pg_cursors')).rejects.toMatchObject({ code: '0A000' });
    await proxy.query('ROLLBACK');
    await proxy.query('BEGIN');
    await proxy.query('DECLARE m CURSOR FOR SELECT id FROM item ORDER BY id');
    await expect(proxy.query('SELECT * FROM pg_cursors')).rejects.toMatchObject({ code: '0A000' });
    await proxy.query('ROLLBACK');
    await proxy.query('BEGIN');
    await proxy.query('DECLARE m CURSOR FOR SELECT id FROM item ORDER BY id');
    expect((await proxy.query('SELECT name, is_holdable FROM pg_cursors')).rows).toEqual([{ name: 'm', is_holdable: false }]);
    await proxy.query('ROLLBACK');

    // After five runs of a statement with parameters, PostgreSQL chooses plans by their costs.
    await proxy.query('PREPARE six(int) AS SELECT label FROM item WHERE id = $1');
    for (let i = 1; i <= 6; i++) await proxy.query(`EXECUTE six(${i})`);
    await expect(proxy.query('SELECT generic_plans FROM pg_prepared_statements')).rejects.toMatchObject({ code: '0A000' });
    await expect(proxy.query('SELECT s FROM pg_prepared_statements s')).rejects.toMatchObject({ code: '0A000' });
    expect((await proxy.query('SELECT name, from_sql FROM pg_prepared_statements')).rows).toEqual([{ name: 'six', from_sql: true }]);
    // A write that reads the view would store what no session shows: refused.
    await proxy.query('CREATE TABLE IF NOT EXISTS seen (name text)');
    await expect(proxy.query('INSERT INTO seen SELECT name FROM pg_prepared_statements')).rejects.toMatchObject({ code: '0A000' });
    // A WITH query of the same name is the client's own, not the view.
    expect((await proxy.query("WITH pg_cursors AS (SELECT 'mine'::text AS name) SELECT name FROM pg_cursors")).rows).toEqual([{ name: 'mine' }]);
  });

  it('agree with one server over generated sequences of PREPARE, EXECUTE, DEALLOCATE, DECLARE and CLOSE', async () => {
    const seed = Number(process.env.SESSION_VIEWS_SEED ?? Date.now() % 100_000);
    const random = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const names = ['s1', 's2', 's3'];
    const cursors = ['k1', 'k2', 'k3'];
    const queries = ['SELECT label FROM item WHERE id = $1', 'SELECT $1::int * 2', 'SELECT count(*) FROM item WHERE id < $1'];
    const cursorQueries = ['SELECT label FROM item WHERE id = 5', 'SELECT id FROM item WHERE id = 9 ORDER BY id', 'SELECT 1'];
    const proxy = await fx.client();
    const direct = await control();
    let inTx = false;
    for (let step = 0; step < 60; step++) {
      const r = random();
      let sql: string;
      if (r < 0.2) sql = `PREPARE ${pick(names)}(int) AS ${pick(queries)}`;
      else if (r < 0.35) sql = `EXECUTE ${pick(names)}(${1 + Math.floor(random() * 40)})`;
      else if (r < 0.45) sql = random() < 0.2 ? 'DEALLOCATE ALL' : `DEALLOCATE ${pick(names)}`;
      else if (r < 0.6) sql = `DECLARE ${pick(cursors)}${pick(['', ' SCROLL', ' NO SCROLL', ' BINARY'])} CURSOR${pick(['', ' WITH HOLD'])} FOR ${pick(cursorQueries)}`;
      else if (r < 0.7) sql = `CLOSE ${random() < 0.2 ? 'ALL' : pick(cursors)}`;
      else if (r < 0.8) sql = inTx ? pick(['COMMIT', 'ROLLBACK']) : 'BEGIN';
      else sql = random() < 0.5 ? STATEMENTS : CURSORS;
      if (sql === 'BEGIN') inTx = true;
      if (sql === 'COMMIT' || sql === 'ROLLBACK') inTx = false;
      const got = await answer(proxy, sql);
      const want = await answer(direct, sql);
      const failed = (a: unknown): boolean => (a as { code?: string }).code !== undefined;
      // An error aborts the transaction; end it on both sides so the sequence goes on.
      if (inTx && (failed(got) || failed(want))) {
        await proxy.query('ROLLBACK');
        await direct.query('ROLLBACK');
        inTx = false;
      }
      // The same answer, or a refusal (plan counts after a fifth run).
      if ((got as { code?: string }).code === '0A000' && !failed(want)) continue;
      expect(got, `seed ${seed}, step ${step}: ${sql}`).toEqual(want);
    }
  });
});
