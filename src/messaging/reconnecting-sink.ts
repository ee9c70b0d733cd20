/**
 * A sink that owns its broker connection and opens a new one whenever the
 * last was lost, for publishers that run for the life of a process (the
 * outbox relay in `shardgate serve`). A publish that fails drops the
 * connection, so the next publish connects again: a broker that went down and
 * came back is used again without a restart, and no publish waits on a
 * connection the broker no longer answers.
 */
import type { BrokerMessage, MessageSink } from './message-sink.js';
import { natsJetStreamSink, rabbitMqSink } from './broker-sinks.js';

/** One open connection with its sink. */
export interface OpenSink {
  readonly sink: MessageSink;
  /** Resolves when the connection is lost (closed by the broker, the network, or `close`). */
  readonly lost: Promise<unknown>;
  close(): Promise<void>;
}

/** A `MessageSink` that reconnects; `close` ends the current connection and refuses further publishes. */
export interface ReconnectingSink extends MessageSink {
  close(): Promise<void>;
}

/**
 * Publishes through the connection `open` gives, opened at the first publish
 * and again after one was lost or a publish failed. Rejections are those of
 * `open` or of the sink: the caller keeps the messages unsent and publishes
 * them again (at-least-once, as MessageSink promises).
 */
export function reconnectingSink(open: () => Promise<OpenSink>): ReconnectingSink {
  let current: Promise<OpenSink> | null = null;
  let closed = false;
  const drop = (which: Promise<OpenSink>): void => {
    if (current !== which) return;
    current = null;
    which.then((c) => c.close()).catch(() => undefined);
  };
  const connection = (): Promise<OpenSink> => {
    if (current !== null) return current;
    const opening = open();
    current = opening;
    opening.then((c) => c.lost.then(() => drop(opening))).catch(() => drop(opening));
    return opening;
  };
  return {
    async publish(messages: readonly BrokerMessage[]): Promise<void> {
      if (closed) throw new Error('the sink is closed');
      const opening = connection();
      try {
        await (await opening).sink.publish(messages);
      } catch (err) {
        // The connection may be half-dead (no acknowledgement came): the next publish opens a new one.
        drop(opening);
        throw err;
      }
    },
    async close(): Promise<void> {
      closed = true;
      const c = current;
      current = null;
      if (c !== null) await c.then((o) => o.close()).catch(() => undefined);
    },
  } satisfies ReconnectingSink;
}

/** Where a reconnecting broker sink publishes. */
export type BrokerTarget =
  | { readonly kind: 'nats'; readonly url: string; readonly stream: { readonly name: string; readonly subjects: readonly string[] } | null }
  | { readonly kind: 'rabbitmq'; readonly url: string; readonly exchange: string };

/**
 * A reconnecting sink to NATS JetStream or RabbitMQ. NATS: the client's own
 * reconnect is off (this sink reconnects), `stream` is created when missing.
 * RabbitMQ: a confirm channel; on the default exchange ('') each topic is a
 * durable queue, asserted once per connection before its first message.
 */
export function connectBrokerSink(target: BrokerTarget, name: string): ReconnectingSink {
  return reconnectingSink(target.kind === 'nats' ? () => openNats(target, name) : () => openRabbitMq(target, name));
}

async function openNats(target: Extract<BrokerTarget, { kind: 'nats' }>, name: string): Promise<OpenSink> {
  const { connect } = await import('nats');
  const nc = await connect({ servers: target.url, name, reconnect: false, timeout: 5000 });
  try {
    if (target.stream !== null) {
      const { name: stream, subjects } = target.stream;
      const jsm = await nc.jetstreamManager();
      await jsm.streams.info(stream).catch(() => jsm.streams.add({ name: stream, subjects: [...subjects] }));
    }
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw err;
  }
  return { sink: natsJetStreamSink(nc.jetstream({ timeout: 5000 })), lost: nc.closed(), close: () => nc.close() };
}

async function openRabbitMq(target: Extract<BrokerTarget, { kind: 'rabbitmq' }>, name: string): Promise<OpenSink> {
  const amqp = await import('amqplib');
  const conn = await amqp.connect(target.url, { clientProperties: { connection_name: name } });
  // Without a listener an 'error' event would end the process; the 'close' that follows it is what counts.
  conn.on('error', () => undefined);
  const lost = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  let channel;
  try {
    channel = await conn.createConfirmChannel();
  } catch (err) {
    await conn.close().catch(() => undefined);
    throw err;
  }
  channel.on('error', () => undefined);
  // A channel closed by the broker (a refused publish) loses the connection's use too: reconnect.
  channel.once('close', () => void conn.close().catch(() => undefined));
  const inner = rabbitMqSink(channel, target.exchange);
  const queues = new Set<string>();
  const ch = channel;
  return {
    sink: {
      async publish(messages) {
        if (target.exchange === '') {
          for (const topic of new Set(messages.map((m) => m.topic))) {
            if (queues.has(topic)) continue;
            await ch.assertQueue(topic, { durable: true });
            queues.add(topic);
          }
        }
        await inner.publish(messages);
      },
    },
    lost,
    close: async () => {
      await conn.close().catch(() => undefined);
    },
  };
}
