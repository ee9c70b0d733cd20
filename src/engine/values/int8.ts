import type { FormatCode } from '../../protocol/fields.js';
import { sgError } from '../../errors/catalogue.js';

const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

/** Decodes an int8 column value: decimal text, or a big-endian int64. */
export function decodeInt8(raw: Buffer, format: FormatCode): bigint {
  if (format === 1) return raw.readBigInt64BE(0);
  const text = raw.toString('latin1');
  if (!/^-?\d+$/.test(text)) throw sgError('invalidTextRepresentation', { type: 'bigint', value: text });
  return BigInt(text);
}

/** Encodes an int8 in the column's format; raises 22003 "bigint out of range" as PostgreSQL would. */
export function encodeInt8(value: bigint, format: FormatCode): Buffer {
  if (value < INT8_MIN || value > INT8_MAX) throw sgError('valueOutOfRange', { reason: 'bigint out of range' });
  if (format === 0) return Buffer.from(value.toString(), 'latin1');
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(value, 0);
  return out;
}
