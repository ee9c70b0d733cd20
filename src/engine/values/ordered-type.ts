import type { FormatCode } from '../../protocol/fields.js';
import { sgError } from '../../errors/catalogue.js';
import { TypeOid } from './type-oids.js';
import { compareNumeric, decodeNumeric, numericKey } from './numeric.js';
import type { Numeric } from './numeric.js';
import { compareFloat, decodeFloat } from './float-format.js';
import { decodeDateBinary, decodeTimestampBinary, parseDateText, parseTimeText, parseTimestampText } from './datetime.js';

/** Kinds of values that compare with each other; HAVING compares across integer, numeric and float. */
export type ValueFamily = 'integer' | 'float' | 'numeric' | 'bytes' | 'bool' | 'date' | 'time' | 'timestamp' | 'timestamptz';

/**
 * How to decode, order and test equality of one column's values, in the
 * column's format. Text and binary decode to the same representation, so a
 * value decoded from text compares correctly with one decoded from binary.
 */
export interface OrderedType<T = unknown> {
  readonly typeOid: number;
  readonly format: FormatCode;
  readonly family: ValueFamily;
  /** The comparable value of a non-NULL column value. */
  decode(raw: Buffer): T;
  /** PostgreSQL's ordering of the type (C collation for text types; NaN above all floats). */
  compare(a: T, b: T): number;
  /** Equal strings exactly for values PostgreSQL's `=` calls equal (1.0 = 1.00, -0 = 0, 'a ' = 'a' for char(n)). */
  key(value: T): string;
}

/** What the column is used for: ordering and comparing need the text order, grouping only equality. */
export type KeyPurpose = 'ordering' | 'grouping' | 'comparing';

/**
 * What the merge may assume about text values (text, varchar, bpchar, name)
 * of one statement, from the collations in effect on the shards:
 * - `order`: their order is UTF-8 byte order (the collation is C/POSIX, or
 *   a builtin code-point collation), so ordering, min/max and `<` may be
 *   evaluated here;
 * - `equality`: `=` is byte equality (every collation that can be in effect
 *   is deterministic), so GROUP BY and DISTINCT may be evaluated here.
 * When a flag is false, the key is refused (0A000) rather than compared as
 * bytes: a linguistic collation orders differently.
 */
export interface TextRules {
  readonly order: boolean;
  readonly equality: boolean;
}

/** Text compares as bytes: for values known to be in C collation (and tests of other types). */
export const TEXT_AS_BYTES: TextRules = { order: true, equality: true };

/** Nothing known about the collations in effect: text keys are refused. */
export const TEXT_UNKNOWN: TextRules = { order: false, equality: false };

const TEXT_TYPES: ReadonlySet<number> = new Set([TypeOid.text, TypeOid.varchar, TypeOid.name, TypeOid.bpchar]);

/** Whether values of this type are ordered by a collation (text, varchar, bpchar, name). */
export function isCollatable(typeOid: number): boolean {
  return TEXT_TYPES.has(typeOid);
}

function refuseCollation(typeOid: number, purpose: KeyPurpose): Error {
  const what = purpose === 'grouping' ? 'grouping or DISTINCT on' : purpose === 'ordering' ? 'ordering by' : 'comparing';
  return sgError('featureNotSupported', {
    feature: `${what} text (type ${typeOid}) across shards under a collation other than C`,
    hint:
      purpose === 'grouping'
        ? 'A nondeterministic or unknown collation is in effect; filter by the sharding key so one shard answers.'
        : 'Add COLLATE "C" to the expression if byte order is what you want, or filter by the sharding key so one shard answers.',
  });
}

const compareScalar = (a: number | bigint, b: number | bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/** Parses canonical integer text (what int2out/int4out/oidout print) without allocating a string. */
function parseIntText(buf: Buffer): number {
  let i = 0;
  let negative = false;
  if (buf[0] === 0x2d) {
    negative = true;
    i = 1;
  }
  let n = 0;
  for (; i < buf.length; i++) {
    const c = buf[i]! - 0x30;
    if (c < 0 || c > 9) throw sgError('invalidTextRepresentation', { type: 'integer', value: buf.toString('latin1') });
    n = n * 10 + c;
  }
  if (buf.length === 0 || (negative && buf.length === 1)) throw sgError('invalidTextRepresentation', { type: 'integer', value: '' });
  return negative ? -n : n;
}

function integerType(typeOid: number, format: FormatCode): OrderedType<number | bigint> {
  let decode: (raw: Buffer) => number | bigint;
  if (typeOid === TypeOid.int8) {
    decode = format === 1 ? (raw) => raw.readBigInt64BE(0) : (raw) => BigInt(raw.toString('latin1'));
  } else if (format === 0) {
    decode = parseIntText;
  } else if (typeOid === TypeOid.int2) {
    decode = (raw) => raw.readInt16BE(0);
  } else if (typeOid === TypeOid.int4) {
    decode = (raw) => raw.readInt32BE(0);
  } else {
    decode = (raw) => raw.readUInt32BE(0);
  }
  return { typeOid, format, family: 'integer', decode, compare: compareScalar, key: String };
}

const BPCHAR_SPACE = 0x20;

/** char(n) compares ignoring trailing spaces (bpcharcmp), so they are cut off before comparing. */
function trimTrailingSpaces(raw: Buffer): Buffer {
  let end = raw.length;
  while (end > 0 && raw[end - 1] === BPCHAR_SPACE) end--;
  return end === raw.length ? raw : raw.subarray(0, end);
}

/** byteaout text: `\x` hex (bytea_output = hex, the default) or the escape format. */
function decodeByteaText(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex');
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === '\\') {
      bytes.push(0x5c);
      i++;
    } else if (text[i] === '\\') {
      bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(text.charCodeAt(i));
    }
  }
  return Buffer.from(bytes);
}

/** "char" prints bytes outside ASCII as `\ooo`. */
function decodeCharText(raw: Buffer): Buffer {
  return raw.length === 4 && raw[0] === 0x5c ? Buffer.from([parseInt(raw.toString('latin1', 1), 8)]) : raw;
}

function bytesType(typeOid: number, format: FormatCode, decode: (raw: Buffer) => Buffer): OrderedType<Buffer> {
  return { typeOid, format, family: 'bytes', decode, compare: Buffer.compare, key: (v) => v.toString('latin1') };
}

function floatKey(v: number): string {
  return v === 0 ? '0' : String(v);
}

function refuse(typeOid: number, purpose: KeyPurpose): Error {
  const what = purpose === 'ordering' ? 'ordering by' : purpose === 'grouping' ? 'grouping or DISTINCT on' : 'comparing values of';
  return sgError('featureNotSupported', {
    feature: `${what} type ${typeOid} across shards`,
    hint:
      typeOid === TypeOid.interval
        ? 'Interval ordering depends on PostgreSQL\'s month/day normalisation; order by extract(epoch from …) instead, or filter by the sharding key so one shard answers.'
        : 'Cast the column to text, numeric or another built-in scalar type, or filter by the sharding key so one shard answers.',
  });
}

/**
 * The decode/compare/equality rules for a column of the given type OID and
 * format. Text types compare as UTF-8 bytes, which is PostgreSQL's C
 * collation, and are accepted only when `text` says that is the collation in
 * effect (for `grouping`: that equality is byte equality); otherwise they are
 * refused with 0A000. Date and time text must be in the ISO DateStyle. Throws
 * `featureNotSupported` (0A000) for interval and for any type not listed here.
 */
export function orderedType(typeOid: number, format: FormatCode, purpose: KeyPurpose, text: TextRules): OrderedType {
  if (TEXT_TYPES.has(typeOid) && !(purpose === 'grouping' ? text.equality : text.order)) throw refuseCollation(typeOid, purpose);
  switch (typeOid) {
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.int8:
    case TypeOid.oid:
      return integerType(typeOid, format) as OrderedType;
    case TypeOid.float4:
    case TypeOid.float8:
      return { typeOid, format, family: 'float', decode: (raw: Buffer) => decodeFloat(raw, format), compare: compareFloat, key: floatKey } as OrderedType;
    case TypeOid.numeric:
      return { typeOid, format, family: 'numeric', decode: (raw: Buffer) => decodeNumeric(raw, format), compare: compareNumeric, key: numericKey } as OrderedType<Numeric> as OrderedType;
    case TypeOid.text:
    case TypeOid.varchar:
    case TypeOid.name:
      return bytesType(typeOid, format, (raw) => raw) as OrderedType;
    case TypeOid.bpchar:
      return bytesType(typeOid, format, trimTrailingSpaces) as OrderedType;
    case TypeOid.char:
      return bytesType(typeOid, format, format === 1 ? (raw) => raw : decodeCharText) as OrderedType;
    case TypeOid.bytea:
      return bytesType(typeOid, format, format === 1 ? (raw) => raw : decodeByteaText) as OrderedType;
    case TypeOid.uuid:
      return bytesType(typeOid, format, format === 1 ? (raw) => raw : (raw) => Buffer.from(raw.toString('latin1').replace(/-/g, ''), 'hex')) as OrderedType;
    case TypeOid.bool:
      return {
        typeOid,
        format,
        family: 'bool',
        decode: format === 1 ? (raw: Buffer) => raw[0]! : (raw: Buffer) => (raw[0] === 0x74 ? 1 : 0),
        compare: compareScalar,
        key: String,
      } as OrderedType;
    case TypeOid.date:
      return { typeOid, format, family: 'date', decode: format === 1 ? decodeDateBinary : (raw: Buffer) => parseDateText(raw.toString('latin1')), compare: compareScalar, key: String } as OrderedType;
    case TypeOid.time:
      return {
        typeOid,
        format,
        family: 'time',
        decode: format === 1 ? (raw: Buffer) => Number(raw.readBigInt64BE(0)) : (raw: Buffer) => parseTimeText(raw.toString('latin1')),
        compare: compareScalar,
        key: String,
      } as OrderedType;
    case TypeOid.timestamp:
    case TypeOid.timestamptz: {
      const withZone = typeOid === TypeOid.timestamptz;
      return {
        typeOid,
        format,
        family: withZone ? 'timestamptz' : 'timestamp',
        decode: format === 1 ? decodeTimestampBinary : (raw: Buffer) => parseTimestampText(raw.toString('latin1'), withZone),
        compare: compareScalar,
        key: String,
      } as OrderedType;
    }
    default:
      throw refuse(typeOid, purpose);
  }
}

/**
 * Compares two possibly-NULL values for ORDER BY: NULLs first or last as asked,
 * then the type's order, reversed for DESC (the NULL placement is not reversed).
 */
export function compareNullable<T>(type: OrderedType<T>, a: T | null, b: T | null, descending: boolean, nullsFirst: boolean): number {
  if (a === null || b === null) {
    if (a === b) return 0;
    return (a === null) === nullsFirst ? -1 : 1;
  }
  const c = type.compare(a, b);
  return descending ? -c : c;
}
