import { describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Failpoints, TransactionManager } from '../../../src/tx/index.js';
import { FakeSource, type FakeConnection } from './fake-connection.js';

const [s0, s1, s2] = ['s0', 's1', 's2'].map(shardName) as [ReturnType<typeof shardName>, ReturnType<typeof shardName>, ReturnType<typeof shardName>];

/** Connections that queue BEGIN … ahead of their next statement (as BackendConnection does). */
function setup(): { source: FakeSource; tm: TransactionManager<FakeConnection> } {
  const source = new FakeSource(['s0', 's1', 's2'], true);
  const tm = new TransactionManager<FakeConnection>({
    coordinatorId: 'gw1',
    source,
    prepareTimeoutMs: 1_000,
    acquireTimeoutMs: 100,
    recoveryIntervalMs: 0,
    deadlockCheckMs: 0,
    failpoints: new Failpoints(),
  });
  return { source, tm };
}

type Tx = ReturnType<TransactionManager<FakeConnection>['begin']>;

async function writeOn(tx: Tx, ...shards: (typeof s0)[]): Promise<void> {
  for (const s of shards) {
    // As the engine does: marked written once joined, before the statement runs.
    const conn = await tx.participant(s);
    tx.markWritten(s);
    await conn.exec('UPDATE t SET x = 1');
  }
}

const pgError = (code: string): PgError => new PgError({ severity: 'ERROR', code, message: code });

describe('GlobalTransaction with a pipelined join', () => {
  it('sends BEGIN, the application_name tag and the savepoints in the same write as the first statement', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({ beginSql: 'BEGIN ISOLATION LEVEL SERIALIZABLE' });
    await writeOn(tx, s0);
    await tx.savepoint('a"b');
    const conn = await tx.participant(s1);
    expect(source.on('s1')).toEqual([]);
    await conn.exec('UPDATE t SET x = 2');
    await conn.exec('UPDATE t SET x = 3');
    expect(source.on('s1')).toEqual([
      `BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL application_name = '${tx.id}'; SAVEPOINT "a""b"; UPDATE t SET x = 2`,
      'UPDATE t SET x = 3',
    ]);
    await tx.rollback();
    expect(source.inUse).toBe(0);
  });

  it('commits and rolls back a joined shard that got no statement without sending it anything', async () => {
    for (const end of ['commit', 'rollback'] as const) {
      const { source, tm } = setup();
      const tx = tm.begin({});
      await writeOn(tx, s0, s1);
      await tx.participant(s2);
      if (end === 'commit') expect(await tx.commit()).toBe('COMMIT');
      else await tx.rollback();
      expect(source.on('s2')).toEqual([]);
      expect(source.inUse).toBe(0);
      expect(source.broken).toBe(0);
    }
  });

  it('leaves an unused shard out of two-phase commit even when it was marked written', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s0);
    await tx.participant(s1);
    tx.markWritten(s1);
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.gid).toBeUndefined();
    expect(source.on('s0').at(-1)).toBe('COMMIT');
    expect(source.on('s1')).toEqual([]);
  });

  it('keeps the queued savepoints of an unused shard in step with SAVEPOINT, RELEASE and ROLLBACK TO', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s0);
    const conn = await tx.participant(s1);
    await tx.savepoint('a');
    await tx.savepoint('b');
    await tx.savepoint('c');
    await tx.release('c');
    await tx.rollbackTo('a');
    expect(source.on('s1')).toEqual([]);
    await conn.exec('UPDATE t SET x = 2');
    expect(source.on('s1')).toEqual([`BEGIN; SET LOCAL application_name = '${tx.id}'; SAVEPOINT "a"; UPDATE t SET x = 2`]);
    expect(source.on('s0').slice(1)).toEqual(['SAVEPOINT "a"', 'SAVEPOINT "b"', 'SAVEPOINT "c"', 'RELEASE SAVEPOINT "c"', 'ROLLBACK TO SAVEPOINT "a"']);
    expect(await tx.commit()).toBe('COMMIT');
  });

  it('fails the statement and the transaction when BEGIN fails, and closes that connection without ROLLBACK', async () => {
    const { source, tm } = setup();
    source.respond = (shard, sql) => {
      if (shard === s1 && sql.startsWith('BEGIN')) throw pgError('25001');
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s0);
    const conn = await tx.participant(s1);
    await expect(conn.exec('UPDATE t SET x = 2')).rejects.toMatchObject({ code: '25001' });
    expect(tx.state).toBe('failed');
    await expect(tx.participant(s2)).rejects.toMatchObject({ code: '25P02' });
    expect(await tx.commit()).toBe('ROLLBACK');
    expect(source.on('s0').at(-1)).toBe('ROLLBACK');
    expect(source.on('s1')).toHaveLength(1);
    expect(source.broken).toBe(1);
    expect(source.inUse).toBe(0);
  });

  it('begins a branch whose BEGIN failed afresh at ROLLBACK TO, with the savepoints up to the target', async () => {
    const { source, tm } = setup();
    let failBegin = true;
    source.respond = (shard, sql) => {
      if (shard === s1 && sql.startsWith('SET LOCAL') && failBegin) throw pgError('22023');
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s0);
    await tx.savepoint('a');
    await tx.savepoint('b');
    const conn = await tx.participant(s1);
    await expect(conn.exec('UPDATE t SET x = 2')).rejects.toMatchObject({ code: '22023' });
    expect(tx.state).toBe('failed');
    failBegin = false;
    await tx.rollbackTo('a');
    expect(tx.state).toBe('active');
    expect(source.on('s1').slice(1)).toEqual(['ROLLBACK']);
    const again = await tx.participant(s1);
    tx.markWritten(s1);
    await again.exec('UPDATE t SET x = 3');
    expect(source.on('s1').at(-1)).toBe(`BEGIN; SET LOCAL application_name = '${tx.id}'; SAVEPOINT "a"; UPDATE t SET x = 3`);
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.gid).toBeDefined();
    expect(source.broken).toBe(0);
    expect(source.inUse).toBe(0);
  });

  it('stays failed when the branch whose BEGIN failed cannot be rolled back', async () => {
    const { source, tm } = setup();
    source.respond = (shard, sql) => {
      if (shard === s1 && (sql.startsWith('BEGIN') || sql === 'ROLLBACK')) throw new PgError({ severity: 'ERROR', code: '08006', message: 'gone' });
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s0);
    await tx.savepoint('a');
    await expect((await tx.participant(s1)).exec('SELECT 1')).rejects.toMatchObject({ code: '08006' });
    await expect(tx.rollbackTo('a')).rejects.toMatchObject({ code: '08006' });
    expect(tx.state).toBe('failed');
    await tx.rollback();
    expect(source.broken).toBe(1);
    expect(source.inUse).toBe(0);
  });
});
