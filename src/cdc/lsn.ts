import { sgError } from '../errors/catalogue.js';

/**
 * A WAL position (XLogRecPtr): an unsigned 64-bit byte offset into the WAL,
 * written by PostgreSQL as two hexadecimal 32-bit halves, `X/Y`. Kept as a
 * bigint so positions past 2^53 compare exactly.
 */
export type Lsn = bigint & { readonly __brand: 'Lsn' };

/** InvalidXLogRecPtr: "no position" in every message that carries one. */
export const INVALID_LSN = 0n as Lsn;

const MAX_LSN = (1n << 64n) - 1n;
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** An Lsn from a bigint; refuses values outside 0 … 2^64-1. */
export function lsn(value: bigint): Lsn {
  if (value < 0n || value > MAX_LSN) throw new RangeError(`LSN ${value} is outside 0 … 2^64-1`);
  return value as Lsn;
}

/** Parses PostgreSQL's text form `X/Y` (as pg_lsn prints it, e.g. `16/B374D848`). */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (!m) throw sgError('protocolViolation', { reason: `invalid LSN "${text}": expected X/Y with 1-8 hexadecimal digits each` });
  return ((BigInt(`0x${m[1]!}`) << 32n) | BigInt(`0x${m[2]!}`)) as Lsn;
}

/** The text form PostgreSQL prints: upper-case hexadecimal halves without leading zeros (`0/16B3748`). */
export function formatLsn(value: Lsn): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Negative when `a` is before `b`, zero when equal, positive when after (a comparator for sort). */
export function compareLsn(a: Lsn, b: Lsn): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A TimestampTz as the replication protocols send it: microseconds since the
 * PostgreSQL epoch, 2000-01-01 00:00:00 UTC (Int64, signed).
 */
export type PgTimestamp = bigint & { readonly __brand: 'PgTimestamp' };

/** Microseconds from the Unix epoch to the PostgreSQL epoch (946684800 s). */
const PG_EPOCH_MICROS = 946_684_800_000_000n;

/** The Date of a PgTimestamp, to the millisecond (the microseconds are dropped). */
export function pgTimestampToDate(ts: PgTimestamp): Date {
  return new Date(Number((ts + PG_EPOCH_MICROS) / 1000n));
}

/** The PgTimestamp of a Date (whole milliseconds). */
export function dateToPgTimestamp(date: Date): PgTimestamp {
  return (BigInt(date.getTime()) * 1000n - PG_EPOCH_MICROS) as PgTimestamp;
}
