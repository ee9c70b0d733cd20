/**
 * The two-phase message (DTM's "msg" mode): a message registered in the
 * outbox *before* the local transaction that decides it, for when the
 * outbox and the business change are not in one database (or the message
 * must be registered first). The outcome of a prepared message is settled by
 * `submitMessage` after the business commit, `cancelMessage` after a
 * rollback, or — when the process died in between and nobody knows — by the
 * relay's back-check. The argument is in README.md ("Two-phase message").
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Queryable } from '../library/shard-gate.js';
import { createIdempotently, deleteInBatches, inTransactionClient, olderThan, qualified, type CleanupResult } from './saga-schema.js';

/** A prepared message as the back-check sees it. */
export interface PreparedMessage {
  readonly id: string;
  readonly topic: string;
  readonly payload: unknown;
  readonly createdAt: Date;
}

/**
 * What the back-check answers about a prepared message's local transaction:
 * it committed (publish), it did not and never will (cancel), or it cannot
 * tell yet (ask again at the next pass).
 */
export type BackCheckAnswer = 'commit' | 'rollback' | 'unknown';

/** Asks whether a prepared message's local transaction committed. A throw counts as `unknown`. */
export type BackCheck = (message: PreparedMessage) => Promise<BackCheckAnswer>;

/**
 * Registers a message in state `prepared` through `client` (its own
 * transaction: the outbox row must exist before the business transaction
 * starts) and returns its id. The relay does not publish it until it is
 * submitted or the back-check answers `commit`.
 */
export async function prepareMessage(client: Queryable, topic: string, payload: unknown, opts: { id?: string; schema?: string } = {}): Promise<string> {
  const id = opts.id ?? randomUUID();
  await client.query(`INSERT INTO ${qualified(opts.schema, 'outbox')} (id, topic, payload, state) VALUES ($1, $2, $3, 'prepared')`, [id, topic, JSON.stringify(payload ?? null)]);
  return id;
}

/** After the business transaction committed: makes the message publishable. True when this call did (false: already decided). */
export async function submitMessage(client: Queryable, id: string, opts: { schema?: string } = {}): Promise<boolean> {
  const res = await client.query(`UPDATE ${qualified(opts.schema, 'outbox')} SET state = 'ready' WHERE id = $1 AND state = 'prepared'`, [id]);
  return res.rowCount === 1;
}

/** After the business transaction rolled back: the message is never published. True when this call cancelled it. */
export async function cancelMessage(client: Queryable, id: string, opts: { schema?: string } = {}): Promise<boolean> {
  const res = await client.query(`UPDATE ${qualified(opts.schema, 'outbox')} SET state = 'cancelled' WHERE id = $1 AND state = 'prepared'`, [id]);
  return res.rowCount === 1;
}

/**
 * Creates the decision table in the *business* database (where the local
 * transaction runs): one row per prepared message, `commit` written by the
 * business transaction itself, `rollback` by a back-check that found none.
 */
export async function ensureMessageDecisionTable(client: Queryable, schema?: string): Promise<void> {
  await createIdempotently(client, schema, [
    `CREATE TABLE IF NOT EXISTS ${qualified(schema, 'message_decision')} (
       id text PRIMARY KEY,
       outcome text NOT NULL CHECK (outcome IN ('commit', 'rollback')),
       created_at timestamptz NOT NULL DEFAULT now())`,
    `CREATE INDEX IF NOT EXISTS message_decision_created_at ON ${qualified(schema, 'message_decision')} (created_at)`,
  ]);
}

/**
 * Inside the business transaction `tx`: records that the message's local
 * transaction commits, atomically with the business change. If a back-check
 * already decided `rollback`, this insert fails with 23505 (unique_violation)
 * and the business transaction cannot commit: the cancelled message and the
 * change agree.
 */
export async function recordMessageCommit(tx: Queryable, id: string, opts: { schema?: string } = {}): Promise<void> {
  await tx.query(`INSERT INTO ${qualified(opts.schema, 'message_decision')} (id, outcome) VALUES ($1, 'commit')`, [id]);
}

/**
 * The back-check that asks the business database itself (no callback into
 * the application): in a transaction of its own, insert `rollback` for the
 * message `ON CONFLICT DO NOTHING`, then read the row. If the business
 * transaction committed its `commit` row, the insert does nothing and the
 * answer is `commit`. If it is still open, the insert waits on the primary
 * key until it ends (at most `lockTimeoutMs`, 5 000 by default; past that the
 * answer is `unknown`), then sees its outcome. If it never wrote the row, the
 * `rollback` row wins and its later insert fails: presumed abort, fenced by
 * the primary key, as DESIGN.md's recovery does for 2PC.
 */
export function decisionBackCheck(businessPool: pg.Pool, opts: { schema?: string; lockTimeoutMs?: number } = {}): BackCheck {
  const table = qualified(opts.schema, 'message_decision');
  return (message) =>
    inTransactionClient(businessPool, async (client) => {
      await client.query('BEGIN');
      await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${opts.lockTimeoutMs ?? 5000}ms`]);
      try {
        await client.query(`INSERT INTO ${table} (id, outcome) VALUES ($1, 'rollback') ON CONFLICT (id) DO NOTHING`, [message.id]);
      } catch (err) {
        // 55P03: the business transaction holds the row past the lock timeout; it is still deciding.
        if ((err as { code?: string }).code === '55P03') {
          await client.query('ROLLBACK');
          return 'unknown';
        }
        throw err;
      }
      const row = await client.query<{ outcome: 'commit' | 'rollback' }>(`SELECT outcome FROM ${table} WHERE id = $1`, [message.id]);
      await client.query('COMMIT');
      return row.rows[0]!.outcome;
    });
}

/** Deletes decision rows older than `retentionMs` (longer than any back-check can take), in batches. */
export async function cleanupMessageDecisions(client: Queryable, retentionMs: number, opts: { schema?: string; batch?: number } = {}): Promise<CleanupResult> {
  const table = qualified(opts.schema, 'message_decision');
  return deleteInBatches(client, retentionMs, opts.batch ?? 1000, (limit) =>
    `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE ${olderThan('created_at')} ${limit} FOR UPDATE SKIP LOCKED)`,
  );
}

/**
 * Deletes the decision rows, in the business database `business`, of
 * two-phase messages that are finished in the outbox of `outbox` (ready,
 * cancelled, or no longer there because they were sent and cleaned up) and
 * older than `retentionMs`. A decision of a message still **prepared** is
 * kept however old: without it a back-check would insert `rollback` and
 * cancel a message whose business transaction committed. Decisions are read
 * in pages of `batch` by (created_at, id), so kept rows never stall the
 * pass; a message is never prepared again, so a row found finished stays so
 * until it is deleted.
 */
export async function cleanupFinishedMessageDecisions(
  business: Queryable,
  outbox: Queryable,
  retentionMs: number,
  opts: { schema?: string; outboxSchema?: string; batch?: number } = {},
): Promise<CleanupResult> {
  const table = qualified(opts.schema, 'message_decision');
  const batch = opts.batch ?? 1000;
  // The page's end as text: a Date would cut PostgreSQL's microseconds and read rows again.
  let after: { at: string; id: string } | null = null;
  let deleted = 0;
  let batches = 0;
  for (;;) {
    const page: { id: string; created_at: string }[] = (
      await business.query<{ id: string; created_at: string }>(
        `SELECT id, created_at::text AS created_at FROM ${table} WHERE ${olderThan('created_at')} AND ($3::timestamptz IS NULL OR (created_at, id) > ($3::timestamptz, $4))
          ORDER BY created_at, id LIMIT $2`,
        [retentionMs, batch, after?.at ?? null, after?.id ?? ''],
      )
    ).rows;
    if (page.length === 0) return { deleted, batches };
    const ids = page.map((r) => r.id);
    const prepared = new Set(
      (await outbox.query<{ id: string }>(`SELECT id FROM ${qualified(opts.outboxSchema, 'outbox')} WHERE id = ANY($1) AND state = 'prepared'`, [ids])).rows.map((r) => r.id),
    );
    const finished = ids.filter((id) => !prepared.has(id));
    if (finished.length > 0) {
      deleted += (await business.query(`DELETE FROM ${table} WHERE id = ANY($1)`, [finished])).rowCount ?? 0;
      batches++;
    }
    if (page.length < batch) return { deleted, batches };
    const last = page[page.length - 1]!;
    after = { at: last.created_at, id: last.id };
  }
}

/** What one back-check pass did. */
export interface BackCheckResult {
  readonly committed: number;
  readonly cancelled: number;
  readonly unknown: number;
}

/**
 * One back-check pass over the outbox in `pool`: claims prepared messages
 * older than `afterMs` (oldest first, at most `batch`, `FOR UPDATE SKIP
 * LOCKED` so relays share them), asks `check` about each, and makes each
 * `ready` (commit), `cancelled` (rollback) or leaves it prepared with the
 * check counted and the error kept (unknown). `afterMs` must exceed the time
 * a normal business transaction takes between prepare and submit, or the
 * back-check races it (safely with `decisionBackCheck`, whose fence makes the
 * late transaction fail, but needlessly).
 */
export async function backCheckOnce(pool: pg.Pool, check: BackCheck, opts: { afterMs: number; batch?: number; schema?: string }): Promise<BackCheckResult> {
  const table = qualified(opts.schema, 'outbox');
  return inTransactionClient(pool, async (client) => {
    await client.query('BEGIN');
    const rows = (
      await client.query<{ id: string; topic: string; payload: unknown; created_at: Date }>(
        `SELECT id, topic, payload, created_at FROM ${table}
          WHERE state = 'prepared' AND ${olderThan('created_at')}
          ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [opts.afterMs, opts.batch ?? 100],
      )
    ).rows;
    const counts = { committed: 0, cancelled: 0, unknown: 0 };
    for (const r of rows) {
      let answer: BackCheckAnswer;
      let error: string | null = null;
      try {
        answer = await check({ id: r.id, topic: r.topic, payload: r.payload, createdAt: r.created_at });
      } catch (err) {
        answer = 'unknown';
        error = `back-check failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      const state = answer === 'commit' ? 'ready' : answer === 'rollback' ? 'cancelled' : 'prepared';
      await client.query(`UPDATE ${table} SET state = $2, checks = checks + 1, last_error = $3 WHERE id = $1`, [r.id, state, error]);
      counts[answer === 'commit' ? 'committed' : answer === 'rollback' ? 'cancelled' : 'unknown']++;
    }
    await client.query('COMMIT');
    return counts;
  });
}

/**
 * A back-check that asks the application over HTTP, as DTM's
 * `QueryPrepared`: POST `url` with `{ id, topic, payload, createdAt }` as
 * JSON; a 2xx answer `{ "outcome": "commit" | "rollback" | "unknown" }`
 * settles the message. Any other status, body or a timeout (`timeoutMs`,
 * 10 000 by default) throws, which the back-check counts as unknown (the
 * message is asked about again at the next pass).
 */
export function httpBackCheck(url: string, opts: { timeoutMs?: number } = {}): BackCheck {
  return async (message) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: message.id, topic: message.topic, payload: message.payload, createdAt: message.createdAt.toISOString() }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status} from ${url}`);
    let outcome: unknown;
    try {
      outcome = (JSON.parse(text) as { outcome?: unknown } | null)?.outcome;
    } catch {
      outcome = undefined;
    }
    if (outcome === 'commit' || outcome === 'rollback' || outcome === 'unknown') return outcome;
    throw new Error(`${url} answered ${JSON.stringify(text.slice(0, 80))}; expected {"outcome":"commit"|"rollback"|"unknown"}`);
  };
}
