import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableName } from '../../../src/config/names.js';
import type { TableRule } from '../../../src/config/types.js';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, sql } from './engine-fixture.js';

/**
 * INSERT … SELECT moving rows between shards, INSERT without a column list,
 * statements that cannot run in a transaction block, and branches that
 * cannot PREPARE, on three real shards; results are compared with one
 * unsharded server that ran the same statements.
 */

const SCHEMA = [
  'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, score int)',
  'CREATE TABLE orders (user_id int NOT NULL, id int NOT NULL, amount numeric(10,2) NOT NULL, PRIMARY KEY (user_id, id))',
  'CREATE TABLE user_copies (id int PRIMARY KEY, name text NOT NULL, score int)',
  'CREATE TABLE order_totals (user_id int PRIMARY KEY, total numeric(12,2) NOT NULL, n bigint NOT NULL)',
  'CREATE TABLE widgets (label text NOT NULL, id int PRIMARY KEY)',
];

function data(): string[] {
  const users: string[] = [];
  const orders: string[] = [];
  for (let id = 1; id <= 40; id++) {
    users.push(`(${id}, 'user ${id}', ${id % 6 === 0 ? 'NULL' : (id * 17) % 40})`);
    for (let k = 1; k <= (id % 3) + 1; k++) orders.push(`(${id}, ${k}, ${((id * 7 + k * 13) % 90) + 0.5})`);
  }
  return [`INSERT INTO users (id, name, score) VALUES ${users.join(', ')}`, `INSERT INTO orders (user_id, id, amount) VALUES ${orders.join(', ')}`];
}

describe('shard rules on real clusters', () => {
  let clusters: PgCluster[];
  let shards: PgCluster[];
  let control: PgCluster;
  let engine: Engine;

  const fresh = (): Session => engine.session({ user: 'app', database: 'app' });
  const failCode = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'no error',
      (e: unknown) => (e as { code?: string }).code ?? String(e),
    );
  /** Runs a statement through ShardGate and on the control server. */
  const both = async (s: Session, text: string): Promise<string> => {
    await direct(control, text);
    return (await sql(s, text)).tag;
  };
  const everywhere = async (text: string): Promise<(string | null)[][]> => (await Promise.all(shards.map((c) => direct(c, text)))).flat();
  const sorted = (rows: (string | null)[][]): string[] => rows.map((r) => JSON.stringify(r)).sort();
  /** Every row of `table` sits on the shard its key routes to. */
  const placedByKey = async (table: string, key: string): Promise<void> => {
    for (let i = 0; i < shards.length; i++) {
      const keys = await direct(shards[i]!, `SELECT ${key}::text FROM ${table}`);
      for (const [k] of keys) expect(engine.planner.shardForKey(tableName(table), k ?? null)).toBe(`s${i}`);
    }
  };

  beforeAll(async () => {
    clusters = await startClusters(4, { databases: ['app'] });
    shards = clusters.slice(0, 3);
    control = clusters[3]!;
    const tables = new Map<ReturnType<typeof tableName>, TableRule>([
      [tableName('users'), { kind: 'mod', key: 'id' }],
      [tableName('orders'), { kind: 'hash', key: 'user_id' }],
      [tableName('user_copies'), { kind: 'hash', key: 'id' }],
      [tableName('order_totals'), { kind: 'mod', key: 'user_id' }],
      [tableName('widgets'), { kind: 'hash', key: 'id' }],
    ]);
    engine = await openClusterEngine(clusterConfig(shards, { tables }));
    const s = fresh();
    for (const q of [...SCHEMA, ...data()]) await both(s, q);
    await s.close();
  });

  afterAll(async () => {
    await engine?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  it('moves the rows of an INSERT … SELECT to the shards of their keys, as one server inserts them', async () => {
    const s = fresh();
    const q = 'INSERT INTO user_copies (id, name, score) SELECT id, name, score FROM users WHERE score > 10 OR score IS NULL';
    const expected = (await direct(control, 'SELECT count(*) FROM users WHERE score > 10 OR score IS NULL'))[0]![0];
    expect(await both(s, q)).toBe(`INSERT 0 ${expected}`);
    const read = 'SELECT id, name, score FROM user_copies ORDER BY id';
    expect((await sql(s, read)).rows).toEqual(await direct(control, read));
    await placedByKey('user_copies', 'id');
    expect(await everywhere('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    await s.close();
  });

  it('moves more rows than one fetch or one INSERT holds', async () => {
    const s = fresh();
    const q = "INSERT INTO user_copies (id, name, score) SELECT g, 'gen ' || g, g % 7 FROM generate_series(20000, 21299) g";
    expect(await both(s, q)).toBe('INSERT 0 1300');
    const read = 'SELECT count(*), sum(id), sum(score), min(name), max(name) FROM user_copies WHERE id >= 20000';
    expect((await sql(s, read)).rows).toEqual(await direct(control, read));
    await placedByKey('user_copies', 'id');
    await both(s, 'DELETE FROM user_copies WHERE id >= 20000');
    await s.close();
  });

  it('inserts merged rows (GROUP BY, ORDER BY … LIMIT) read from every shard', async () => {
    const s = fresh();
    await both(s, 'INSERT INTO order_totals (user_id, total, n) SELECT user_id, sum(amount), count(*) FROM orders GROUP BY user_id HAVING count(*) > 1');
    const read = 'SELECT user_id, total, n FROM order_totals ORDER BY user_id';
    expect((await sql(s, read)).rows).toEqual(await direct(control, read));
    await placedByKey('order_totals', 'user_id');
    await both(s, 'DELETE FROM user_copies');
    const tag = await both(s, "INSERT INTO user_copies (id, name) SELECT user_id * 100 + id, 'top' FROM orders ORDER BY amount DESC, user_id, id LIMIT 5");
    expect(tag).toBe('INSERT 0 5');
    const copies = 'SELECT id, name FROM user_copies ORDER BY id';
    expect((await sql(s, copies)).rows).toEqual(await direct(control, copies));
    await s.close();
  });

  it('reads only the rows that existed when the statement started (INSERT … SELECT from its own table), with parameters', async () => {
    const s = fresh();
    await both(s, 'DELETE FROM user_copies');
    await both(s, "INSERT INTO user_copies (id, name) SELECT id, name FROM users WHERE id <= 10");
    const q = 'INSERT INTO user_copies (id, name) SELECT id + $1, name FROM user_copies WHERE id < $2';
    await direct(control, q, ['1000', '100']);
    expect((await sql(s, q, ['1000', '100'])).tag).toBe('INSERT 0 10');
    const read = 'SELECT id, name FROM user_copies ORDER BY id';
    expect((await sql(s, read)).rows).toEqual(await direct(control, read));
    await placedByKey('user_copies', 'id');
    await s.close();
  });

  it('leaves nothing anywhere when one inserted row fails, and rolls back with the transaction', async () => {
    const s = fresh();
    const before = sorted(await everywhere('SELECT id FROM user_copies'));
    // Row 1001 exists already: 23505 on its shard, after other shards may have taken rows.
    expect(await failCode(sql(s, 'INSERT INTO user_copies (id, name) SELECT id + 1000, name FROM users'))).toBe('23505');
    expect(sorted(await everywhere('SELECT id FROM user_copies'))).toEqual(before);
    await sql(s, 'BEGIN');
    expect((await sql(s, 'INSERT INTO user_copies (id, name) SELECT id + 5000, name FROM users')).tag).toBe('INSERT 0 40');
    expect((await sql(s, 'SELECT count(*) FROM user_copies WHERE id > 5000')).rows).toEqual([['40']]);
    await sql(s, 'ROLLBACK');
    expect(sorted(await everywhere('SELECT id FROM user_copies'))).toEqual(before);
    expect(await everywhere('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    // ON CONFLICT applies on the shard each row lands on.
    expect((await sql(s, 'INSERT INTO user_copies (id, name) SELECT id, name FROM users WHERE id <= 10 ON CONFLICT (id) DO NOTHING')).tag).toBe('INSERT 0 0');
    await s.close();
  });

  it('refuses RETURNING on a moving INSERT … SELECT and a change of the sharding key with 0A000', async () => {
    const s = fresh();
    expect(await failCode(sql(s, 'INSERT INTO user_copies (id, name) SELECT id + 9000, name FROM users RETURNING id'))).toBe('0A000');
    expect(await failCode(sql(s, 'UPDATE users SET id = id + 1 WHERE id = 5'))).toBe('0A000');
    await s.close();
  });

  it('routes an INSERT without a column list by the table column order, also after the table is re-created', async () => {
    const s = fresh();
    await both(s, "INSERT INTO widgets VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4), ('e', 5)");
    await direct(control, 'INSERT INTO widgets VALUES ($1, $2)', ['f', '6']);
    await sql(s, 'INSERT INTO widgets VALUES ($1, $2)', ['f', '6']);
    const read = 'SELECT id, label FROM widgets ORDER BY id';
    expect((await sql(s, read)).rows).toEqual(await direct(control, read));
    await placedByKey('widgets', 'id');
    await both(s, 'DROP TABLE widgets');
    await both(s, 'CREATE TABLE widgets (id int PRIMARY KEY, label text NOT NULL)');
    await both(s, "INSERT INTO widgets VALUES (7, 'g'), (8, 'h'), (9, 'i')");
    expect((await sql(s, read)).rows).toEqual(await direct(control, read));
    await placedByKey('widgets', 'id');
    // Inside a transaction that re-creates the table, its own new column order is used.
    await sql(s, 'BEGIN');
    await sql(s, 'DROP TABLE widgets');
    await sql(s, 'CREATE TABLE widgets (label text NOT NULL, id int PRIMARY KEY)');
    await sql(s, "INSERT INTO widgets VALUES ('j', 10), ('k', 11)");
    await sql(s, 'COMMIT');
    await placedByKey('widgets', 'id');
    expect((await sql(s, 'SELECT id FROM widgets ORDER BY id')).rows).toEqual([['10'], ['11']]);
    await s.close();
  });

  it('runs CREATE INDEX CONCURRENTLY and VACUUM on every shard outside a transaction; 25001 inside one', async () => {
    const s = fresh();
    expect((await sql(s, 'CREATE INDEX CONCURRENTLY users_name_idx ON users (name)')).tag).toBe('CREATE INDEX');
    expect(await everywhere("SELECT indexname FROM pg_indexes WHERE indexname = 'users_name_idx'")).toEqual([['users_name_idx'], ['users_name_idx'], ['users_name_idx']]);
    expect((await sql(s, 'VACUUM users')).tag).toBe('VACUUM');
    await sql(s, 'BEGIN');
    expect(await failCode(sql(s, 'DROP INDEX CONCURRENTLY users_name_idx'))).toBe('25001');
    await sql(s, 'ROLLBACK');
    expect((await sql(s, 'DROP INDEX CONCURRENTLY users_name_idx')).tag).toBe('DROP INDEX');
    expect(await everywhere("SELECT indexname FROM pg_indexes WHERE indexname = 'users_name_idx'")).toEqual([]);
    await s.close();
  });

  it('refuses a temporary table in a transaction writing two shards at the point of use; keeps it working on one', async () => {
    const s = fresh();
    await sql(s, 'BEGIN');
    await sql(s, 'CREATE TEMP TABLE scratch (id int)');
    await sql(s, 'INSERT INTO scratch VALUES (1)');
    // users 3 lives on s0, the default shard, like the temporary table.
    await sql(s, "UPDATE users SET name = 'temp ok' WHERE id = 3");
    expect(await failCode(sql(s, "UPDATE users SET name = 'refused' WHERE id = 1"))).toBe('0A000');
    expect((await sql(s, 'COMMIT')).tag).toBe('ROLLBACK');

    await sql(s, 'BEGIN');
    await sql(s, 'CREATE TEMP TABLE scratch2 (id int)');
    await sql(s, "UPDATE users SET name = 'temp ok' WHERE id = 3");
    expect((await sql(s, 'COMMIT')).tag).toBe('COMMIT');
    expect((await sql(s, 'SELECT name FROM users WHERE id = 3')).rows).toEqual([['temp ok']]);
    expect(await everywhere('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    await s.close();
  });

  it('commits a two-shard write with LISTEN on a read-only shard, and refuses making that shard a writer', async () => {
    const s = fresh();
    await sql(s, 'BEGIN');
    await sql(s, "UPDATE users SET score = 1 WHERE id = 1");
    await sql(s, "UPDATE users SET score = 2 WHERE id = 2");
    await sql(s, 'LISTEN sg_channel');
    expect((await sql(s, 'COMMIT')).tag).toBe('COMMIT');
    expect((await sql(s, 'SELECT id, score FROM users WHERE id IN (1, 2) ORDER BY id')).rows).toEqual([
      ['1', '1'],
      ['2', '2'],
    ]);
    await sql(s, 'BEGIN');
    await sql(s, "UPDATE users SET score = 5 WHERE id = 1");
    await sql(s, 'LISTEN sg_channel');
    expect(await failCode(sql(s, "UPDATE users SET score = 6 WHERE id = 3"))).toBe('0A000');
    expect((await sql(s, 'ROLLBACK')).tag).toBe('ROLLBACK');
    expect(await everywhere('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    await s.close();
  });
});
