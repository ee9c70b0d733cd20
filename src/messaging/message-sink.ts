/** One message as a publisher hands it to a broker. */
export interface BrokerMessage {
  /** Unique and stable across redeliveries: the consumer's dedupe key (and the broker's, where it has one). */
  readonly id: string;
  /** The NATS subject, or the RabbitMQ routing key. */
  readonly topic: string;
  /** Sent as JSON. */
  readonly payload: unknown;
  /** The payload's JSON text when the caller has it already; sent as it is instead of `payload`. */
  readonly json?: string;
}

/**
 * Where messages go. `publish` resolves only once the broker has acknowledged
 * every message given (a reject or throw leaves them unacknowledged, and the
 * caller sends them again: at-least-once). A Kafka sink is one more
 * implementation of this interface.
 */
export interface MessageSink {
  publish(messages: readonly BrokerMessage[]): Promise<void>;
}
