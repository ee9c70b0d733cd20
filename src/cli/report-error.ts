import { PgError } from '../errors/pg-error.js';
import type { CliIo } from './cli-io.js';

/** Prints a ShardGate or shard error as `shardgate: <command>: ERROR <SQLSTATE>: message` and its hint; returns the exit status, 1. */
export function reportError(io: CliIo, command: string, err: unknown): number {
  if (!(err instanceof PgError)) {
    io.err(`shardgate: ${command}: ${(err as Error).message ?? String(err)}`);
    return 1;
  }
  io.err(`shardgate: ${command}: ERROR ${err.code}: ${err.message}${err.shard !== undefined ? ` (shard ${err.shard})` : ''}`);
  if (err.fields.detail !== undefined) io.err(`DETAIL: ${err.fields.detail}`);
  if (err.fields.hint !== undefined) io.err(`HINT: ${err.fields.hint}`);
  return 1;
}
