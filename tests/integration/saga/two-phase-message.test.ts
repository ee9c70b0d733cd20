import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsJetStreamSink } from '../../../src/messaging/broker-sinks.js';
import { ensureOutboxTables, OutboxRelay } from '../../../src/saga/outbox.js';
import {
  backCheckOnce,
  cancelMessage,
  decisionBackCheck,
  ensureMessageDecisionTable,
  prepareMessage,
  recordMessageCommit,
  submitMessage,
} from '../../../src/saga/two-phase-message.js';
import { PgCluster } from '../../harness/cluster.js';

const NATS_URL = '127.0.0.1:4222';

/**
 * The outbox lives in database "app", the business change in database "shop":
 * no single local transaction can cover both, which is what the two-phase
 * message is for.
 */
describe('two-phase messages: prepared before the local transaction, resolved by submit or by the back-check', () => {
  let cluster: PgCluster;
  let outboxPool: pg.Pool;
  let shopPool: pg.Pool;
  let nc: NatsConnection;
  const run = randomUUID().slice(0, 8);
  const subject = `sg.msg.${run}`;
  const stream = `SG_MSG_${run}`;

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app', 'shop'] });
    outboxPool = new pg.Pool({ connectionString: cluster.url('app'), max: 4 });
    shopPool = new pg.Pool({ connectionString: cluster.url('shop'), max: 4 });
    for (const [pool, ensure] of [[outboxPool, ensureOutboxTables], [shopPool, ensureMessageDecisionTable]] as const) {
      const c = await pool.connect();
      await ensure(c).finally(() => c.release());
    }
    await shopPool.query('CREATE TABLE orders (id text PRIMARY KEY)');
    nc = await connect({ servers: NATS_URL });
    await (await nc.jetstreamManager()).streams.add({ name: stream, subjects: [subject] });
  });

  afterAll(async () => {
    await (await nc?.jetstreamManager().catch(() => undefined))?.streams.delete(stream).catch(() => undefined);
    await nc?.close();
    await outboxPool?.end();
    await shopPool?.end();
    await cluster?.destroy();
  });

  /** The business transaction in "shop": the order and the message's commit row, together; left open when `hold` is set. */
  async function placeOrder(id: string, messageId: string, end: 'commit' | 'rollback' | 'hold'): Promise<pg.PoolClient | null> {
    const c = await shopPool.connect();
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO orders VALUES ($1)', [id]);
      await recordMessageCommit(c, messageId);
    } catch (err) {
      await c.query('ROLLBACK');
      c.release();
      throw err;
    }
    if (end === 'hold') return c;
    await c.query(end === 'commit' ? 'COMMIT' : 'ROLLBACK');
    c.release();
    return null;
  }

  const state = async (id: string) => (await outboxPool.query<{ state: string; checks: number }>('SELECT state, checks FROM shardgate_saga.outbox WHERE id = $1', [id])).rows[0];
  const orders = async () => (await shopPool.query<{ id: string }>('SELECT id FROM orders ORDER BY id')).rows.map((r) => r.id);
  const stored = async (): Promise<string[]> => {
    const jsm = await nc.jetstreamManager();
    const n = (await jsm.streams.info(stream)).state.messages;
    return Promise.all(Array.from({ length: n }, async (_, i) => (await jsm.streams.getMessage(stream, { seq: i + 1 })).header.get('Nats-Msg-Id')));
  };

  it('publishes nothing while prepared, resolves every unknown outcome from the business database, and the fence keeps a late transaction from committing', async () => {
    const relay = new OutboxRelay({ pool: outboxPool, sink: natsJetStreamSink(nc.jetstream()), backCheck: { check: decisionBackCheck(shopPool), afterMs: 0 } });
    // 1. The normal path: prepare, business commit, submit.
    const submitted = await prepareMessage(outboxPool, subject, { order: 'o1' });
    expect(await relay.runOnce()).toBe(0);
    await placeOrder('o1', submitted, 'commit');
    expect(await submitMessage(outboxPool, submitted)).toBe(true);
    // 2. The process died after the business commit, before its submit.
    const orphanCommitted = await prepareMessage(outboxPool, subject, { order: 'o2' });
    await placeOrder('o2', orphanCommitted, 'commit');
    // 3. The business transaction rolled back and the process died before cancelling.
    const orphanRolledBack = await prepareMessage(outboxPool, subject, { order: 'o3' });
    await placeOrder('o3', orphanRolledBack, 'rollback');
    // 4. The process died before the business transaction even began.
    const neverStarted = await prepareMessage(outboxPool, subject, { order: 'o4' });
    // 5. An explicit cancel after a rollback.
    const cancelled = await prepareMessage(outboxPool, subject, { order: 'o5' });
    expect(await cancelMessage(outboxPool, cancelled)).toBe(true);

    expect(await relay.backCheckOnce()).toEqual({ committed: 1, cancelled: 2, unknown: 0 });
    expect(await state(orphanCommitted)).toEqual({ state: 'ready', checks: 1 });
    expect(await state(orphanRolledBack)).toEqual({ state: 'cancelled', checks: 1 });
    expect(await state(neverStarted)).toEqual({ state: 'cancelled', checks: 1 });
    // The one submitted normally was never asked about.
    expect(await state(submitted)).toEqual({ state: 'ready', checks: 0 });

    // A business transaction that starts after the back-check cancelled its message fails on the fence.
    const late = placeOrder('o4', neverStarted, 'commit');
    await expect(late).rejects.toMatchObject({ code: '23505' });
    expect(await submitMessage(outboxPool, neverStarted)).toBe(false);

    expect(await relay.runOnce()).toBe(2);
    expect(await relay.runOnce()).toBe(0);
    expect((await stored()).sort()).toEqual([submitted, orphanCommitted].sort());
    // Every published message's order exists; no cancelled message's order does.
    expect(await orders()).toEqual(['o1', 'o2']);
  });

  it('waits for a business transaction still deciding, and sees its outcome', async () => {
    const relay = new OutboxRelay({ pool: outboxPool, sink: natsJetStreamSink(nc.jetstream()), backCheck: { check: decisionBackCheck(shopPool), afterMs: 0 } });
    const id = await prepareMessage(outboxPool, subject, { order: 'o6' });
    const open = (await placeOrder('o6', id, 'hold'))!;
    const checking = relay.backCheckOnce();
    // The back-check's fence insert waits on the primary key held by the open transaction.
    for (;;) {
      const waiting = await shopPool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = 'shop' AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%message_decision%rollback%'`);
      if (waiting.rowCount === 1) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await open.query('COMMIT');
    open.release();
    expect(await checking).toEqual({ committed: 1, cancelled: 0, unknown: 0 });
    expect(await state(id)).toEqual({ state: 'ready', checks: 1 });
    expect(await relay.runOnce()).toBe(1);
  });

  it('asks only about messages prepared longer ago than afterMs, and keeps a failing callback\'s error with the message still prepared', async () => {
    const id = await prepareMessage(outboxPool, subject, { order: 'o7' });
    const patient = new OutboxRelay({ pool: outboxPool, sink: natsJetStreamSink(nc.jetstream()), backCheck: { check: decisionBackCheck(shopPool), afterMs: 3_600_000 } });
    expect(await patient.backCheckOnce()).toEqual({ committed: 0, cancelled: 0, unknown: 0 });
    expect(await state(id)).toEqual({ state: 'prepared', checks: 0 });

    const asked: string[] = [];
    const failing = await backCheckOnce(outboxPool, async (m) => {
      asked.push(m.id);
      throw new Error('inventory service unreachable');
    }, { afterMs: 0 });
    expect(failing).toEqual({ committed: 0, cancelled: 0, unknown: 1 });
    expect(asked).toEqual([id]);
    const row = (await outboxPool.query('SELECT state, checks, last_error FROM shardgate_saga.outbox WHERE id = $1', [id])).rows[0];
    expect(row).toEqual({ state: 'prepared', checks: 1, last_error: 'back-check failed: inventory service unreachable' });
    // An application's own callback (as DTM's HTTP back-check) decides as well.
    expect(await backCheckOnce(outboxPool, async () => 'rollback', { afterMs: 0 })).toEqual({ committed: 0, cancelled: 1, unknown: 0 });
    expect(await state(id)).toEqual({ state: 'cancelled', checks: 2 });
  });
});
