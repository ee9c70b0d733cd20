import type { Writable } from 'node:stream';
import type { MessageSink } from '../messaging/message-sink.js';
import type { CdcEvent } from './assembler.js';
import { eventToJson, eventToJsonLine } from './json-line.js';

/**
 * Where `shardgate cdc` hands its events. `send` resolves only once the
 * destination took every event given (a pipe's write completed, a broker's
 * acknowledgement, a webhook's 2xx); only then are the events acknowledged
 * to the assembler and may the slots be confirmed past them. A rejection
 * leaves them unacknowledged: they are sent again (at-least-once, same ids).
 */
export interface CdcSink {
  /** For logs and metrics: `stdout`, `nats`, `rabbitmq`, `webhook`. */
  readonly name: string;
  send(events: readonly CdcEvent[]): Promise<void>;
  close(): Promise<void>;
}

/** JSON lines, one per event, on `out` (stdout by default); resolves when the write completed. */
export function jsonLinesSink(out: Writable): CdcSink {
  return {
    name: 'stdout',
    send: (events) =>
      new Promise<void>((resolve, reject) => {
        if (events.length === 0) return resolve();
        out.write(events.map((e) => `${eventToJsonLine(e)}\n`).join(''), (err) => (err ? reject(err) : resolve()));
      }),
    close: async () => undefined,
  };
}

/**
 * Events as broker messages on `topic` (a NATS subject, a RabbitMQ routing
 * key): the message id is the event id (JetStream drops a repeat inside its
 * duplicate window), the payload the event's JSON.
 */
export function brokerSink(name: string, sink: MessageSink, topic: string, close: () => Promise<void>): CdcSink {
  return {
    name,
    send: (events) => sink.publish(events.map((e) => ({ id: e.id, topic, payload: eventToJson(e) }))),
    close,
  };
}

/** Options of `webhookSink`. */
export interface WebhookOptions {
  /** Extra request headers (an Authorization header, say). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Per request; a request that takes longer fails and is sent again. */
  readonly timeoutMs?: number;
}

/**
 * POSTs each batch as a JSON array of events to `url`; any 2xx answer
 * acknowledges the whole batch, anything else (or no answer in time) fails
 * it and it is sent again. Each event carries its id for the receiver to
 * dedupe on; the header `ShardGate-Event-Ids` lists them too.
 */
export function webhookSink(url: string, opts: WebhookOptions = {}): CdcSink {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return {
    name: 'webhook',
    async send(events) {
      if (events.length === 0) return;
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'shardgate-event-ids': events.map((e) => e.id).join(','), ...opts.headers },
        body: JSON.stringify(events.map(eventToJson)),
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Read the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status > 299) throw new Error(`webhook answered ${res.status} ${res.statusText}`);
    },
    close: async () => undefined,
  };
}
