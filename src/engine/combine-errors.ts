import { PgError, sgError } from '../errors/index.js';

/**
 * Turns anything thrown while working on a shard into a PgError. Shard errors
 * keep every field; anything else is an internal error naming its cause.
 */
export function asPgError(err: unknown): PgError {
  if (err instanceof PgError) return err;
  return sgError('internal', { reason: err instanceof Error ? err.message : String(err) });
}

/**
 * One error for several shards that failed the same statement: the first
 * error's fields (code, position, constraint…) unchanged, and a detail line
 * naming every shard with its message, so no failure is hidden.
 */
export function combineErrors(errors: readonly unknown[]): PgError {
  const all = errors.map(asPgError);
  const first = all[0];
  if (first === undefined) return sgError('internal', { reason: 'combineErrors called without errors' });
  if (all.length === 1) return first;
  const lines = all.map((e) => `shard ${e.shard ?? '?'}: ${e.fields.code} ${e.message}`);
  const detail = [first.fields.detail, `Failed on ${all.length} shards: ${lines.join('; ')}`].filter((d) => d !== undefined).join('\n');
  return first.with({ detail });
}

/** True when the connection that raised `err` can no longer be trusted (its protocol state is unknown). */
export function breaksConnection(err: unknown): boolean {
  if (!(err instanceof PgError)) return true;
  return err.fatal || err.code.startsWith('08') || err.code === '57P01';
}
