import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import amqp from 'amqplib';
import { connect } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, startCdc } from '../../harness/cdc.js';
import { freePort } from '../../harness/cluster.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/**
 * `shardgate cdc` into each sink: NATS JetStream, RabbitMQ and a webhook.
 * Cross-shard transfers through the proxy arrive as one event each, with the
 * event id as the broker's message id; a webhook that fails for a while gets
 * every event once it answers again, and never one it refused as accepted.
 */
interface EventJson {
  readonly id: string;
  readonly kind: 'local' | 'global';
  readonly shards: string[];
  readonly changes: { table: string; op: string; new: Record<string, string> | null }[];
}

const N = 12;

describe('shardgate cdc sinks', () => {
  let setup: ShardedSetup;
  let app: pg.Client;

  beforeAll(async () => {
    setup = await startShardedSetup(2, { account: { key: 'id' } });
    app = new pg.Client({ connectionString: setup.proxy.url });
    await app.connect();
    await app.query('CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL)');
    await app.query('INSERT INTO account SELECT g, 100 FROM generate_series(1, 40) g');
  });
  afterAll(async () => {
    await app?.end();
    await setup?.stop();
  });

  /** N transfers between accounts i and i+20, most of them across the two shards. */
  async function transfers(): Promise<void> {
    for (let i = 1; i <= N; i++) {
      await app.query('BEGIN');
      await app.query('UPDATE account SET balance = balance - $2 WHERE id = $1', [i, i]);
      await app.query('UPDATE account SET balance = balance + $2 WHERE id = $1', [i + 20, i]);
      await app.query('COMMIT');
    }
  }

  /** Each event is one transfer, whole: a debit and the matching credit. */
  function expectTransfers(events: readonly EventJson[]): void {
    expect(events).toHaveLength(N);
    for (const e of events) {
      expect(e.changes.map((c) => `${c.table} ${c.op}`)).toEqual(['public.account update', 'public.account update']);
      const ids = e.changes.map((c) => Number(c.new!.id)).sort((a, b) => a - b);
      expect(ids[1]! - ids[0]!).toBe(20);
      expect(e.changes.reduce((sum, c) => sum + Number(c.new!.balance), 0)).toBe(200);
      expect(e.kind === 'global').toBe(e.shards.length === 2);
    }
    expect(events.filter((e) => e.kind === 'global').length).toBeGreaterThan(0);
  }

  const prefix = (): string => `t${randomBytes(4).toString('hex')}_`;

  it('NATS JetStream: one message per transaction, the event id as Nats-Msg-Id', { timeout: 60_000 }, async () => {
    const run = randomBytes(4).toString('hex');
    const subject = `sg.cdc.${run}`;
    const stream = `SG_CDC_${run}`;
    const cdc = startCdc(setup.proxy.configFile, ['--sink', 'nats', '--subject', subject, '--nats-stream', stream, '--slot-prefix', prefix()]);
    const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
    try {
      await cdc.streaming;
      await transfers();
      const jsm = await nc.jetstreamManager();
      for (let i = 0; i < 200 && (await jsm.streams.info(stream)).state.messages < N; i++) await new Promise((r) => setTimeout(r, 50));
      const stored = await Promise.all(Array.from({ length: N }, (_, i) => jsm.streams.getMessage(stream, { seq: i + 1 })));
      const events = stored.map((m) => m.json<EventJson>());
      expectTransfers(events);
      expect(stored.map((m) => m.header.get('Nats-Msg-Id'))).toEqual(events.map((e) => e.id));
      expect(await cdc.stop(), cdc.logs()).toBe(0);
      await jsm.streams.delete(stream);
    } finally {
      await cdc.kill9();
      await nc.close();
    }
  });

  it('RabbitMQ: persistent messages on a durable queue, confirmed, the event id as messageId', { timeout: 60_000 }, async () => {
    const queue = `sg-cdc-${randomBytes(4).toString('hex')}`;
    const cdc = startCdc(setup.proxy.configFile, ['--sink', 'rabbitmq', '--subject', queue, '--slot-prefix', prefix()]);
    const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
    try {
      await cdc.streaming;
      await transfers();
      const ch = await conn.createChannel();
      const got: amqp.GetMessage[] = [];
      for (let i = 0; i < 200 && got.length < N; i++) {
        const msg = await ch.get(queue, { noAck: true });
        if (msg === false) await new Promise((r) => setTimeout(r, 50));
        else got.push(msg);
      }
      const events = got.map((m) => JSON.parse(m.content.toString()) as EventJson);
      expectTransfers(events);
      expect(got.map((m) => m.properties.messageId)).toEqual(events.map((e) => e.id));
      expect(got.every((m) => m.properties.deliveryMode === 2)).toBe(true);
      expect(await cdc.stop(), cdc.logs()).toBe(0);
      await ch.deleteQueue(queue);
    } finally {
      await cdc.kill9();
      await conn.close();
    }
  });

  it('RabbitMQ: a transaction larger than --max-message-bytes stops the command with 54000, nothing published or confirmed past it', { timeout: 60_000 }, async () => {
    const queue = `sg-cdc-${randomBytes(4).toString('hex')}`;
    const slots = prefix();
    const cdc = startCdc(setup.proxy.configFile, ['--sink', 'rabbitmq', '--subject', queue, '--slot-prefix', slots, '--max-message-bytes', '2kB']);
    const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
    const ch = await conn.createChannel();
    let stdout: ReturnType<typeof startCdc> | undefined;
    try {
      await cdc.streaming;
      const one = async (id: number, by: number): Promise<void> => {
        await app.query('BEGIN');
        await app.query('UPDATE account SET balance = balance - $2 WHERE id = $1', [id, by]);
        await app.query('UPDATE account SET balance = balance + $2 WHERE id = $1', [id + 20, by]);
        await app.query('COMMIT');
      };
      // Before: published. The 40-row update is about 2.6 kB of JSON, over the limit. After: must not be published.
      await one(1, 1);
      await app.query('UPDATE account SET balance = balance + 0');
      await one(2, 2);
      expect(await exited(cdc.child)).toBe(1);
      expect(cdc.logs()).toMatch(/ERROR 54000: transaction sg_\S+ \(40 changes\) is larger than one rabbitmq message may be: 2000 bytes/);
      const got: EventJson[] = [];
      for (;;) {
        const msg = await ch.get(queue, { noAck: true });
        if (msg === false) break;
        got.push(JSON.parse(msg.content.toString()) as EventJson);
      }
      expect(got.map((e) => e.changes.map((c) => Number(c.new!.id)).sort((a, b) => a - b))).toEqual([[1, 21]]);
      // The slots were not confirmed past the large transaction: started again, it comes whole, then the one after it.
      const lines: EventJson[] = [];
      stdout = startCdc(setup.proxy.configFile, ['--slot-prefix', slots], (l) => lines.push(JSON.parse(l) as EventJson));
      await stdout.streaming;
      const after = (e: EventJson): boolean => e.changes.length === 2 && e.changes.some((c) => c.new?.id === '2');
      for (let i = 0; i < 400 && !lines.some(after); i++) await new Promise((r) => setTimeout(r, 50));
      const big = lines.filter((e) => e.changes.length === 40);
      expect(big).toHaveLength(1);
      expect(big[0]!.changes.map((c) => Number(c.new!.id)).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(lines.findIndex(after)).toBeGreaterThan(lines.indexOf(big[0]!));
      expect(await stdout.stop(), stdout.logs()).toBe(0);
      await ch.deleteQueue(queue);
    } finally {
      await cdc.kill9();
      await stdout?.kill9();
      await ch.close().catch(() => undefined);
      await conn.close();
    }
  });

  it('webhook: batches refused with 503 are sent again until taken; metrics show the failures, the lag and the slots', { timeout: 60_000 }, async () => {
    let refuse = 3;
    const accepted: EventJson[] = [];
    const headers: string[] = [];
    const body = (req: IncomingMessage): Promise<string> =>
      new Promise((resolve) => {
        let text = '';
        req.on('data', (d: Buffer) => (text += d.toString()));
        req.on('end', () => resolve(text));
      });
    const server: Server = createServer((req, res) => {
      void body(req).then((text) => {
        if (refuse > 0) {
          refuse--;
          res.writeHead(503).end();
          return;
        }
        headers.push(String(req.headers.authorization));
        accepted.push(...(JSON.parse(text) as EventJson[]));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
    const metricsPort = await freePort();
    const cdc = startCdc(setup.proxy.configFile, [
      '--sink', 'webhook', '--webhook-url', url, '--webhook-header', 'Authorization: Bearer t0ken',
      '--slot-prefix', prefix(), '--metrics-listen', `127.0.0.1:${metricsPort}`,
    ]);
    try {
      await cdc.streaming;
      await transfers();
      for (let i = 0; i < 400 && accepted.length < N; i++) await new Promise((r) => setTimeout(r, 50));
      expectTransfers(accepted);
      expect(new Set(accepted.map((e) => e.id)).size).toBe(N);
      expect(refuse).toBe(0);
      expect(new Set(headers)).toEqual(new Set(['Bearer t0ken']));

      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
      expect(value('shardgate_cdc_sink_failures_total')).toBe(3);
      expect(value('shardgate_cdc_events_total{kind="global"}') + value('shardgate_cdc_events_total{kind="local"}')).toBe(N);
      for (const shard of ['s0', 's1']) {
        expect(metrics).toMatch(new RegExp(`^shardgate_cdc_lag_bytes\\{shard="${shard}"\\} \\d+$`, 'm'));
        expect(metrics).toMatch(new RegExp(`^shardgate_cdc_slot_retained_wal_bytes\\{shard="${shard}",slot="t[0-9a-f]+_${shard}"\\} \\d+$`, 'm'));
        expect(metrics).toMatch(new RegExp(`^shardgate_cdc_slot_active\\{shard="${shard}",slot="t[0-9a-f]+_${shard}"\\} 1$`, 'm'));
      }
      expect(await cdc.stop(), cdc.logs()).toBe(0);
      // The bearer token is a secret: never in the logs.
      expect(cdc.logs()).not.toContain('t0ken');
    } finally {
      await cdc.kill9();
      server.close();
    }
  });

  it('refuses a bad sink or option with a message, exit 1, before touching a shard', async () => {
    const bad = startCdc(setup.proxy.configFile, ['--sink', 'kafka']);
    expect(await exited(bad.child)).toBe(1);
    expect(bad.logs()).toContain('unknown sink "kafka"; use stdout, nats, rabbitmq or webhook');
    const manifest = startCdc(setup.proxy.configFile, ['--from-manifest', '/nonexistent/manifest.json']);
    expect(await exited(manifest.child)).toBe(1);
    expect(manifest.logs()).toContain('cannot start change data capture from /nonexistent/manifest.json');
  });
});
