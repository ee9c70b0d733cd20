import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createConnector, type BackendConnector } from '../../../src/backend/connector.js';
import { TcpTransport } from '../../../src/backend/tcp-transport.js';
import { shardName, type ShardName } from '../../../src/config/names.js';
import type { ShardCursor } from '../../../src/engine/shard-cursor.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Failpoints, TransactionManager } from '../../../src/tx/index.js';
import { TestShards } from './shards.js';
import { connectorConfig } from '../../harness/connector-config.js';

const s0 = shardName('s0');
const s1 = shardName('s1');
const s2 = shardName('s2');

function managerOver(connector: BackendConnector): TransactionManager<ShardCursor> {
  return new TransactionManager<ShardCursor>({
    coordinatorId: 'gw1',
    source: connector,
    prepareTimeoutMs: 2_000,
    acquireTimeoutMs: 5_000,
    recoveryIntervalMs: 0,
    deadlockCheckMs: 0,
    failpoints: new Failpoints(),
  });
}

type Tx = ReturnType<TransactionManager<ShardCursor>['begin']>;

async function write(tx: Tx, shard: ShardName, id: number): Promise<void> {
  const conn = await tx.participant(shard);
  tx.markWritten(shard);
  await conn.rows('INSERT INTO account (id, balance) VALUES ($1, 100)', [String(id)]);
}

async function errorOf(p: Promise<unknown>): Promise<PgError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error('expected a PgError');
}

describe('pipelined join over networked shards', () => {
  let shards: TestShards;
  let connector: BackendConnector;
  let tm: TransactionManager<ShardCursor>;
  /** Writes to any shard: one per round trip. */
  const sends = vi.spyOn(TcpTransport.prototype, 'send');

  beforeAll(async () => {
    shards = await TestShards.start(3);
    connector = await createConnector(connectorConfig(Object.entries(shards.urls).map(([name, url]) => ({ kind: 'postgres' as const, name: shardName(name), url }))));
    tm = managerOver(connector);
    await tm.start();
  });
  afterAll(async () => {
    sends.mockRestore();
    await tm?.stop();
    await connector?.close();
    await shards?.destroy();
  });
  beforeEach(async () => {
    await shards.each('DELETE FROM account');
  });

  const inUse = (): number => [...connector.stats().values()].reduce((n, s) => n + s.inUse, 0);

  it('sends BEGIN with the first statement, which runs inside the transaction (a rollback undoes it)', async () => {
    const tx = tm.begin({});
    const before = sends.mock.calls.length;
    const conn = await tx.participant(s0);
    expect(sends.mock.calls.length).toBe(before);
    await conn.rows('INSERT INTO account (id, balance) VALUES (1, 100)');
    expect(sends.mock.calls.length).toBe(before + 1);
    expect(conn.txStatus).toBe('T');
    expect(await conn.rows("SELECT current_setting('application_name')")).toEqual([[tx.id]]);
    await tx.rollback();
    expect(await shards.ids('s0')).toEqual([]);
    expect(inUse()).toBe(0);
  });

  it('does not run the statement when BEGIN fails, and the transaction only rolls back', async () => {
    const tx = tm.begin({ beginSql: 'BEGIN ISOLATION LEVEL bogus' });
    const conn = await tx.participant(s0);
    expect((await errorOf(conn.rows('INSERT INTO account (id, balance) VALUES (1, 100)'))).code).toBe('42601');
    expect(tx.state).toBe('failed');
    // Not run outside the transaction either (it would have committed on its own).
    expect(await shards.ids('s0')).toEqual([]);
    expect(await tx.commit()).toBe('ROLLBACK');
    expect(inUse()).toBe(0);
  });

  it('commits and rolls back a joined shard that got no statement without a round trip, and its connection goes back clean', async () => {
    for (const end of ['commit', 'rollback'] as const) {
      const tx = tm.begin({});
      await write(tx, s0, 1);
      await tx.participant(s1);
      const before = sends.mock.calls.length;
      if (end === 'commit') expect(await tx.commit()).toBe('COMMIT');
      else await tx.rollback();
      // One COMMIT or ROLLBACK, on s0 only; no 2PC although s1 joined.
      expect(sends.mock.calls.length - before).toBe(1);
      expect(tx.gid).toBeUndefined();
      expect(inUse()).toBe(0);
      expect(await shards.ids('s0')).toEqual(end === 'commit' ? [1] : []);
      await shards.each('DELETE FROM account');
    }
    // Every s1 connection is idle and runs the next statement outside any transaction: nothing queued was kept.
    const leases = await Promise.all([0, 1, 2, 3].map(() => connector.acquire(s1, 1_000)));
    for (const lease of leases) {
      expect(lease.txStatus).toBe('I');
      await lease.exec('SELECT 1');
      expect(lease.txStatus).toBe('I');
    }
    for (const lease of leases) lease.release();
  });

  it('re-creates the savepoints on a shard joined after them, so ROLLBACK TO undoes its statements', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await tx.savepoint('a');
    await write(tx, s1, 2);
    await tx.participant(s2); // joined, nothing sent yet
    await tx.savepoint('b');
    await write(tx, s1, 3);
    await write(tx, s2, 4);
    await tx.rollbackTo('b');
    await write(tx, s2, 5);
    await tx.rollbackTo('a');
    await write(tx, s2, 6);
    expect(await tx.commit()).toBe('COMMIT');
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[1], [], [6]]);
    expect(await shards.prepared()).toEqual([]);
  });

  it('begins afresh at ROLLBACK TO a shard whose BEGIN failed', async () => {
    // A connection left in a failed transaction block: its queued BEGIN fails with 25P02.
    const tx = tm.begin({
      setup: async (conn) => {
        if (conn.shard !== s1) return;
        await conn.exec('BEGIN');
        await conn.exec('SELECT 1/0').catch(() => undefined);
      },
    });
    await write(tx, s0, 1);
    await tx.savepoint('a');
    expect((await errorOf(write(tx, s1, 2))).code).toBe('25P02');
    expect(tx.state).toBe('failed');
    await tx.rollbackTo('a');
    await write(tx, s1, 3);
    expect(await tx.commit()).toBe('COMMIT');
    expect([await shards.ids('s0'), await shards.ids('s1')]).toEqual([[1], [3]]);
    expect(inUse()).toBe(0);
  });

  it('commits atomically with two-phase commit, each shard costing one write for its first statement', async () => {
    const tx = tm.begin({});
    const before = sends.mock.calls.length;
    await write(tx, s0, 1);
    await write(tx, s1, 2);
    await write(tx, s2, 3);
    expect(sends.mock.calls.length - before).toBe(3);
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.gid).toBeDefined();
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[1], [2], [3]]);
    // The anchor is the writer first written last: s2 holds the decision.
    expect((await shards.decisions('s2')).filter((d) => d.gid === tx.gid)).toEqual([{ gid: tx.gid, outcome: 'commit' }]);
    expect(await shards.prepared()).toEqual([]);
    expect(inUse()).toBe(0);
  });

  it('rolls back every shard when one statement fails after a pipelined join', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await write(tx, s1, 2);
    expect((await errorOf(write(tx, s2, 2).then(() => write(tx, s2, 2)))).code).toBe('23505');
    tx.fail(new PgError({ severity: 'ERROR', code: '23505', message: 'duplicate' }));
    expect(await tx.commit()).toBe('ROLLBACK');
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[], [], []]);
    expect(inUse()).toBe(0);
  });
});

describe('pipelined join over embedded shards', () => {
  let root: string;
  let connector: BackendConnector;
  let tm: TransactionManager<ShardCursor>;
  const e0 = shardName('e0');
  const e1 = shardName('e1');

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shardgate-pipelined-'));
    connector = await createConnector(connectorConfig([e0, e1].map((name) => ({ kind: 'embedded' as const, name, dir: join(root, name) }))));
    for (const shard of [e0, e1]) {
      const lease = await connector.acquire(shard, 5_000);
      await lease.exec('CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL)');
      lease.release();
    }
    tm = managerOver(connector);
    await tm.start();
  });
  afterAll(async () => {
    await tm?.stop();
    await connector?.close();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  async function ids(shard: ShardName): Promise<string[]> {
    const lease = await connector.acquire(shard, 5_000);
    try {
      return (await lease.rows('SELECT id FROM account ORDER BY id')).map((r) => r[0]!);
    } finally {
      lease.release();
    }
  }

  it('runs the first statement inside the transaction, skips it when BEGIN fails, and commits with 2PC', async () => {
    const undone = tm.begin({});
    await write(undone, e0, 1);
    await undone.rollback();
    expect(await ids(e0)).toEqual([]);

    const bad = tm.begin({ beginSql: 'BEGIN ISOLATION LEVEL bogus' });
    expect((await errorOf(write(bad, e0, 2))).code).toBe('42601');
    expect(await bad.commit()).toBe('ROLLBACK');
    expect(await ids(e0)).toEqual([]);

    const tx = tm.begin({});
    await write(tx, e0, 3);
    await tx.savepoint('a');
    await write(tx, e1, 4);
    await write(tx, e1, 5);
    await tx.rollbackTo('a');
    await write(tx, e1, 6);
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.gid).toBeDefined();
    expect([await ids(e0), await ids(e1)]).toEqual([['3'], ['6']]);
  });
});
