import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { Failpoints, type TransactionManager } from '../../../src/tx/index.js';
import { parseProm } from '../../unit/observe/prom-text.js';
import type { PgConnection, PgSource } from '../tx/pg-connection.js';
import { TestShards } from '../tx/shards.js';

const s0 = shardName('s0');
const s1 = shardName('s1');

/** The transaction manager reporting to Metrics: kinds and outcomes, phases, prepare timeouts, recovery decisions. */
describe('transaction manager observer', () => {
  let shards: TestShards;
  let source: PgSource;
  let failpoints: Failpoints;
  let tm: TransactionManager<PgConnection>;
  const metrics = new Metrics({ shards: ['s0', 's1'] });
  let before: Map<string, number>;
  const delta = async (series: string): Promise<number> => (parseProm(await metrics.text()).get(series) ?? 0) - (before.get(series) ?? 0);

  beforeAll(async () => {
    shards = await TestShards.start(2);
    source = shards.source();
    failpoints = new Failpoints();
    tm = shards.manager({ source, failpoints, prepareTimeoutMs: 500, observer: metrics });
    await tm.start();
  });
  afterAll(async () => {
    await tm?.stop();
    await shards?.destroy();
  });
  beforeEach(async () => {
    failpoints.set([]);
    await shards.each('DELETE FROM account');
    before = parseProm(await metrics.text());
  });

  async function write(tx: ReturnType<typeof tm.begin>, shard: typeof s0, id: number): Promise<void> {
    const conn = await tx.participant(shard);
    await conn.rows('INSERT INTO account (id, balance) VALUES ($1, 100)', [String(id)]);
    tx.markWritten(shard);
  }

  it('counts each ended transaction once, by kind and outcome, and times the 2PC phases', async () => {
    const local = tm.begin({});
    await (await local.participant(s0)).rows('SELECT 1');
    await local.commit();
    const one = tm.begin({});
    await write(one, s0, 1);
    await one.commit();
    const two = tm.begin({});
    await write(two, s0, 2);
    await write(two, s1, 3);
    await two.commit();
    const rolled = tm.begin({});
    await write(rolled, s0, 4);
    await write(rolled, s1, 5);
    await rolled.rollback();
    expect(await delta('shardgate_transactions_total{kind="local",outcome="commit"}')).toBe(1);
    expect(await delta('shardgate_transactions_total{kind="one_shard",outcome="commit"}')).toBe(1);
    expect(await delta('shardgate_transactions_total{kind="two_phase",outcome="commit"}')).toBe(1);
    expect(await delta('shardgate_transactions_total{kind="two_phase",outcome="rollback"}')).toBe(1);
    for (const phase of ['prepare', 'decision', 'commit_prepared']) expect(await delta(`shardgate_2pc_phase_duration_seconds_count{phase="${phase}"}`)).toBe(1);
    expect(await delta('shardgate_xa_timeout_total')).toBe(0);
  });

  it('counts a prepare timeout and the failed two-phase commit', async () => {
    failpoints.set([{ name: 'after-prepare', action: { kind: 'delay', ms: 900 } }]);
    const tx = tm.begin({});
    await write(tx, s0, 1);
    await write(tx, s1, 2);
    await expect(tx.commit()).rejects.toMatchObject({ code: '57014' });
    expect(await delta('shardgate_xa_timeout_total')).toBe(1);
    expect(await delta('shardgate_transactions_total{kind="two_phase",outcome="error"}')).toBe(1);
  });

  it('counts recovery decisions', async () => {
    // A branch of ours prepared with no decision row on its anchor s0: recovery aborts it.
    await shards.query('s1', "BEGIN; INSERT INTO account (id, balance) VALUES (9, 1); PREPARE TRANSACTION 'sg_gw9_s0_abc123_s1'");
    const decisions = await tm.recover({ graceMs: 0 });
    expect(decisions.map((d) => d.outcome)).toEqual(['abort']);
    expect(await delta('shardgate_recovery_decisions_total{outcome="abort"}')).toBe(1);
    expect(await shards.prepared()).toEqual([]);
  });
});
