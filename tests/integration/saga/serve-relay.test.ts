import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import amqp from 'amqplib';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOutboxTables, writeOutbox } from '../../../src/saga/outbox.js';
import { prepareMessage } from '../../../src/saga/two-phase-message.js';
import { parseProm } from '../../unit/observe/prom-text.js';
import { freePort, PgCluster } from '../../harness/cluster.js';
import { startProxy, type RunningProxy } from '../../harness/proxy.js';
import { TcpGate } from '../../harness/tcp-gate.js';

// The brokers run on this machine; the relay reaches them through a gate the test closes and opens.
const NATS_PORT = 4222;
const AMQP_PORT = 5672;

/** Resolves once `cond` holds, checking every 50 ms (the test's own timeout bounds the wait). */
async function until(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 50));
}

describe('shardgate serve runs the outbox relay and the back-check from saga.relay, and its sink reconnects', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 4 });
    const c = await pool.connect();
    try {
      await ensureOutboxTables(c, 'relay_nats');
      await ensureOutboxTables(c, 'relay_amqp');
    } finally {
      c.release();
    }
  });

  afterAll(async () => {
    await pool?.end();
    await cluster?.destroy();
  });

  /** Writes messages `from`..`to`-1 on `topic` in one local transaction each. */
  const write = async (schema: string, topic: string, from: number, to: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let n = from; n < to; n++) ids.push(await writeOutbox(pool, topic, { n }, { schema }));
    return ids;
  };
  const unsent = async (schema: string, ids: readonly string[]) =>
    (await pool.query<{ id: string; attempts: number; last_error: string | null }>(`SELECT id, attempts, last_error FROM ${schema}.outbox WHERE id = ANY($1) AND sent_at IS NULL`, [ids])).rows;
  const metricsOf = async (admin: string) => parseProm(await (await fetch(`${admin}/metrics`)).text());

  /** Starts serve with the relay behind `gate`; the admin URL and the proxy. */
  async function serveRelay(schema: string, sink: object, extra: object = {}): Promise<{ proxy: RunningProxy; admin: string }> {
    const adminPort = await freePort();
    const proxy = await startProxy({
      auth: { users: [{ name: 'app', password: 'app' }] },
      shards: { s0: cluster.url('app') },
      admin: `127.0.0.1:${adminPort}`,
      saga: { database: cluster.url('app'), schema, relay: { sink, intervalMs: 50, batchSize: 7, ...extra } },
    });
    return { proxy, admin: `http://127.0.0.1:${adminPort}` };
  }

  /**
   * 20 messages published; the gate closed: 10 more stay unsent with their
   * error while failures are counted; the gate open again: the relay's next
   * connection publishes them. Every message is counted once as published.
   */
  async function downAndUp(schema: string, topic: string, gate: TcpGate, admin: string): Promise<string[]> {
    const first = await write(schema, topic, 0, 20);
    await until(async () => (await unsent(schema, first)).length === 0);

    await gate.close();
    const failuresBefore = (await metricsOf(admin)).get('shardgate_saga_relay_failures_total') ?? 0;
    const second = await write(schema, topic, 20, 30);
    await until(async () => ((await metricsOf(admin)).get('shardgate_saga_relay_failures_total') ?? 0) >= failuresBefore + 2);
    const waiting = await unsent(schema, second);
    expect(waiting.map((r) => r.id).sort()).toEqual([...second].sort());
    for (const r of waiting.filter((w) => w.attempts > 0)) expect(r.last_error).toEqual(expect.any(String));
    expect(waiting.some((r) => r.attempts > 0)).toBe(true);

    await gate.open();
    await until(async () => (await unsent(schema, second)).length === 0);
    const m = await metricsOf(admin);
    expect(m.get('shardgate_saga_relay_published_total')).toBe(30);
    expect(m.get('shardgate_saga_relay_lag_seconds_count')).toBe(30);
    expect(m.get('shardgate_saga_outbox_unsent_messages')).toBe(0);
    const cleared = await pool.query(`SELECT count(*)::int AS n FROM ${schema}.outbox WHERE last_error IS NOT NULL OR sent_at IS NULL`);
    expect(cleared.rows[0].n).toBe(0);
    return [...first, ...second];
  }

  it('JetStream: publishes, keeps messages unsent while the broker is unreachable, reconnects, and settles prepared messages through the HTTP back-check', async () => {
    const subject = `sg.relay.${run}`;
    const stream = `SG_RELAY_${run}`;
    const gate = new TcpGate(NATS_PORT);
    await gate.open();
    // The application's back-check: ids listed as committed are published, the others cancelled.
    const committed = new Set<string>();
    const asked: string[] = [];
    const checker: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const { id } = JSON.parse(body) as { id: string };
        asked.push(id);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ outcome: committed.has(id) ? 'commit' : 'rollback' }));
      });
    });
    await new Promise<void>((r) => checker.listen(0, '127.0.0.1', r));
    const checkUrl = `http://127.0.0.1:${(checker.address() as { port: number }).port}/check`;
    const { proxy, admin } = await serveRelay(
      'relay_nats',
      { kind: 'nats', url: `nats://127.0.0.1:${gate.port}`, stream: { name: stream, subjects: [`${subject}.>`] } },
      { backCheck: { url: checkUrl, afterMs: 0, intervalMs: 50 } },
    );
    const nc: NatsConnection = await connect({ servers: `127.0.0.1:${NATS_PORT}` });
    try {
      const ids = await downAndUp('relay_nats', `${subject}.orders`, gate, admin);
      const jsm = await nc.jetstreamManager();
      // JetStream drops a repeat by msgID: the stream holds each message once, in the order published.
      expect((await jsm.streams.info(stream)).state.messages).toBe(30);
      const stored = await Promise.all(ids.map((_, i) => jsm.streams.getMessage(stream, { seq: i + 1 })));
      expect(stored.map((s) => s.header.get('Nats-Msg-Id')).sort()).toEqual([...ids].sort());

      const yes = await prepareMessage(pool, `${subject}.orders`, { n: 'yes' }, { schema: 'relay_nats' });
      committed.add(yes);
      const no = await prepareMessage(pool, `${subject}.orders`, { n: 'no' }, { schema: 'relay_nats' });
      await until(async () => (await pool.query(`SELECT 1 FROM relay_nats.outbox WHERE id = ANY($1) AND (state = 'cancelled' OR sent_at IS NOT NULL)`, [[yes, no]])).rowCount === 2);
      const states = await pool.query(`SELECT id, state, sent_at IS NOT NULL AS sent FROM relay_nats.outbox WHERE id = ANY($1) ORDER BY id = $2 DESC`, [[yes, no], yes]);
      expect(states.rows).toEqual([{ id: yes, state: 'ready', sent: true }, { id: no, state: 'cancelled', sent: false }]);
      expect(new Set(asked)).toEqual(new Set([yes, no]));
      expect((await jsm.streams.getMessage(stream, { seq: 31 })).header.get('Nats-Msg-Id')).toBe(yes);
      expect((await jsm.streams.info(stream)).state.messages).toBe(31);
      const m = await metricsOf(admin);
      expect(m.get('shardgate_saga_relay_back_checks_total{answer="commit"}')).toBe(1);
      expect(m.get('shardgate_saga_relay_back_checks_total{answer="rollback"}')).toBe(1);
    } finally {
      await proxy.stop();
      await gate.close();
      checker.close();
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    }
  });

  it('RabbitMQ: publishes with confirms, keeps messages unsent while the broker is unreachable, and reconnects', async () => {
    const queue = `sg-relay-${run}`;
    const gate = new TcpGate(AMQP_PORT);
    await gate.open();
    const { proxy, admin } = await serveRelay('relay_amqp', { kind: 'rabbitmq', url: `amqp://guest:guest@127.0.0.1:${gate.port}` });
    const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${AMQP_PORT}`);
    try {
      const ids = await downAndUp('relay_amqp', queue, gate, admin);
      const ch = await conn.createChannel();
      // At-least-once: a confirm lost with the connection may repeat a message; none is missing.
      const received: string[] = [];
      for (;;) {
        const msg = await ch.get(queue, { noAck: true });
        if (msg === false) break;
        received.push(String(msg.properties.messageId));
      }
      expect(new Set(received)).toEqual(new Set(ids));
      await ch.deleteQueue(queue);
    } finally {
      await proxy.stop();
      await gate.close();
      await conn.close();
    }
  });
});
