/**
 * The TCC barrier: one fence table that makes a participant's try, confirm
 * and cancel handlers idempotent, turns a cancel that arrives before its try
 * into an empty cancel, and stops a try that arrives after its cancel from
 * reserving anything (no hanging). Each call inserts a fence row inside the
 * participant's own local transaction, so the fence and the business change
 * commit or roll back together. The argument is in README.md.
 */
import type { Queryable } from '../library/shard-gate.js';
import { createIdempotently, deleteInBatches, olderThan, qualified, type CleanupResult } from './saga-schema.js';

/** The three TCC operations. */
export type TccOp = 'try' | 'confirm' | 'cancel';

/** Where the fence table lives. */
export interface BarrierOptions {
  /** Schema of the fence table; `shardgate_saga` by default. */
  readonly schema?: string;
}

/** What a barrier call did. */
export type BarrierOutcome<T> =
  | { readonly kind: 'applied'; readonly value: T }
  /** `fn` was skipped: the op already ran, the cancel found no try (empty cancel), or the try came after its cancel. */
  | { readonly kind: 'skipped'; readonly why: 'duplicate' | 'empty-cancel' | 'after-cancel' };

/** The quoted, schema-qualified name of the fence table. */
export function barrierTable(opts: BarrierOptions = {}): string {
  return qualified(opts.schema, 'barrier');
}

/**
 * Creates the schema, the fence table and its `created_at` index if missing;
 * idempotent and safe when several processes run it at once. Must be called
 * on a connection that is not inside a transaction.
 */
export async function ensureBarrierTable(client: Queryable, opts: BarrierOptions = {}): Promise<void> {
  const table = barrierTable(opts);
  await createIdempotently(client, opts.schema, [
    `CREATE TABLE IF NOT EXISTS ${table} (
       gid text NOT NULL,
       branch_id text NOT NULL,
       op text NOT NULL CHECK (op IN ('try', 'confirm', 'cancel')),
       written_by text NOT NULL CHECK (written_by IN ('try', 'confirm', 'cancel')),
       created_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (gid, branch_id, op))`,
    `CREATE INDEX IF NOT EXISTS barrier_created_at ON ${table} (created_at)`,
  ]);
}

/** Inserts one fence; true when this call wrote it (false: a fence was already there). */
async function fence(tx: Queryable, table: string, gid: string, branch: string, op: TccOp, writtenBy: TccOp): Promise<boolean> {
  const res = await tx.query(`INSERT INTO ${table} (gid, branch_id, op, written_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [gid, branch, op, writtenBy]);
  return res.rowCount === 1;
}

/**
 * Runs `fn` at most once per (gid, branch, op), inside `tx`, the
 * participant's open local transaction (BEGIN already sent; the caller
 * commits). `fn` runs only when this call wrote the op's fence and, for a
 * cancel, when the try's fence already existed. A concurrent call for the same
 * fence waits on the primary key until this transaction ends.
 *
 * If the participant dies before its commit, both the fence and the change are
 * rolled back, and the coordinator's retry runs `fn` again, as it must.
 */
export async function barrier<T>(tx: Queryable, gid: string, branch: string, op: TccOp, fn: () => Promise<T>, opts: BarrierOptions = {}): Promise<BarrierOutcome<T>> {
  const table = barrierTable(opts);
  if (op === 'cancel') {
    // Written first so that a try arriving later finds it (no hanging). If
    // this insert succeeds, no try ever ran: nothing to undo.
    const tryMissing = await fence(tx, table, gid, branch, 'try', 'cancel');
    const first = await fence(tx, table, gid, branch, 'cancel', 'cancel');
    if (!first) return { kind: 'skipped', why: 'duplicate' };
    if (tryMissing) return { kind: 'skipped', why: 'empty-cancel' };
    return { kind: 'applied', value: await fn() };
  }
  if (await fence(tx, table, gid, branch, op, op)) return { kind: 'applied', value: await fn() };
  if (op === 'try') {
    const res = await tx.query<{ written_by: string }>(`SELECT written_by FROM ${table} WHERE gid = $1 AND branch_id = $2 AND op = 'try'`, [gid, branch]);
    if (res.rows[0]?.written_by === 'cancel') return { kind: 'skipped', why: 'after-cancel' };
  }
  return { kind: 'skipped', why: 'duplicate' };
}

/**
 * Deletes fences older than `retentionMs` (through the `created_at` index),
 * `batch` (1000 by default) per statement, and returns how many and in how
 * many statements. The retention must exceed the longest time a late try can
 * still arrive: after that a try for a cancelled gid would find no fence.
 */
export async function cleanupBarrier(client: Queryable, retentionMs: number, opts: BarrierOptions & { batch?: number } = {}): Promise<CleanupResult> {
  const table = barrierTable(opts);
  return deleteInBatches(client, retentionMs, opts.batch ?? 1000, (limit) =>
    `DELETE FROM ${table} WHERE (gid, branch_id, op) IN (SELECT gid, branch_id, op FROM ${table} WHERE ${olderThan('created_at')} ${limit} FOR UPDATE SKIP LOCKED)`,
  );
}
