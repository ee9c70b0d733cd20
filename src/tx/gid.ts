import { randomBytes } from 'node:crypto';
import type { ShardName } from '../config/names.js';

/**
 * Global transaction identifiers.
 *
 * - id (`sg_<coordinatorId>_<unique>`, at most 57 bytes): set as
 *   application_name on every branch (PostgreSQL keeps 63 bytes of it), so
 *   pg_stat_activity and pg_locks show which global transaction a backend serves.
 * - gid (`sg_<coordinatorId>_<anchor>_<unique>`): the decision row's key; it
 *   names the anchor so recovery knows where to look.
 * - prepared gid (`<gid>_<shard>`): what `PREPARE TRANSACTION` is given on each
 *   non-anchor shard. PostgreSQL requires prepared identifiers to be unique per
 *   cluster, and two shards may be two databases of one cluster.
 *
 * Coordinator ids and shard names are 1-32 letters or digits (the config
 * schema enforces it), so `_` separates the parts without ambiguity.
 */
export const NAME_PATTERN = /^[A-Za-z0-9]{1,32}$/;
const PREPARED_PATTERN = /^sg_([A-Za-z0-9]{1,32})_([A-Za-z0-9]{1,32})_([0-9a-z]{1,40})_([A-Za-z0-9]{1,32})$/;
const ID_PATTERN = /^sg_[A-Za-z0-9]{1,32}_[0-9a-z]{1,40}$/;

let counter = 0;

/**
 * A unique part that never repeats, also across restarts of the same
 * coordinator: a reused gid could meet an old decision row, so it carries the
 * time in milliseconds, a counter and 48 random bits.
 */
export function uniquePart(): string {
  counter = (counter + 1) % 46656;
  const random = BigInt(`0x${randomBytes(6).toString('hex')}`).toString(36).padStart(10, '0');
  return `${Date.now().toString(36)}${counter.toString(36).padStart(3, '0')}${random}`;
}

/** A new global transaction id for a coordinator. */
export function newTransactionId(coordinatorId: string): string {
  return `sg_${coordinatorId}_${uniquePart()}`;
}

/** The gid of a transaction id once its anchor is chosen. */
export function gidFor(id: string, anchor: ShardName): string {
  if (!ID_PATTERN.test(id) || !NAME_PATTERN.test(anchor)) throw new Error(`malformed transaction id ${id} or shard ${anchor}`);
  const at = id.lastIndexOf('_');
  return `${id.slice(0, at)}_${anchor}${id.slice(at)}`;
}

/** The identifier a non-anchor branch is prepared under. */
export function preparedGid(gid: string, shard: ShardName): string {
  return `${gid}_${shard}`;
}

/** The parts of a prepared identifier, or null when it is not one of ours. */
export function parsePreparedGid(prepared: string): { gid: string; coordinatorId: string; anchor: ShardName; shard: ShardName } | null {
  const m = PREPARED_PATTERN.exec(prepared);
  if (!m) return null;
  const [, coordinatorId, anchor, unique, shard] = m as unknown as [string, string, string, string, string];
  return { gid: `sg_${coordinatorId}_${anchor}_${unique}`, coordinatorId, anchor: anchor as ShardName, shard: shard as ShardName };
}

/** True for the application_name of one of our branches. */
export function isTransactionId(name: string | null | undefined): name is string {
  return typeof name === 'string' && ID_PATTERN.test(name);
}

/** A SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('NUL byte in SQL literal');
  return `'${value.replace(/'/g, "''")}'`;
}

/** A SQL identifier, always quoted so its case and characters are kept. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('NUL byte in SQL identifier');
  return `"${name.replace(/"/g, '""')}"`;
}

/** A PostgreSQL text[] literal (to pass as a text parameter). */
export function textArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/(["\\])/g, '\\$1')}"`).join(',')}}`;
}
