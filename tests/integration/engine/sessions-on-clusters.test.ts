import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, sql } from './engine-fixture.js';

describe('sessions on real shards: transactions, COPY, settings', () => {
  let shards: PgCluster[];
  let engine: Engine;
  let session: Session;

  const everywhere = async (text: string): Promise<(string | null)[][]> => (await Promise.all(shards.map((c) => direct(c, text)))).flat();
  const failCode = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'no error',
      (e: unknown) => (e as { code?: string }).code ?? String(e),
    );

  beforeAll(async () => {
    shards = await startClusters(3, { databases: ['app'] });
    engine = await openClusterEngine(clusterConfig(shards));
    const s = engine.session({ user: 'app', database: 'app' });
    await sql(s, 'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, country text, score int, born date)');
    await sql(s, "INSERT INTO users (id, name, born) VALUES (1, 'a', '2000-01-02'), (2, 'b', '2001-02-03'), (3, 'c', '2002-03-04')");
    await s.close();
  });

  afterAll(async () => {
    await engine?.close();
    await Promise.all((shards ?? []).map((c) => c.destroy()));
  });

  it('commits a BEGIN … COMMIT block that wrote two shards on both', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    await sql(session, 'BEGIN');
    await sql(session, 'UPDATE users SET score = 10 WHERE id = 1');
    await sql(session, 'UPDATE users SET score = 20 WHERE id = 2');
    expect(session.txStatus).toBe('T');
    expect((await sql(session, 'COMMIT')).tag).toBe('COMMIT');
    expect((await everywhere('SELECT id, score FROM users WHERE score IS NOT NULL ORDER BY id')).sort()).toEqual([
      ['1', '10'],
      ['2', '20'],
    ]);
    expect(await everywhere('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    await session.close();
  });

  it('leaves nothing behind after ROLLBACK, and after an error 25P02 until ROLLBACK', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    await sql(session, 'BEGIN');
    await sql(session, "INSERT INTO users (id, name) VALUES (10, 'x'), (11, 'y'), (12, 'z')");
    await sql(session, 'ROLLBACK');
    expect(await everywhere('SELECT id FROM users WHERE id >= 10')).toEqual([]);

    await sql(session, 'BEGIN');
    await sql(session, "INSERT INTO users (id, name) VALUES (13, 'x')");
    expect(await failCode(sql(session, "INSERT INTO users (id, name) VALUES (1, 'dup')"))).toBe('23505');
    expect(session.txStatus).toBe('E');
    expect(await failCode(sql(session, 'SELECT 1'))).toBe('25P02');
    expect((await sql(session, 'COMMIT')).tag).toBe('ROLLBACK');
    expect(await everywhere('SELECT id FROM users WHERE id >= 10')).toEqual([]);
    await session.close();
  });

  it('rolls back to a savepoint on every shard, including one that joined after it', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    await sql(session, 'BEGIN');
    await sql(session, "INSERT INTO users (id, name) VALUES (21, 'keep')");
    await sql(session, 'SAVEPOINT sp');
    await sql(session, "INSERT INTO users (id, name) VALUES (22, 'drop'), (24, 'drop')");
    await sql(session, 'ROLLBACK TO SAVEPOINT sp');
    await sql(session, 'COMMIT');
    expect(await everywhere('SELECT id FROM users WHERE id > 20')).toEqual([['21']]);
    await session.close();
  });

  it('routes COPY FROM STDIN rows to the shards an INSERT would use', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    const lines = Array.from({ length: 30 }, (_, i) => `${100 + i}\tcopied ${i}\t\\N\n`).join('');
    let tag = '';
    for await (const ev of session.execute({ sql: 'COPY users (id, name, country) FROM STDIN' })) {
      if (ev.kind === 'copyIn') {
        await ev.sink.write(Buffer.from(lines.slice(0, 101)));
        await ev.sink.write(Buffer.from(lines.slice(101)));
        await ev.sink.end();
      } else if (ev.kind === 'complete') tag = ev.tag;
    }
    expect(tag).toBe('COPY 30');
    // Each row is found by a key lookup, which the planner sends to one shard only.
    for (const id of [100, 107, 115, 129]) expect((await sql(session, `SELECT name FROM users WHERE id = ${id}`)).rows).toEqual([[`copied ${id - 100}`]]);
    const perShard = await Promise.all(shards.map((c) => direct(c, 'SELECT count(*) FROM users WHERE id >= 100')));
    expect(perShard.map((r) => Number(r[0]![0])).every((n) => n > 0)).toBe(true);
    await session.close();
  });

  it('streams COPY TO STDOUT from every shard', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    const chunks: Buffer[] = [];
    let tag = '';
    for await (const ev of session.execute({ sql: 'COPY users (id) TO STDOUT' })) {
      if (ev.kind === 'copyData') chunks.push(ev.data);
      else if (ev.kind === 'complete') tag = ev.tag;
    }
    const ids = Buffer.concat(chunks).toString().trim().split('\n').map(Number).sort((a, b) => a - b);
    expect(ids).toEqual((await everywhere('SELECT id FROM users')).map((r) => Number(r[0])).sort((a, b) => a - b));
    expect(tag).toBe(`COPY ${ids.length}`);
    await session.close();
  });

  it('applies a session setting on every shard it reads from', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    const set = [];
    for await (const ev of session.execute({ sql: "SET DateStyle = 'German'" })) set.push(ev);
    expect(set).toContainEqual({ kind: 'parameterStatus', name: 'DateStyle', value: 'German, DMY' });
    const rows = (await sql(session, 'SELECT id, born FROM users WHERE id <= 3 ORDER BY id')).rows;
    expect(rows).toEqual([
      ['1', '02.01.2000'],
      ['2', '03.02.2001'],
      ['3', '04.03.2002'],
    ]);
    await session.close();
    // Another session on the same pooled connections sees the server default again.
    const other = engine.session({ user: 'app', database: 'app' });
    expect((await sql(other, 'SELECT born FROM users WHERE id = 1')).rows).toEqual([['2000-01-02']]);
    await other.close();
  });

  it('describes a parameterized statement on a shard', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    const d = await session.describe('SELECT id, name FROM users WHERE id = $1');
    expect(d.paramTypes).toEqual([23]);
    expect(d.fields?.map((f) => [f.name, f.typeOid])).toEqual([
      ['id', 23],
      ['name', 25],
    ]);
    await session.close();
  });

  it('cancels a statement running on several shards with 57014', async () => {
    session = engine.session({ user: 'app', database: 'app' });
    const running = sql(session, 'SELECT pg_sleep(30) FROM users');
    const code = failCode(running);
    // Cancel once the shards are busy with it.
    for (let i = 0; i < 100; i++) {
      const busy = await Promise.all(shards.map((c) => direct(c, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'")));
      if (busy.every((r) => r[0]![0] !== '0')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await session.cancel();
    expect(await code).toBe('57014');
    await session.close();
  });
});
