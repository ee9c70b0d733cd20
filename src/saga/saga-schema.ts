/**
 * The schema all saga state lives in, and its idempotent creation.
 */
import type pg from 'pg';
import type { Queryable } from '../library/shard-gate.js';
import { quoteIdent } from '../tx/gid.js';

/** The schema used when none is given. */
export const defaultSagaSchema = 'shardgate_saga';

/** `schema.table`, both quoted (the schema is configuration, never trusted as SQL). */
export function qualified(schema: string | undefined, table: string): string {
  return `${quoteIdent(schema ?? defaultSagaSchema)}.${quoteIdent(table)}`;
}

/**
 * Creates `schema` and runs `statements` (each `CREATE … IF NOT EXISTS`) in one
 * transaction under an advisory lock: concurrent `CREATE … IF NOT EXISTS` of the
 * same object can still collide in the catalogue, so processes that start
 * together take turns. Must be called on a connection outside a transaction.
 */
export async function createIdempotently(client: Queryable, schema: string | undefined, statements: readonly string[]): Promise<void> {
  const name = schema ?? defaultSagaSchema;
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`shardgate_saga schema ${name}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(name)}`);
    for (const sql of statements) await client.query(sql);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/**
 * Runs `fn` on a client of `pool` that `fn` opens transactions on. If `fn`
 * throws, the open transaction is rolled back and the client is discarded
 * rather than returned (its state is unknown), and the error is rethrown.
 */
export async function inTransactionClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    return await fn(client);
  } catch (err) {
    broken = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release(broken);
  }
}

/** What one cleanup removed: rows, and the DELETE statements it took. */
export interface CleanupResult {
  readonly deleted: number;
  readonly batches: number;
}

/**
 * Runs the DELETE `sql(limit)` — whose key subquery ends with `limit` and
 * selects rows older than `$1` milliseconds — with `$2 = batch`, again and
 * again until a batch comes back short. Each batch is its own statement (so
 * its own short transaction when `client` is not inside one): locks and WAL
 * bursts stay small whatever the backlog.
 */
export async function deleteInBatches(
  client: Queryable,
  retentionMs: number,
  batch: number,
  sql: (limit: string) => string,
): Promise<CleanupResult> {
  if (!Number.isFinite(retentionMs) || retentionMs < 0) throw new RangeError(`retentionMs must be a non-negative number of milliseconds, got ${retentionMs}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  let deleted = 0;
  let batches = 0;
  for (;;) {
    const res = await client.query(sql('LIMIT $2'), [retentionMs, batch]);
    batches++;
    const n = res.rowCount ?? 0;
    deleted += n;
    if (n < batch) return { deleted, batches };
  }
}

/** SQL for "older than $1 milliseconds" on `column`. */
export function olderThan(column: string): string {
  return `${column} < now() - make_interval(secs => $1::float8 / 1000)`;
}
