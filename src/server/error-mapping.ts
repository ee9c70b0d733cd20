import { PgError, sgError } from '../errors/index.js';
import type { ServerLog } from './server-log.js';

/**
 * Turns anything thrown while serving a client into the PgError the client
 * sees. PgErrors (from shards or from ShardGate) pass through unchanged; any
 * other exception is a ShardGate bug and becomes an XX000 error for that
 * statement only, logged with its stack, never a crash of the process.
 */
export function toPgError(err: unknown, log: ServerLog): PgError {
  if (err instanceof PgError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  log.error({ err }, 'internal error while serving a client');
  return sgError('internal', { reason });
}

/**
 * Shifts an error's position by `offset` characters: errors of statement k of
 * a multi-statement Query point into that statement's own text, the client
 * expects a position in the whole string it sent.
 */
export function shiftPosition(err: PgError, offset: number): PgError {
  const position = err.fields.position;
  if (offset === 0 || position === undefined) return err;
  const n = Number(position);
  if (!Number.isInteger(n)) return err;
  return err.with({ position: String(n + offset) });
}

/** The same error with severity FATAL: before authentication completes, every error ends the connection. */
export function asFatal(err: PgError): PgError {
  return err.fatal ? err : err.with({ severity: 'FATAL' });
}

/**
 * The error as the client should see it. A shard's FATAL (its backend
 * connection ended) is not the end of the client's session: ShardGate keeps
 * serving it over other backend connections, so it becomes an ERROR.
 */
export function toClientError(err: unknown, log: ServerLog): PgError {
  const error = toPgError(err, log);
  return error.fatal && error.shard !== undefined ? error.with({ severity: 'ERROR' }) : error;
}
