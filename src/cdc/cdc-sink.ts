import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { sgError } from '../errors/catalogue.js';
import type { MessageSink } from '../messaging/message-sink.js';
import type { CdcEvent } from './assembler.js';
import { eventJsonPieces } from './json-line.js';

/** Pieces of JSON are gathered up to this many characters before one write. */
const CHUNK = 64 * 1024;

/** `pieces` gathered into chunks of about `CHUNK` characters. */
function* chunked(pieces: Iterable<string>): Generator<string, void, undefined> {
  let buf: string[] = [];
  let size = 0;
  for (const p of pieces) {
    buf.push(p);
    size += p.length;
    if (size >= CHUNK) {
      yield buf.join('');
      buf = [];
      size = 0;
    }
  }
  if (size > 0) yield buf.join('');
}

/** Every event's JSON as one line each, in pieces. */
function* jsonLines(events: readonly CdcEvent[]): Generator<string, void, undefined> {
  for (const e of events) {
    yield* eventJsonPieces(e);
    yield '\n';
  }
}

/** The events as one JSON array, in pieces. */
function* jsonArray(events: readonly CdcEvent[]): Generator<string, void, undefined> {
  yield '[';
  let first = true;
  for (const e of events) {
    if (!first) yield ',';
    first = false;
    yield* eventJsonPieces(e);
  }
  yield ']';
}

/**
 * A sink's failure that sending again cannot cure (an event larger than the
 * broker takes): the command stops with it instead of retrying forever.
 */
export function isPermanentSinkError(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '54000';
}

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

/**
 * JSON lines, one per event, on `out` (stdout by default); resolves when the
 * last write completed. A transaction is written in chunks as its changes
 * are read (from memory or its spill files), waiting for `out` to drain
 * whenever it is full: a slow reader of the pipe holds `send`, and so the
 * streams (cdc-runner.ts), without the line ever being built whole.
 */
export function jsonLinesSink(out: Writable): CdcSink {
  return {
    name: 'stdout',
    async send(events) {
      let error: unknown = null;
      let last: Promise<void> = Promise.resolve();
      for (const chunk of chunked(jsonLines(events))) {
        if (error !== null) break;
        last = new Promise<void>((resolve) =>
          out.write(chunk, (err) => {
            if (err) error ??= err;
            resolve();
          }),
        );
        // Full: wait until the reader took some (or the write failed) before reading further changes.
        if (out.writableNeedDrain) await Promise.race([once(out, 'drain'), last]);
      }
      await last;
      if (error !== null) throw error;
    },
    close: async () => undefined,
  };
}

/** Text of events gathered for one publish before it is sent (one larger event goes alone). */
const BROKER_BATCH_BYTES = 8 * 1024 * 1024;

/** The most bytes one broker message may hold, and what sets that limit (named in the error). */
export interface MessageLimit {
  readonly bytes: number;
  readonly setting: string;
}

/**
 * Events as broker messages on `topic` (a NATS subject, a RabbitMQ routing
 * key): one message per transaction, the message id is the event id
 * (JetStream drops a repeat inside its duplicate window), the payload the
 * event's JSON. A broker message is held whole, so an event is built piece by
 * piece only up to `limit`: one larger fails with 54000 naming the limit
 * (`isPermanentSinkError`), before it is built whole.
 */
export function brokerSink(name: string, sink: MessageSink, topic: string, limit: MessageLimit, close: () => Promise<void>): CdcSink {
  const body = (e: CdcEvent): string => {
    const pieces: string[] = [];
    let bytes = 0;
    for (const p of eventJsonPieces(e)) {
      bytes += Buffer.byteLength(p, 'utf8');
      if (bytes > limit.bytes) {
        throw sgError('cdcEventTooLarge', { id: e.id, changes: e.changeCount, sink: name, limit: limit.bytes, setting: limit.setting });
      }
      pieces.push(p);
    }
    return pieces.join('');
  };
  return {
    name,
    // Published in groups of at most BROKER_BATCH_BYTES of text (or one event): a batch of large spilled
    // events is never all in memory at once.
    async send(events) {
      for (let i = 0; i < events.length; ) {
        const batch: { id: string; topic: string; payload: null; json: string }[] = [];
        let size = 0;
        while (i < events.length && (batch.length === 0 || size < BROKER_BATCH_BYTES)) {
          const json = body(events[i++]!);
          size += json.length;
          batch.push({ id: events[i - 1]!.id, topic, payload: null, json });
        }
        await sink.publish(batch);
      }
    },
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
      // The body is streamed (chunked): a spilled transaction is read from disk as the request is sent, never held whole.
      const chunks = chunked(jsonArray(events));
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = chunks.next();
          if (next.done === true) controller.close();
          else controller.enqueue(encoder.encode(next.value));
        },
        // The request failed or was aborted: end the reading of the events (a log being read is never spilled).
        cancel() {
          chunks.return(undefined);
        },
      });
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'shardgate-event-ids': events.map((e) => e.id).join(','), ...opts.headers },
        body,
        duplex: 'half',
        signal: AbortSignal.timeout(timeoutMs),
      } as RequestInit);
      // Read the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status > 299) throw new Error(`webhook answered ${res.status} ${res.statusText}`);
    },
    close: async () => undefined,
  };
}
