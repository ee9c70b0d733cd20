import { PgError } from '../errors/pg-error.js';
import { GATE_SHARED_SQL } from './cut.js';
import { quoteLiteral, textArray } from './gid.js';
import type { Outcome, TxConnection } from './types.js';

/** Arbitrary constant key serializing concurrent schema creation by several instances. */
const SCHEMA_LOCK_KEY = 7_305_318_224;

/**
 * Creates schema `shardgate` and the decision table on one shard. Idempotent,
 * and safe when several instances start at once: CREATE … IF NOT EXISTS alone
 * can still fail on a concurrent create, so an advisory lock serializes it.
 */
export async function ensureDecisionTable(conn: TxConnection): Promise<void> {
  try {
    await conn.exec(
      [
        'BEGIN ISOLATION LEVEL READ COMMITTED',
        `SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`,
        'CREATE SCHEMA IF NOT EXISTS shardgate',
        `CREATE TABLE IF NOT EXISTS shardgate.tx_decision (
           gid text PRIMARY KEY,
           outcome text NOT NULL CHECK (outcome IN ('commit', 'abort')),
           participants text[] NOT NULL DEFAULT '{}',
           created_at timestamptz NOT NULL DEFAULT now())`,
        'CREATE INDEX IF NOT EXISTS tx_decision_created_at ON shardgate.tx_decision (created_at)',
        'COMMIT',
      ].join(';\n'),
    );
  } catch (err) {
    await conn.exec('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The statement that records a commit decision inside the anchor's own transaction and commits it. */
export function commitDecisionSql(gid: string, participants: readonly string[]): string {
  // The shared gate first: a cut holding the gate keeps this decision from committing (src/tx/cut.ts).
  return `${GATE_SHARED_SQL}; INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES (${quoteLiteral(gid)}, 'commit', ${quoteLiteral(textArray(participants))}); COMMIT`;
}

/**
 * Fixes the outcome of `gid` for good and returns it; run on the anchor.
 *
 * Inserts an 'abort' row unless one exists. If the coordinator's anchor
 * transaction still holds an uncommitted 'commit' row, the insert waits for it
 * (up to the lock timeout) and then sees its fate; if the coordinator never
 * wrote the row, 'abort' wins and the coordinator's later insert fails on the
 * primary key. READ COMMITTED is explicit: the SELECT must see a row committed
 * while the INSERT waited, whatever the shard's default isolation is.
 */
export async function resolveDecision(conn: TxConnection, gid: string, participants: readonly string[], lockTimeout = '2s'): Promise<Outcome> {
  try {
    await conn.exec(`BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = ${quoteLiteral(lockTimeout)}`);
    await conn.rows(
      "INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES ($1, 'abort', $2::text[]) ON CONFLICT (gid) DO NOTHING",
      [gid, textArray(participants)],
    );
    const rows = await conn.rows('SELECT outcome FROM shardgate.tx_decision WHERE gid = $1', [gid]);
    const tag = await conn.exec('COMMIT');
    // If the COMMIT did not happen, an 'abort' we inserted is not durable and must not be acted on.
    if (tag !== 'COMMIT') throw new Error(`decision transaction for ${gid} ended with ${tag}`);
    const outcome = rows[0]?.[0];
    if (outcome !== 'commit' && outcome !== 'abort') throw new Error(`no decision row for ${gid} after insert`);
    return outcome;
  } catch (err) {
    await conn.exec('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Reads the decision for `gid` without recording one (for reports). */
export async function readDecision(conn: TxConnection, gid: string): Promise<Outcome | null> {
  const rows = await conn.rows('SELECT outcome FROM shardgate.tx_decision WHERE gid = $1', [gid]);
  const outcome = rows[0]?.[0];
  return outcome === 'commit' || outcome === 'abort' ? outcome : null;
}

/**
 * True when an error leaves it unknown whether the shard ran the statement:
 * the connection broke or the server went down. An ERROR the server sent
 * means the statement (and a COMMIT among them) did not take effect.
 */
export function outcomeUnknown(err: unknown): boolean {
  if (!(err instanceof PgError)) return true;
  return err.code.startsWith('08') || err.code.startsWith('57P');
}

/** The error as a PgError (non-PgErrors become connection failures of `shard`). */
export function asPgError(err: unknown, shard: string): PgError {
  if (err instanceof PgError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PgError({ severity: 'ERROR', code: '08006', message: `shard ${shard}: ${message}` }, shard);
}

/**
 * Combines errors from parallel work on several shards into one: the first
 * error's fields, with every other shard's error named in the detail.
 */
export function combineErrors(failures: readonly { shard: string; error: unknown }[]): PgError {
  const errors = failures.map((f) => ({ shard: f.shard, error: asPgError(f.error, f.shard) }));
  const [first, ...rest] = errors;
  if (!first) throw new Error('combineErrors needs at least one failure');
  if (rest.length === 0) return first.error;
  const others = rest.map((r) => `shard ${r.shard}: ${r.error.code} ${r.error.message}`).join('; ');
  const detail = first.error.fields.detail === undefined ? `Also failed: ${others}` : `${first.error.fields.detail}\nAlso failed: ${others}`;
  return first.error.with({ detail });
}
