import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShardGate } from '../../../src/index.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';

describe('ShardGate library over PostgreSQL shards', () => {
  let clusters: PgCluster[];
  let gate: ShardGate;

  beforeAll(async () => {
    clusters = await startClusters(3, { databases: ['app'] });
    gate = await ShardGate.open({
      coordinatorId: 'lib1',
      shards: { s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app'), s2: clusters[2]!.url('app') },
      transactions: { recoveryIntervalMs: 0 },
      tables: { accounts: { key: 'id', algorithm: 'mod' }, copied: { key: 'id', algorithm: 'mod' } },
    });
    await gate.query('CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL, opened timestamptz, tags text[], meta jsonb)');
  });

  afterAll(async () => {
    await gate?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  /** Rows of a shard, read directly. */
  const onShard = (i: number, sql: string): Promise<Record<string, unknown>[]> => clusters[i]!.query(sql, [], 'app');

  it('inserts with JavaScript parameters and reads values back as node-pg would', async () => {
    const opened = new Date(Date.UTC(2026, 2, 4, 5, 6, 7));
    const ins = await gate.query('INSERT INTO accounts (id, owner, balance, opened, tags, meta) VALUES ($1, $2, $3, $4, $5, $6)', [
      1,
      'ann',
      100n,
      opened,
      ['a', 'b "c"'],
      { vip: true },
    ]);
    expect(ins.command).toBe('INSERT');
    expect(ins.rowCount).toBe(1);
    const res = await gate.query<{ id: number; owner: string; balance: string; opened: Date; tags: string[]; meta: unknown }>('SELECT * FROM accounts WHERE id = $1', [1]);
    expect(res.rows).toEqual([{ id: 1, owner: 'ann', balance: '100', opened, tags: ['a', 'b "c"'], meta: { vip: true } }]);
    expect(res.fields.map((f) => f.name)).toEqual(['id', 'owner', 'balance', 'opened', 'tags', 'meta']);
    expect(res.rowCount).toBe(1);
    expect(await onShard(1, 'SELECT id FROM accounts')).toEqual([{ id: 1 }]);
  });

  it('commits a cross-shard transfer in transaction() on both shards', async () => {
    await gate.query("INSERT INTO accounts (id, owner, balance) VALUES (2, 'bob', 50), (3, 'cy', 50)");
    const result = await gate.transaction(async (tx) => {
      await tx.query('UPDATE accounts SET balance = balance - 20 WHERE id = $1', [2]);
      await tx.query('UPDATE accounts SET balance = balance + 20 WHERE id = $1', [3]);
      return 'moved';
    });
    expect(result).toBe('moved');
    expect(await onShard(2, 'SELECT balance FROM accounts WHERE id = 2')).toEqual([{ balance: '30' }]);
    expect(await onShard(0, 'SELECT balance FROM accounts WHERE id = 3')).toEqual([{ balance: '70' }]);
    for (const c of clusters) expect(await c.query('SELECT gid FROM pg_prepared_xacts', [], 'app')).toEqual([]);
  });

  it('rolls back transaction() when the function throws, leaving nothing on any shard', async () => {
    const boom = new Error('changed my mind');
    await expect(
      gate.transaction(async (tx) => {
        await tx.query("INSERT INTO accounts (id, owner, balance) VALUES (10, 'x', 1)");
        await tx.query("INSERT INTO accounts (id, owner, balance) VALUES (11, 'y', 1)");
        await tx.query("INSERT INTO accounts (id, owner, balance) VALUES (12, 'z', 1)");
        throw boom;
      }),
    ).rejects.toBe(boom);
    for (let i = 0; i < 3; i++) expect(await onShard(i, 'SELECT id FROM accounts WHERE id >= 10')).toEqual([]);
  });

  it('rejects with the statement error and rolls back when a statement fails inside', async () => {
    await expect(
      gate.transaction(async (tx) => {
        await tx.query("INSERT INTO accounts (id, owner, balance) VALUES (20, 'x', 1)");
        await tx.query("INSERT INTO accounts (id, owner, balance) VALUES (1, 'dup', 1)");
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await onShard(2, 'SELECT id FROM accounts WHERE id = 20')).toEqual([]);
  });

  it('merges reads over every shard and runs several statements as one query', async () => {
    const res = await gate.query<{ id: number }>('SELECT id FROM accounts ORDER BY id DESC');
    expect(res.rows.map((r) => r.id)).toEqual([3, 2, 1]);
    const multi = await gate.query<{ n: string }>("INSERT INTO accounts (id, owner, balance) VALUES (30, 'm', 0); SELECT count(*) AS n FROM accounts");
    expect(multi.rows).toEqual([{ n: '4' }]);
  });

  it('copyFrom routes COPY rows by key, atomically in autocommit and inside transaction()', async () => {
    await gate.query('CREATE TABLE copied (id int PRIMARY KEY, note text)');
    const all = Array.from({ length: 300 }, (_, i) => `${i + 1},"n ${i + 1}, with ""quotes"""\n`).join('');
    // In pieces that cut rows in the middle.
    const pieces = async function* (): AsyncIterable<string> {
      for (let at = 0; at < all.length; at += 97) yield all.slice(at, at + 97);
    };
    expect(await gate.copyFrom('COPY copied (id, note) FROM STDIN WITH (FORMAT csv)', pieces())).toBe(300);
    const counts = await Promise.all([0, 1, 2].map((i) => onShard(i, 'SELECT count(*)::int AS n FROM copied')));
    expect(counts.map((c) => c[0]!.n)).toEqual([100, 100, 100]);
    expect((await gate.query('SELECT note FROM copied WHERE id = 7')).rows).toEqual([{ note: 'n 7, with "quotes"' }]);
    // A key already present: nothing of the copy is kept on any shard.
    await expect(gate.copyFrom('COPY copied FROM STDIN WITH (FORMAT csv)', '1000,a\n1001,b\n1002,c\n7,dup\n')).rejects.toMatchObject({ code: '23505' });
    // Inside a transaction: rolled back with it.
    await expect(
      gate.transaction(async (tx) => {
        expect(await tx.copyFrom('COPY copied FROM STDIN', '2000\tx\n2001\ty\n2002\tz\n')).toBe(3);
        expect((await tx.query('SELECT count(*)::int AS n FROM copied WHERE id >= 1000')).rows).toEqual([{ n: 3 }]);
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    // A source that fails midway aborts the copy.
    const failing = async function* (): AsyncIterable<string> {
      yield '3000,a\n3001,b\n';
      throw new Error('source broke');
    };
    await expect(gate.copyFrom('COPY copied FROM STDIN WITH (FORMAT csv)', failing())).rejects.toThrow('source broke');
    expect((await gate.query('SELECT count(*)::int AS n FROM copied WHERE id >= 1000')).rows).toEqual([{ n: 0 }]);
    await expect(gate.copyFrom('SELECT 1', 'x')).rejects.toMatchObject({ code: '0A000' });
    // The session still works after all of that.
    expect((await gate.query('SELECT count(*)::int AS n FROM copied')).rows).toEqual([{ n: 300 }]);
  });

  it('rejects queries after close', async () => {
    const other = await ShardGate.open({ shards: { s0: clusters[0]!.url('app') }, transactions: { recoveryIntervalMs: 0 } });
    await other.close();
    await expect(other.query('SELECT 1')).rejects.toMatchObject({ code: 'XX000' });
  });
});

describe('ShardGate library over embedded shards', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardgate-lib-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates, inserts and selects across two PGlite shards in a temporary folder', async () => {
    const gate = await ShardGate.open({
      shards: { e0: { embedded: join(dir, 'e0') }, e1: { embedded: join(dir, 'e1') } },
      transactions: { recoveryIntervalMs: 0 },
      tables: { items: { key: 'id', algorithm: 'mod' } },
    });
    try {
      await gate.query('CREATE TABLE items (id int PRIMARY KEY, label text)');
      await gate.query("INSERT INTO items (id, label) VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')");
      const res = await gate.query<{ id: number; label: string }>('SELECT id, label FROM items ORDER BY id');
      expect(res.rows).toEqual([
        { id: 1, label: 'one' },
        { id: 2, label: 'two' },
        { id: 3, label: 'three' },
        { id: 4, label: 'four' },
      ]);
      const one = await gate.query<{ n: string }>('SELECT count(*) AS n FROM items /* shardgate:shard=e1 */');
      expect(one.rows).toEqual([{ n: '2' }]);
      await gate.transaction(async (tx) => {
        await tx.query('UPDATE items SET label = upper(label) WHERE id = $1', [1]);
        await tx.query('UPDATE items SET label = upper(label) WHERE id = $1', [2]);
      });
      expect((await gate.query<{ label: string }>('SELECT label FROM items WHERE id IN (1, 2) ORDER BY id')).rows).toEqual([{ label: 'ONE' }, { label: 'TWO' }]);
    } finally {
      await gate.close();
    }
  });
});
