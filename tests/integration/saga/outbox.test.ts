import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRelay, ensureOutboxTables, inbox, writeOutbox } from '../../../src/saga/outbox.js';
import { natsJetStreamSink, rabbitMqSink } from '../../../src/messaging/broker-sinks.js';
import { PgCluster } from '../../harness/cluster.js';

// The brokers run on this machine (NATS JetStream on 4222, RabbitMQ on 5672).
const NATS_URL = '127.0.0.1:4222';
const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

describe('transactional outbox to real brokers', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 4 });
    const c = await pool.connect();
    try {
      await ensureOutboxTables(c);
      await ensureOutboxTables(c);
    } finally {
      c.release();
    }
    await pool.query('CREATE TABLE orders (id text PRIMARY KEY)');
    await pool.query('CREATE TABLE handled (message_id text)');
  });

  afterAll(async () => {
    await pool?.end();
    await cluster?.destroy();
  });

  /** An order and its message in one local transaction, committed or rolled back. */
  async function placeOrder(topic: string, id: string, commit = true): Promise<string> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO orders VALUES ($1)', [id]);
      const msg = await writeOutbox(c, topic, { order: id });
      await c.query(commit ? 'COMMIT' : 'ROLLBACK');
      return msg;
    } finally {
      c.release();
    }
  }

  it('publishes committed messages to JetStream once acked, none of a rolled-back transaction, and survives a lost connection', async () => {
    const subject = `sg.outbox.${run}`;
    const stream = `SG_OUTBOX_${run}`;
    let nc: NatsConnection = await connect({ servers: NATS_URL });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [subject] });
    try {
      const m1 = await placeOrder(subject, `n1-${run}`);
      const m2 = await placeOrder(subject, `n2-${run}`);
      await placeOrder(subject, `n3-${run}`, false);
      expect(await new OutboxRelay({ pool, sink: natsJetStreamSink(nc.jetstream()) }).runOnce()).toBe(2);
      const stored = await Promise.all([1, 2].map((seq) => jsm.streams.getMessage(stream, { seq })));
      expect(stored.map((s) => s.header.get('Nats-Msg-Id'))).toEqual([m1, m2]);
      expect(stored.map((s) => s.json())).toEqual([{ order: `n1-${run}` }, { order: `n2-${run}` }]);
      expect((await jsm.streams.info(stream)).state.messages).toBe(2);

      // The broker connection is gone: the message stays unsent, with the error.
      const m4 = await placeOrder(subject, `n4-${run}`);
      const dead = nc.jetstream();
      await nc.close();
      await expect(new OutboxRelay({ pool, sink: natsJetStreamSink(dead) }).runOnce()).rejects.toThrow();
      const row = await pool.query('SELECT sent_at, attempts, last_error FROM shardgate_saga.outbox WHERE id = $1', [m4]);
      expect(row.rows[0]).toMatchObject({ sent_at: null, attempts: 1 });
      expect(row.rows[0]!.last_error).toEqual(expect.any(String));

      // Back: the next relay sends it, and only it.
      nc = await connect({ servers: NATS_URL });
      expect(await new OutboxRelay({ pool, sink: natsJetStreamSink(nc.jetstream()) }).runOnce()).toBe(1);
      const jsm2 = await nc.jetstreamManager();
      expect((await jsm2.streams.getMessage(stream, { seq: 3 })).header.get('Nats-Msg-Id')).toBe(m4);
      expect(await new OutboxRelay({ pool, sink: natsJetStreamSink(nc.jetstream()) }).runOnce()).toBe(0);
    } finally {
      const jsm3 = await nc.jetstreamManager().catch(() => undefined);
      await jsm3?.streams.delete(stream).catch(() => undefined);
      await nc.close().catch(() => undefined);
    }
  });

  it('publishes to RabbitMQ with confirms, and the inbox applies a redelivered message once', async () => {
    const queue = `sg-outbox-${run}`;
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createChannel();
      await ch.assertQueue(queue, { exclusive: true });
      const confirm = await conn.createConfirmChannel();
      const relay = new OutboxRelay({ pool, sink: rabbitMqSink(confirm) });
      const id = await placeOrder(queue, `r1-${run}`);
      expect(await relay.runOnce()).toBe(1);
      // A relay that died after the broker's confirm and before its commit publishes again.
      await pool.query('UPDATE shardgate_saga.outbox SET sent_at = NULL WHERE id = $1', [id]);
      expect(await relay.runOnce()).toBe(1);

      const handledNow: boolean[] = [];
      for (;;) {
        const msg = await ch.get(queue, { noAck: true });
        if (msg === false) break;
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          handledNow.push(await inbox(c, 'billing', String(msg.properties.messageId), async () => {
            await c.query('INSERT INTO handled VALUES ($1)', [msg.properties.messageId]);
          }));
          await c.query('COMMIT');
        } finally {
          c.release();
        }
      }
      expect(handledNow).toEqual([true, false]);
      expect((await pool.query('SELECT message_id FROM handled')).rows).toEqual([{ message_id: id }]);
    } finally {
      await conn.close();
    }
  });
});
