/**
 * The transactional outbox: a message is a row written in the caller's own
 * local transaction, so it exists exactly when the business change committed.
 * A relay claims unsent rows with `FOR UPDATE SKIP LOCKED`, hands them to a
 * sink, and marks them sent only after the sink resolved, which the sinks here
 * do only after the broker acknowledged. Delivery is at-least-once; `inbox`
 * dedupes on the consumer side. The argument is in README.md.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { BrokerMessage, MessageSink } from '../messaging/message-sink.js';
import type { Queryable } from '../library/shard-gate.js';
import type { Metrics, OutboxStats } from '../observe/metrics.js';
import { backCheckOnce, type BackCheck, type BackCheckResult } from './two-phase-message.js';
import { createIdempotently, deleteInBatches, inTransactionClient, olderThan, qualified, type CleanupResult } from './saga-schema.js';

/** One message as the relay hands it to a sink. */
export type OutboxMessage = BrokerMessage;

/** Where the relay publishes (src/messaging: NATS JetStream, RabbitMQ; a Kafka sink is one more implementation). */
export type OutboxSink = MessageSink;

/** Creates the outbox and inbox tables if missing; idempotent and safe from several processes at once. */
export async function ensureOutboxTables(client: Queryable, schema?: string): Promise<void> {
  const outbox = qualified(schema, 'outbox');
  await createIdempotently(client, schema, [
    `CREATE TABLE IF NOT EXISTS ${outbox} (
       seq bigserial PRIMARY KEY,
       id text NOT NULL UNIQUE,
       topic text NOT NULL,
       payload jsonb NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now(),
       sent_at timestamptz,
       attempts int NOT NULL DEFAULT 0,
       last_error text,
       state text NOT NULL DEFAULT 'ready' CHECK (state IN ('prepared', 'ready', 'cancelled')),
       checks int NOT NULL DEFAULT 0)`,
    `CREATE INDEX IF NOT EXISTS outbox_unsent ON ${outbox} (seq) WHERE sent_at IS NULL AND state = 'ready'`,
    `CREATE INDEX IF NOT EXISTS outbox_prepared ON ${outbox} (created_at) WHERE state = 'prepared'`,
    `CREATE INDEX IF NOT EXISTS outbox_sent ON ${outbox} (sent_at) WHERE sent_at IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS outbox_cancelled ON ${outbox} (created_at) WHERE state = 'cancelled'`,
    `CREATE TABLE IF NOT EXISTS ${qualified(schema, 'inbox')} (
       consumer text NOT NULL,
       message_id text NOT NULL,
       received_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (consumer, message_id))`,
    `CREATE INDEX IF NOT EXISTS inbox_received_at ON ${qualified(schema, 'inbox')} (received_at)`,
  ]);
}

/** Writes a message through `tx` (the caller's open transaction) and returns its id. */
export async function writeOutbox(tx: Queryable, topic: string, payload: unknown, opts: { id?: string; schema?: string } = {}): Promise<string> {
  const id = opts.id ?? randomUUID();
  await tx.query(`INSERT INTO ${qualified(opts.schema, 'outbox')} (id, topic, payload) VALUES ($1, $2, $3)`, [id, topic, JSON.stringify(payload ?? null)]);
  return id;
}

/**
 * The outbox at this moment, for the metrics gauges: committed messages the
 * broker has not acknowledged yet, and the age of the oldest of them on the
 * database's clock (the relay's lag). Served by the `outbox_unsent` index.
 */
export async function readOutboxStats(client: Queryable, schema?: string): Promise<OutboxStats> {
  const res = await client.query<{ unsent: string; age: number | null }>(
    `SELECT count(*) AS unsent, extract(epoch FROM now() - min(created_at))::float8 AS age
       FROM ${qualified(schema, 'outbox')} WHERE sent_at IS NULL AND state = 'ready'`,
  );
  const row = res.rows[0]!;
  return { unsent: Number(row.unsent), oldestUnsentAgeSeconds: Math.max(0, row.age ?? 0) };
}

/**
 * Deletes outbox rows sent more than `retentionMs` ago (through the
 * `outbox_sent` index), `batch` (1000 by default) per statement. Unsent rows
 * are never touched, however old. The retention only bounds how long a sent
 * message can still be looked up; redelivery needs no row (a sent row is
 * never published again).
 */
export async function cleanupOutbox(client: Queryable, retentionMs: number, opts: { schema?: string; batch?: number } = {}): Promise<CleanupResult> {
  const table = qualified(opts.schema, 'outbox');
  return deleteInBatches(client, retentionMs, opts.batch ?? 1000, (limit) =>
    `DELETE FROM ${table} WHERE seq IN (SELECT seq FROM ${table} WHERE sent_at IS NOT NULL AND ${olderThan('sent_at')} ORDER BY sent_at ${limit} FOR UPDATE SKIP LOCKED)`,
  );
}

/**
 * Deletes cancelled two-phase messages (never published, never to be)
 * prepared more than `retentionMs` ago, through the `outbox_cancelled` index,
 * `batch` per statement. Prepared ones are never touched: their back-check
 * has not answered yet.
 */
export async function cleanupCancelledMessages(client: Queryable, retentionMs: number, opts: { schema?: string; batch?: number } = {}): Promise<CleanupResult> {
  const table = qualified(opts.schema, 'outbox');
  return deleteInBatches(client, retentionMs, opts.batch ?? 1000, (limit) =>
    `DELETE FROM ${table} WHERE seq IN (SELECT seq FROM ${table} WHERE state = 'cancelled' AND ${olderThan('created_at')} ORDER BY created_at ${limit} FOR UPDATE SKIP LOCKED)`,
  );
}

/**
 * Deletes inbox rows received more than `retentionMs` ago (the
 * `inbox_received_at` index), `batch` per statement. A message delivered
 * again after its row went is handled again, so the retention must exceed
 * the longest time the broker may redeliver (its redelivery and the relay's
 * at-least-once repeat); rows inside it keep deduping.
 */
export async function cleanupInbox(client: Queryable, retentionMs: number, opts: { schema?: string; batch?: number } = {}): Promise<CleanupResult> {
  const table = qualified(opts.schema, 'inbox');
  return deleteInBatches(client, retentionMs, opts.batch ?? 1000, (limit) =>
    `DELETE FROM ${table} WHERE (consumer, message_id) IN (
       SELECT consumer, message_id FROM ${table} WHERE ${olderThan('received_at')} ORDER BY received_at ${limit} FOR UPDATE SKIP LOCKED)`,
  );
}

/** Options of a relay. */
export interface RelayOptions {
  readonly pool: pg.Pool;
  readonly sink: OutboxSink;
  readonly schema?: string;
  /** Messages per batch; 100 by default. */
  readonly batch?: number;
  /**
   * How prepared messages (two-phase-message.ts) whose submit never came are
   * resolved: `check` is asked about those older than `afterMs`.
   */
  readonly backCheck?: { readonly check: BackCheck; readonly afterMs: number };
  /** Counts published messages, their lag, failed batches and back-check answers (the registry /metrics serves). */
  readonly metrics?: Metrics;
  /** Called with a failed pass's error (the rows stay unsent and the next pass sends them); a process warning by default. */
  readonly onError?: (err: unknown) => void;
}

/** How often `OutboxRelay.start` runs its passes. */
export interface RelayLoopOptions {
  /** Between passes that found less than a full batch; a full batch is followed by the next at once. */
  readonly intervalMs: number;
  /** Between back-check passes (with `backCheck` options only); absent: no back-check loop. */
  readonly backCheckIntervalMs?: number;
}

/** Publishes committed outbox rows; several relays may share one outbox. */
export class OutboxRelay {
  readonly #opts: RelayOptions;
  readonly #table: string;
  #loops: Promise<void>[] = [];
  #closed = false;
  #wake: (() => void)[] = [];

  constructor(opts: RelayOptions) {
    this.#opts = opts;
    this.#table = qualified(opts.schema, 'outbox');
  }

  /** One back-check pass over prepared messages (see `backCheckOnce`); the relay must have `backCheck` options. */
  async backCheckOnce(): Promise<BackCheckResult> {
    const b = this.#opts.backCheck;
    if (b === undefined) throw new Error('this relay has no backCheck options; pass backCheck: { check, afterMs } to its constructor');
    const counts = await backCheckOnce(this.#opts.pool, b.check, { afterMs: b.afterMs, ...(this.#opts.schema !== undefined ? { schema: this.#opts.schema } : {}) });
    this.#opts.metrics?.relayBackChecked({ commit: counts.committed, rollback: counts.cancelled, unknown: counts.unknown });
    return counts;
  }

  /**
   * Runs `runOnce` in a loop until `close` (and `backCheckOnce` every
   * `backCheckIntervalMs` when given). A failed pass is reported to `onError`
   * and retried after the interval; the sink decides whether it reconnects.
   */
  start(loop: RelayLoopOptions): void {
    if (this.#loops.length > 0 || this.#closed) return;
    const batch = this.#opts.batch ?? 100;
    this.#loops.push(this.#every(loop.intervalMs, async () => (await this.runOnce()) === batch));
    if (loop.backCheckIntervalMs !== undefined) this.#loops.push(this.#every(loop.backCheckIntervalMs, async () => (await this.backCheckOnce(), false)));
  }

  /** Stops the loops and waits for the passes under way to end; the pool and the sink are the caller's. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#wake) w();
    await Promise.all(this.#loops);
  }

  /** `pass` again and again, waiting `ms` after each that answers false (or failed). */
  async #every(ms: number, pass: () => Promise<boolean>): Promise<void> {
    while (!this.#closed) {
      let again = false;
      try {
        again = await pass();
      } catch (err) {
        (this.#opts.onError ?? ((e) => process.emitWarning(`outbox relay: ${e instanceof Error ? e.message : String(e)}`)))(err);
      }
      if (!again && !this.#closed) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(t);
            this.#wake = this.#wake.filter((w) => w !== done);
            resolve();
          };
          const t = setTimeout(done, ms);
          this.#wake.push(done);
        });
      }
    }
  }

  /** Deletes rows sent more than `retentionMs` ago, in batches (see `cleanupOutbox`). */
  async cleanup(retentionMs: number, batch?: number): Promise<CleanupResult> {
    return cleanupOutbox(this.#opts.pool, retentionMs, { ...(this.#opts.schema !== undefined ? { schema: this.#opts.schema } : {}), ...(batch !== undefined ? { batch } : {}) });
  }

  /**
   * Claims up to one batch of unsent messages, publishes them, and marks them
   * sent; returns how many were sent. If the sink fails, the rows stay unsent
   * with the error and an attempt counted, and the error is thrown.
   *
   * If this process dies after the broker acked but before the commit, the
   * rows are still unsent and are published again: at-least-once, with the
   * same ids, which `inbox` (and JetStream's duplicate window) absorb.
   */
  async runOnce(): Promise<number> {
    return inTransactionClient(this.#opts.pool, async (client) => {
      await client.query('BEGIN');
      const rows = (
        await client.query<OutboxMessage & { seq: string }>(
          `SELECT seq, id, topic, payload FROM ${this.#table} WHERE sent_at IS NULL AND state = 'ready' ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [this.#opts.batch ?? 100],
        )
      ).rows;
      if (rows.length === 0) {
        await client.query('COMMIT');
        return 0;
      }
      const seqs = rows.map((r) => r.seq);
      try {
        await this.#opts.sink.publish(rows.map(({ id, topic, payload }) => ({ id, topic, payload })));
      } catch (err) {
        await client.query(`UPDATE ${this.#table} SET attempts = attempts + 1, last_error = $2 WHERE seq = ANY($1::bigint[])`, [seqs, err instanceof Error ? err.message : String(err)]);
        await client.query('COMMIT');
        this.#opts.metrics?.relayFailed();
        throw err;
      }
      // The lag is measured once the broker acked, on the database clock that wrote created_at.
      const sent = await client.query<{ lag: number }>(
        `UPDATE ${this.#table} SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE seq = ANY($1::bigint[])
          RETURNING extract(epoch FROM clock_timestamp() - created_at)::float8 AS lag`,
        [seqs],
      );
      await client.query('COMMIT');
      // Counted after the commit: a relay dying before it publishes these again and counts them then.
      this.#opts.metrics?.relayPublished(sent.rows.map((r) => Math.max(0, r.lag)));
      return rows.length;
    });
  }
}

/**
 * Runs `fn` for a message at most once per consumer: inside `tx`, the
 * consumer's open transaction, an inbox row is inserted first and `fn` runs
 * only if this call wrote it. The row and `fn`'s changes commit together, so
 * a redelivered message whose first handling rolled back is handled again.
 * Returns whether `fn` ran.
 */
export async function inbox(tx: Queryable, consumer: string, messageId: string, fn: () => Promise<void>, opts: { schema?: string } = {}): Promise<boolean> {
  const res = await tx.query(`INSERT INTO ${qualified(opts.schema, 'inbox')} (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [consumer, messageId]);
  if (res.rowCount !== 1) return false;
  await fn();
  return true;
}
