/**
 * Sinks for the brokers ShardGate ships with (the outbox relay's and change
 * data capture's). Each `publish` resolves
 * only after the broker acknowledged every message: JetStream's PubAck (the
 * message is stored in the stream), RabbitMQ's publisher confirm (the broker
 * took responsibility for it).
 */
import type { ConfirmChannel } from 'amqplib';
import type { JetStreamClient } from 'nats';
import type { BrokerMessage, MessageSink } from './message-sink.js';

/**
 * Publishes to NATS JetStream, the topic as the subject (a stream must cover
 * it). The message id is JetStream's `msgID`, so a redelivery within the
 * stream's duplicate window is dropped by the broker as well.
 */
export function natsJetStreamSink(js: JetStreamClient): MessageSink {
  return {
    async publish(messages: readonly BrokerMessage[]): Promise<void> {
      await Promise.all(messages.map((m) => js.publish(m.topic, m.json ?? JSON.stringify(m.payload), { msgID: m.id })));
    },
  } satisfies MessageSink;
}

/**
 * Publishes to RabbitMQ on a confirm channel, the topic as the routing key of
 * `exchange` ('' is the default exchange: the topic names the queue),
 * persistent, with the message id as `messageId`.
 */
export function rabbitMqSink(channel: ConfirmChannel, exchange = ''): MessageSink {
  return {
    async publish(messages: readonly BrokerMessage[]): Promise<void> {
      for (const m of messages) {
        channel.publish(exchange, m.topic, Buffer.from(m.json ?? JSON.stringify(m.payload)), { messageId: m.id, persistent: true, contentType: 'application/json' });
      }
      await channel.waitForConfirms();
    },
  } satisfies MessageSink;
}
