import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../harness/cluster.js';
import { startWireServer, type WireServerFixture } from './wire-server-fixture.js';

/**
 * Writes whose subqueries read other shards, sent by real clients (node-pg
 * over the extended protocol, psql over the simple one) through the wire
 * server on two shards: each is atomic across the shards it writes, checked
 * by reading every shard directly.
 */
describe('writes with subqueries over other shards, through the wire server', () => {
  let fx: WireServerFixture;
  let clusters: readonly PgCluster[] = [];
  const client = (): Promise<pg.Client> => fx.client();
  const psql = (sql: string, input = ''): ReturnType<WireServerFixture['psql']> => fx.psql(sql, input);

  /** Each shard's rows of a table, read directly (not through the proxy). */
  async function perShard(sql: string): Promise<string[][]> {
    return Promise.all(clusters.map(async (c) => (await c.query<{ r: string }>(`SELECT (${sql})::text AS r`, [], 'app')).map((x) => x.r)));
  }

  const balances = (): Promise<string[][]> => perShard('SELECT string_agg(id || \'=\' || balance, \',\' ORDER BY id) FROM account');
  const archived = (): Promise<string[][]> => perShard('SELECT string_agg(id::text, \',\' ORDER BY id) FROM archive');

  beforeAll(async () => {
    fx = await startWireServer({ account: { key: 'id' }, payment: { key: 'payer' }, archive: { key: 'id', algorithm: 'mod' } });
    ({ clusters } = fx);
    const setup = await client();
    await setup.query('CREATE TABLE account (id bigint PRIMARY KEY, balance numeric NOT NULL CHECK (balance >= 0))');
    await setup.query('CREATE TABLE payment (payer bigint NOT NULL, payee bigint NOT NULL, amount numeric NOT NULL)');
    await setup.query('CREATE TABLE archive (id bigint PRIMARY KEY, balance numeric NOT NULL)');
    await setup.query(`INSERT INTO account (id, balance) VALUES ${Array.from({ length: 12 }, (_, i) => `(${i + 1}, 100)`).join(', ')}`);
    // Payments are sharded by payer; they name payees on either shard.
    await setup.query('INSERT INTO payment (payer, payee, amount) VALUES (1, 2, 10), (1, 3, 10), (4, 5, 10), (6, 7, 10), (6, 8, 10), (9, 10, 10)');
  });

  afterAll(async () => {
    await fx?.close();
  });

  it('node-pg: an UPDATE … WHERE id IN (SELECT …) writes the payees on both shards, with parameters', async () => {
    const c = await client();
    const before = await balances();
    const res = await c.query('UPDATE account SET balance = balance + $1 WHERE id IN (SELECT payee FROM payment WHERE amount >= $2) RETURNING id', ['5', '10']);
    expect(res.command).toBe('UPDATE');
    expect(res.rows.map((r: { id: string }) => Number(r.id)).sort((a, b) => a - b)).toEqual([2, 3, 5, 7, 8, 10]);
    const after = await balances();
    // Both shards changed: the payees live on both.
    expect(after[0]).not.toEqual(before[0]);
    expect(after[1]).not.toEqual(before[1]);
  });

  it('node-pg: a failure on one shard (a CHECK violation) leaves both shards unchanged', async () => {
    const c = await client();
    const before = await balances();
    // Account 10 would go below zero; the others would not.
    await c.query('UPDATE account SET balance = 3 WHERE id = 10');
    const mid = await balances();
    const err = await c.query('UPDATE account SET balance = balance - 50 WHERE id IN (SELECT payee FROM payment)').then(
      () => null,
      (e: { code?: string }) => e.code,
    );
    expect(err).toBe('23514');
    expect(await balances()).toEqual(mid);
    expect(mid).not.toEqual(before);
    // A scalar subquery returning two rows: 21000, nothing written.
    const two = await c.query('UPDATE account SET balance = (SELECT amount FROM payment WHERE payer = 1) WHERE id > 0').then(
      () => null,
      (e: { code?: string }) => e.code,
    );
    expect(two).toBe('21000');
    expect(await balances()).toEqual(mid);
  });

  it('node-pg: inside BEGIN … ROLLBACK the write is the transaction\'s, invisible to others and undone', async () => {
    const c = await client();
    const other = await client();
    const before = await balances();
    await c.query('BEGIN');
    await c.query('UPDATE account SET balance = balance + 1000 WHERE id IN (SELECT payee FROM payment)');
    const seen = await c.query('SELECT count(*) AS n FROM account WHERE balance > 1000');
    expect(seen.rows).toEqual([{ n: '6' }]);
    const outside = await other.query('SELECT count(*) AS n FROM account WHERE balance > 1000');
    expect(outside.rows).toEqual([{ n: '0' }]);
    await c.query('ROLLBACK');
    expect(await balances()).toEqual(before);
  });

  it('psql: WITH … DELETE … RETURNING feeding an INSERT moves rows across shards, or nothing when one insert fails', async () => {
    const before = { balances: await balances(), archived: await archived() };
    // Archive row 8 exists already: moving account 8 fails on its shard, and the deletes on both shards roll back.
    expect((await psql('INSERT INTO archive (id, balance) VALUES (8, 0)')).code).toBe(0);
    const clash = await psql('WITH gone AS (DELETE FROM account WHERE id IN (7, 8, 11, 12) RETURNING id, balance) INSERT INTO archive SELECT * FROM gone');
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toContain('duplicate key');
    expect(await balances()).toEqual(before.balances);
    const moved = await psql('WITH gone AS (DELETE FROM account WHERE id IN (7, 11, 12) RETURNING id, balance) INSERT INTO archive SELECT * FROM gone');
    expect(moved).toMatchObject({ code: 0 });
    const after = await archived();
    expect([...after[0]!, ...after[1]!].join(',').split(',').filter((x) => x !== '').map(Number).sort((a, b) => a - b)).toEqual([7, 8, 11, 12]);
    const left = await psql('SELECT count(*) FROM account WHERE id IN (7, 11, 12)');
    expect(left.stdout.trim()).toBe('0');
  });
});
