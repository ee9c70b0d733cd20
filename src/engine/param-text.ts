import type { ClientStatement } from './session-api.js';

/**
 * Text form of client parameters, for routing only: the planner reads sharding
 * keys and LIMIT/OFFSET values as text. Shards still receive the parameters
 * exactly as the client sent them.
 */

// Type OIDs whose binary form we can turn into text.
const BOOL = 16;
const INT8 = 20;
const INT2 = 21;
const INT4 = 23;
const OID = 26;
const NAME = 19;
const TEXT = 25;
const BPCHAR = 1042;
const VARCHAR = 1043;
const UNKNOWN = 705;
const DATE = 1082;
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;
const NUMERIC = 1700;
const UUID = 2950;

// PostgreSQL's epoch for date and timestamp binary values: 2000-01-01 00:00:00 UTC.
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const MS_PER_DAY = 86_400_000;

// Binary numeric sign words.
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

/**
 * Converts one binary parameter to PostgreSQL's text form for the types the
 * router can use (integers, text types, uuid, numeric, date, timestamps, bool,
 * oid). Returns undefined for any other type or a malformed value: the
 * planner then treats the value as unknown.
 */
export function paramToText(typeOid: number, value: Buffer): string | undefined {
  try {
    switch (typeOid) {
      case INT2:
        return value.length === 2 ? String(value.readInt16BE(0)) : undefined;
      case INT4:
        return value.length === 4 ? String(value.readInt32BE(0)) : undefined;
      case INT8:
        return value.length === 8 ? value.readBigInt64BE(0).toString() : undefined;
      case OID:
        return value.length === 4 ? String(value.readUInt32BE(0)) : undefined;
      case BOOL:
        return value.length === 1 ? (value[0] === 0 ? 'false' : 'true') : undefined;
      case TEXT:
      case VARCHAR:
      case BPCHAR:
      case NAME:
      case UNKNOWN:
        return value.toString('utf8');
      case UUID:
        return value.length === 16 ? uuidText(value) : undefined;
      case NUMERIC:
        return numericText(value);
      case DATE:
        return value.length === 4 ? dateText(value.readInt32BE(0)) : undefined;
      case TIMESTAMP:
      case TIMESTAMPTZ:
        return value.length === 8 ? timestampText(value.readBigInt64BE(0), typeOid === TIMESTAMPTZ) : undefined;
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Binary numeric: ndigits, weight, sign, dscale (int16 each), then base-10000 digits. */
function numericText(b: Buffer): string | undefined {
  if (b.length < 8) return undefined;
  const ndigits = b.readInt16BE(0);
  const weight = b.readInt16BE(2);
  const sign = b.readUInt16BE(4);
  const dscale = b.readInt16BE(6);
  if (b.length !== 8 + 2 * ndigits) return undefined;
  if (sign === NUMERIC_NAN) return 'NaN';
  if (sign === NUMERIC_PINF) return 'Infinity';
  if (sign === NUMERIC_NINF) return '-Infinity';
  const digit = (i: number): number => (i >= 0 && i < ndigits ? b.readInt16BE(8 + 2 * i) : 0);
  let int = '';
  if (weight < 0) int = '0';
  for (let i = 0; i <= weight; i++) int += i === 0 ? String(digit(i)) : String(digit(i)).padStart(4, '0');
  let frac = '';
  for (let i = weight + 1; frac.length < dscale; i++) frac += String(digit(i)).padStart(4, '0');
  frac = frac.slice(0, dscale);
  const neg = sign === NUMERIC_NEG && (/[1-9]/.test(int) || /[1-9]/.test(frac));
  return `${neg ? '-' : ''}${int}${dscale > 0 ? `.${frac}` : ''}`;
}

function dateText(days: number): string {
  return new Date(PG_EPOCH_MS + days * MS_PER_DAY).toISOString().slice(0, 10);
}

function timestampText(micros: bigint, withZone: boolean): string {
  // Floor division so that times before 2000 keep a non-negative microsecond remainder.
  let ms = micros / 1000n;
  let rest = micros % 1000n;
  if (rest < 0n) {
    rest += 1000n;
    ms -= 1n;
  }
  const iso = new Date(PG_EPOCH_MS + Number(ms)).toISOString();
  const fraction = `${iso.slice(20, 23)}${String(rest).padStart(3, '0')}`.replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction === '' ? '' : `.${fraction}`}${withZone ? '+00' : ''}`;
}

/**
 * The client's parameters as text for the planner: text-format values decoded
 * as UTF-8, binary ones converted when the type allows, otherwise undefined.
 */
export function routingParams(stmt: ClientStatement): (string | null | undefined)[] {
  const params = stmt.params ?? [];
  const formats = stmt.paramFormats ?? [];
  return params.map((value, i) => {
    if (value === null) return null;
    const format = formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : formats[i];
    if (format !== 1) return value.toString('utf8');
    return paramToText(stmt.paramTypes?.[i] ?? 0, value);
  });
}
