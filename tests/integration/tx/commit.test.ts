import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Failpoints, parsePreparedGid, type TransactionManager } from '../../../src/tx/index.js';
import type { PgConnection, PgSource } from './pg-connection.js';
import { TestShards } from './shards.js';

const s0 = shardName('s0');
const s1 = shardName('s1');
const s2 = shardName('s2');

describe('commit', () => {
  let shards: TestShards;
  let source: PgSource;
  let failpoints: Failpoints;
  let tm: TransactionManager<PgConnection>;

  beforeAll(async () => {
    shards = await TestShards.start(3);
    source = shards.source();
    failpoints = new Failpoints();
    tm = shards.manager({ source, failpoints, prepareTimeoutMs: 1_000 });
    await tm.start();
  });
  afterAll(async () => {
    await tm?.stop();
    await shards?.destroy();
  });
  beforeEach(async () => {
    failpoints.set([]);
    await shards.each('DELETE FROM account');
  });

  async function write(tx: ReturnType<typeof tm.begin>, shard: typeof s0, id: number): Promise<void> {
    const conn = await tx.participant(shard);
    await conn.rows('INSERT INTO account (id, balance) VALUES ($1, 100)', [String(id)]);
    tx.markWritten(shard);
  }

  it('creates the decision table on every shard, idempotently', async () => {
    await Promise.all([tm.start(), shards.manager({ coordinatorId: 'gw2' }).start()]);
    for (const s of ['s0', 's1', 's2']) expect(await shards.decisions(s)).toEqual([]);
    await tm.stop();
    await tm.start();
  });

  it('commits a read-only transaction on every shard with plain COMMIT', async () => {
    const tx = tm.begin({ beginSql: 'BEGIN ISOLATION LEVEL REPEATABLE READ' });
    const [a, b] = await Promise.all([tx.participant(s0), tx.participant(s1)]);
    expect(await a.rows('SHOW transaction_isolation')).toEqual([['repeatable read']]);
    expect(await b.rows("SELECT current_setting('application_name')")).toEqual([[tx.id]]);
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.state).toBe('committed');
    expect(tx.gid).toBeUndefined();
    expect(source.inUse()).toBe(0);
  });

  it('commits one written shard without two-phase commit', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await (await tx.participant(s1)).rows('SELECT count(*) FROM account');
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.gid).toBeUndefined();
    expect(await shards.ids('s0')).toEqual([1]);
    for (const s of ['s0', 's1', 's2']) expect(await shards.decisions(s)).toEqual([]);
    expect(await shards.prepared()).toEqual([]);
    expect(source.inUse()).toBe(0);
  });

  it('commits three written shards with two-phase commit and a decision row on the anchor, the shard first written last', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await write(tx, s1, 2);
    await write(tx, s2, 3);
    await (await tx.participant(s0)).rows('SELECT 1');
    expect(await tx.commit()).toBe('COMMIT');
    const gid = tx.gid!;
    expect(gid.startsWith(`sg_gw1_s2_`)).toBe(true);
    expect(await shards.decisions('s2')).toEqual([{ gid, outcome: 'commit' }]);
    expect(await shards.decisions('s0')).toEqual([]);
    expect(await shards.decisions('s1')).toEqual([]);
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[1], [2], [3]]);
    expect(await shards.prepared()).toEqual([]);
    expect(source.inUse()).toBe(0);
  });

  it('rolls back every shard when a statement fails on the second shard (23505), then reports ROLLBACK', async () => {
    await shards.query('s1', 'INSERT INTO account VALUES (2, 0)');
    const tx = tm.begin({});
    await write(tx, s0, 1);
    const err = await write(tx, s1, 2).catch((e: unknown) => e);
    expect((err as PgError).code).toBe('23505');
    tx.fail(err as PgError);
    expect(tx.state).toBe('failed');
    await expect(tx.participant(s2)).rejects.toMatchObject({ code: '25P02' });
    expect(await tx.commit()).toBe('ROLLBACK');
    expect(tx.state).toBe('rolledBack');
    expect(await shards.ids('s0')).toEqual([]);
    expect(source.inUse()).toBe(0);
  });

  it('rolls back everything when PREPARE fails on one shard (deferred unique constraint)', async () => {
    await shards.query('s2', 'ALTER TABLE account ADD CONSTRAINT balance_once UNIQUE (balance) DEFERRABLE INITIALLY DEFERRED');
    try {
      const tx = tm.begin({});
      await write(tx, s0, 1);
      await write(tx, s2, 3);
      await write(tx, s2, 4); // same balance: fails only at PREPARE
      await write(tx, s1, 2); // written last: the anchor, so s2 is prepared
      await expect(tx.commit()).rejects.toMatchObject({ code: '23505', shard: 's2' });
      expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[], [], []]);
      expect(await shards.prepared()).toEqual([]);
      expect(source.inUse()).toBe(0);
    } finally {
      await shards.query('s2', 'ALTER TABLE account DROP CONSTRAINT balance_once');
    }
  });

  it('rolls back a savepoint on a shard first touched after it', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await tx.savepoint('a');
    await write(tx, s1, 2);
    await write(tx, s0, 3);
    await tx.rollbackTo('a');
    await write(tx, s2, 4);
    expect(await tx.commit()).toBe('COMMIT');
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[1], [], [4]]);
  });

  it('leaves the failed state with ROLLBACK TO, and keeps savepoint names PostgreSQL-exact', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await tx.savepoint('Before Two');
    await tx.savepoint('inner');
    await tx.release('inner');
    await expect(tx.rollbackTo('inner')).rejects.toMatchObject({ code: '3B001' });
    expect(tx.state).toBe('failed');
    await tx.rollbackTo('Before Two');
    expect(tx.state).toBe('active');
    await write(tx, s1, 2);
    const err = await write(tx, s1, 2).catch((e: unknown) => e);
    tx.fail(err as PgError);
    await expect(tx.savepoint('x')).rejects.toMatchObject({ code: '25P02' });
    await tx.rollbackTo('Before Two');
    await write(tx, s2, 3);
    expect(await tx.commit()).toBe('COMMIT');
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[1], [], [3]]);
  });

  it('rolls back everywhere on rollback()', async () => {
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await write(tx, s1, 2);
    await tx.rollback();
    expect(tx.state).toBe('rolledBack');
    expect([await shards.ids('s0'), await shards.ids('s1')]).toEqual([[], []]);
    expect(source.inUse()).toBe(0);
  });

  it('fails with 57014 and rolls back every shard when PREPARE outlasts the prepare timeout (a slow deferred trigger, cancelled)', async () => {
    await shards.query(
      's1',
      `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
       CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON account DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow()`,
    );
    try {
      const tx = tm.begin({});
      await write(tx, s0, 1);
      await write(tx, s1, 2);
      await write(tx, s2, 3);
      await expect(tx.commit()).rejects.toMatchObject({ code: '57014' });
      expect(tx.state).toBe('rolledBack');
      expect(await shards.prepared()).toEqual([]);
      expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[], [], []]);
      expect(source.inUse()).toBe(0);
      const busy = await shards.query('s1', "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'PREPARE TRANSACTION%' AND state = 'active'");
      expect(busy[0]!.n).toBe(0);
    } finally {
      await shards.query('s1', 'DROP TRIGGER slow ON account; DROP FUNCTION slow()');
    }
  });

  it('fails with 57014 when a failpoint delays the prepare phase past its deadline; what prepared is rolled back', async () => {
    failpoints.set([{ name: 'after-prepare', action: { kind: 'delay', ms: 1_500 }, shard: 's2' }]);
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await write(tx, s2, 3);
    await write(tx, s1, 2); // the anchor: s2 is prepared
    await expect(tx.commit()).rejects.toMatchObject({ code: '57014' });
    expect(await shards.prepared()).toEqual([]);
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[], [], []]);
    expect(source.inUse()).toBe(0);
  });

  it.each(['before-prepare', 'after-prepare', 'before-decision'] as const)('rolls back everything when %s fails', async (name) => {
    failpoints.set([{ name, action: { kind: 'error' }, ...(name === 'before-decision' ? {} : { shard: 's1' }) }]);
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await write(tx, s1, 2);
    await write(tx, s2, 3);
    await expect(tx.commit()).rejects.toBeInstanceOf(PgError);
    expect(await shards.prepared()).toEqual([]);
    expect([await shards.ids('s0'), await shards.ids('s1'), await shards.ids('s2')]).toEqual([[], [], []]);
    expect(source.inUse()).toBe(0);
  });

  it('reports COMMIT when only COMMIT PREPARED is held back (after-decision), and finishes it in the background', async () => {
    failpoints.set([{ name: 'after-decision', action: { kind: 'error' } }]);
    const tx = tm.begin({});
    await write(tx, s1, 2);
    await write(tx, s0, 1); // the anchor: committed with the decision
    expect(await tx.commit()).toBe('COMMIT');
    expect(await shards.ids('s0')).toEqual([1]);
    await tm.stop(); // waits for the background COMMIT PREPARED
    await tm.start();
    expect(await shards.prepared()).toEqual([]);
    expect(await shards.ids('s1')).toEqual([2]);
  });

  it('collects decision rows: commit rows once no participant holds the branch, abort rows after retention', async () => {
    const { collectDecisions } = await import('../../../src/tx/recovery.js');
    await shards.each('DELETE FROM shardgate.tx_decision');
    const tx = tm.begin({});
    await write(tx, s1, 2);
    await write(tx, s0, 1); // the anchor: its decision row is on s0
    await tx.commit();
    // A commit row whose participant still holds its branch must stay.
    const held = 'sg_gw1_s0_zzzzz1_s1';
    await shards.query('s1', `BEGIN; INSERT INTO account VALUES (9, 0); PREPARE TRANSACTION '${held}'`);
    await shards.query('s0', "INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES ('sg_gw1_s0_zzzzz1', 'commit', '{s1}'), ('sg_gw1_s0_zzzzz2', 'abort', '{s2}')");
    const ctx = { source, acquireTimeoutMs: 1_000, failpoints, log: () => undefined };
    expect(await collectDecisions(ctx, 3_600_000, 0)).toBe(1);
    expect((await shards.decisions('s0')).map((d) => d.gid)).toEqual(['sg_gw1_s0_zzzzz1', 'sg_gw1_s0_zzzzz2']);
    expect(await collectDecisions(ctx, 0, 0)).toBe(1);
    await shards.query('s1', `COMMIT PREPARED '${held}'`);
    expect(await collectDecisions(ctx, 0, 0)).toBe(1);
    expect(await shards.decisions('s0')).toEqual([]);
  });

  it('gives each branch its own prepared identifier, so two shards can be databases of one cluster', async () => {
    const cluster = shards.cluster('s0');
    await cluster.query('CREATE DATABASE app2');
    await cluster.query('CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL)', [], 'app2');
    const { PgSource: Source } = await import('./pg-connection.js');
    const same = new Source({ a: cluster.url('app'), b: cluster.url('app2') });
    const local = shards.manager({ coordinatorId: 'gw9', source: same });
    await local.start();
    try {
      const tx = local.begin({});
      for (const [shard, id] of [['b', 2], ['a', 1]] as const) {
        const conn = await tx.participant(shardName(shard));
        await conn.rows('INSERT INTO account VALUES ($1, 0)', [String(id)]);
        tx.markWritten(shardName(shard));
      }
      expect(await tx.commit()).toBe('COMMIT');
      expect(parsePreparedGid(`${tx.gid}_b`)?.anchor).toBe('a');
      expect(await cluster.query('SELECT id FROM account', [], 'app2')).toEqual([{ id: 2 }]);
    } finally {
      await local.stop();
      await same.close();
    }
  });
});
