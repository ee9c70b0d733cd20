import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardedSetup } from '../../harness/proxy.js';
import { countsPerShard, startAccountSetup } from './account-setup.js';

describe('node-pg through the proxy', () => {
  let setup: ShardedSetup;
  let client: pg.Client;
  beforeAll(async () => {
    setup = await startAccountSetup();
    client = new pg.Client({ connectionString: setup.proxy.url, connectionTimeoutMillis: 10_000 });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end().catch(() => undefined);
    await setup?.stop();
  });

  it('runs simple queries', async () => {
    const values = Array.from({ length: 20 }, (_, i) => `(${i + 1}, 'owner-${i + 1}', 100)`).join(', ');
    const ins = await client.query(`INSERT INTO account (id, owner, balance) VALUES ${values}`);
    expect(ins.rowCount).toBe(20);
    const r = await client.query<{ n: string; total: string }>('SELECT count(*) AS n, sum(balance) AS total FROM account');
    expect(r.rows).toEqual([{ n: '20', total: '2000' }]);
    const counts = await countsPerShard(setup, 'account');
    expect(counts.every((n) => n > 0)).toBe(true);
  });

  it('runs parameterized queries (unnamed statements)', async () => {
    const r = await client.query<{ id: string; owner: string }>('SELECT id, owner FROM account WHERE id = $1', [7]);
    expect(r.rows).toEqual([{ id: '7', owner: 'owner-7' }]);
    const many = await client.query<{ id: string }>('SELECT id FROM account WHERE id = ANY($1::bigint[]) ORDER BY id', [[3, 11, 19]]);
    expect(many.rows.map((x) => x.id)).toEqual(['3', '11', '19']);
    const upd = await client.query('UPDATE account SET owner = $1 WHERE id = $2', ['renamed', 8]);
    expect(upd.rowCount).toBe(1);
    const types = await client.query('SELECT $1::int AS i, $2::text AS t, $3::bool AS b, $4::numeric AS n, NULL::text AS z', [42, 'héllo', true, '1.50']);
    expect(types.rows).toEqual([{ i: 42, t: 'héllo', b: true, n: '1.50', z: null }]);
  });

  it('reuses named prepared statements', async () => {
    for (const id of [2, 5, 9, 14]) {
      const r = await client.query<{ owner: string }>({ name: 'owner-by-id', text: 'SELECT owner FROM account WHERE id = $1', values: [id] });
      expect(r.rows).toEqual([{ owner: `owner-${id}` }]);
    }
    const ins = { name: 'insert-account', text: 'INSERT INTO account (id, owner, balance) VALUES ($1, $2, $3)' };
    for (const id of [101, 102, 103]) await client.query({ ...ins, values: [id, `n${id}`, 1] });
    const r = await client.query<{ n: string }>('SELECT count(*) AS n FROM account WHERE id > 100');
    expect(r.rows[0]!.n).toBe('3');
  });

  it('commits a transaction and rolls one back', async () => {
    await client.query('BEGIN');
    await client.query('UPDATE account SET balance = balance - 10 WHERE id = $1', [1]);
    await client.query('UPDATE account SET balance = balance + 10 WHERE id = $1', [2]);
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query('UPDATE account SET balance = balance - 50 WHERE id = $1', [3]);
    await client.query('UPDATE account SET balance = balance + 50 WHERE id = $1', [4]);
    await client.query('ROLLBACK');
    const r = await client.query<{ id: string; balance: string }>('SELECT id, balance FROM account WHERE id IN (1, 2, 3, 4) ORDER BY id');
    expect(r.rows).toEqual([
      { id: '1', balance: '90' },
      { id: '2', balance: '110' },
      { id: '3', balance: '100' },
      { id: '4', balance: '100' },
    ]);
  });

  it('reports errors by SQLSTATE and aborts the transaction until ROLLBACK', async () => {
    await expect(client.query('INSERT INTO account (id, owner) VALUES ($1, $2)', [5, 'dup'])).rejects.toMatchObject({ code: '23505' });
    await client.query('BEGIN');
    await expect(client.query('SELECT * FROM no_such_table')).rejects.toMatchObject({ code: '42P01' });
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await client.query('ROLLBACK');
    const r = await client.query<{ one: number }>('SELECT 1 AS one');
    expect(r.rows).toEqual([{ one: 1 }]);
  });
});
