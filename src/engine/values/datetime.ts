import { sgError } from '../../errors/catalogue.js';

/**
 * Date and time values as comparable numbers, on the same scale as
 * PostgreSQL's binary format so text and binary decode to equal values:
 * date = days since 2000-01-01, time = microseconds since midnight,
 * timestamp / timestamptz = microseconds since 2000-01-01 00:00 UTC (bigint).
 * `infinity` / `-infinity` become ±Infinity, which order correctly against
 * both numbers and bigints.
 *
 * Text is read in the ISO DateStyle only (PostgreSQL's default). Other styles
 * (SQL, German, Postgres) are refused instead of being mis-ordered; years
 * beyond 9999 and BC dates are handled, which plain lexical comparison would not.
 */
export type DateValue = number;
export type TimestampValue = bigint | number;

const USEC_PER_DAY = 86_400_000_000n;
const DAYS_1970_TO_2000 = 10_957;

/** Days from 1970-01-01 to a proleptic Gregorian date with an astronomical year (1 BC = 0). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function notIso(type: string, text: string): Error {
  return sgError('featureNotSupported', {
    feature: `comparing ${type} value "${text}" (not in the ISO DateStyle) across shards`,
    hint: "Use the default DateStyle: SET DateStyle = 'ISO, MDY'.",
  });
}

function infinity(text: string): number | null {
  if (text === 'infinity') return Infinity;
  if (text === '-infinity') return -Infinity;
  return null;
}

const DATE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;

/** Decodes date text (`2024-02-29`, `0044-03-15 BC`, `infinity`). */
export function parseDateText(text: string): DateValue {
  const inf = infinity(text);
  if (inf !== null) return inf;
  const m = DATE.exec(text);
  if (m === null) throw notIso('date', text);
  const year = m[4] === undefined ? Number(m[1]) : 1 - Number(m[1]);
  return daysFromCivil(year, Number(m[2]), Number(m[3])) - DAYS_1970_TO_2000;
}

const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

function timeOfDayMicros(h: string, m: string, s: string, frac: string | undefined): number {
  return ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1_000_000 + Number((frac ?? '').padEnd(6, '0'));
}

/** Decodes time (without time zone) text `HH:MM:SS[.ffffff]` into microseconds since midnight. */
export function parseTimeText(text: string): number {
  const m = TIME.exec(text);
  if (m === null) throw notIso('time', text);
  return timeOfDayMicros(m[1]!, m[2]!, m[3]!, m[4]);
}

const TIMESTAMP = /^(\d{4,})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?(?:([+-])(\d{2})(?::?(\d{2})(?::(\d{2}))?)?)?( BC)?$/;

/**
 * Decodes timestamp / timestamptz text in the ISO DateStyle. For timestamptz
 * the UTC offset PostgreSQL prints (`+01`, `+05:30`, `-00:09:21`) is applied,
 * so values printed with different offsets (daylight saving) order correctly;
 * a timestamptz without an offset is refused because its zone is unknown here.
 */
export function parseTimestampText(text: string, withZone: boolean): TimestampValue {
  const inf = infinity(text);
  if (inf !== null) return inf;
  const m = TIMESTAMP.exec(text);
  if (m === null) throw notIso(withZone ? 'timestamptz' : 'timestamp', text);
  const year = m[12] === undefined ? Number(m[1]) : 1 - Number(m[1]);
  const days = daysFromCivil(year, Number(m[2]), Number(m[3])) - DAYS_1970_TO_2000;
  const micros = m[4] === undefined ? 0 : timeOfDayMicros(m[4], m[5]!, m[6]!, m[7]);
  let value = BigInt(days) * USEC_PER_DAY + BigInt(micros);
  if (withZone) {
    if (m[8] === undefined) throw notIso('timestamptz', text);
    const offsetSeconds = (Number(m[9]) * 60 + Number(m[10] ?? 0)) * 60 + Number(m[11] ?? 0);
    // Local time = UTC + offset, so UTC = local - offset.
    value -= BigInt(m[8] === '-' ? -offsetSeconds : offsetSeconds) * 1_000_000n;
  }
  return value;
}

/** Binary date: int32 days since 2000-01-01; INT32_MAX / INT32_MIN are ±infinity. */
export function decodeDateBinary(buf: Buffer): DateValue {
  const days = buf.readInt32BE(0);
  if (days === 0x7fffffff) return Infinity;
  if (days === -0x80000000) return -Infinity;
  return days;
}

/** Binary timestamp / timestamptz: int64 microseconds since 2000-01-01 UTC; INT64_MAX / INT64_MIN are ±infinity. */
export function decodeTimestampBinary(buf: Buffer): TimestampValue {
  const micros = buf.readBigInt64BE(0);
  if (micros === 0x7fffffffffffffffn) return Infinity;
  if (micros === -0x8000000000000000n) return -Infinity;
  return micros;
}
