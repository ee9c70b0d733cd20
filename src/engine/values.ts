/**
 * Decoding, ordering, equality and exact arithmetic of PostgreSQL column
 * values as shards send them (text format 0 or binary format 1), keyed by
 * type OID. Used by the merge of cross-shard results; see the modules under
 * `values/` for the rules of each type.
 */
export { TypeOid, typeName } from './values/type-oids.js';
export { orderedType, compareNullable, isCollatable, TEXT_AS_BYTES, TEXT_UNKNOWN } from './values/ordered-type.js';
export type { OrderedType, ValueFamily, KeyPurpose, TextRules } from './values/ordered-type.js';
export {
  addNumeric,
  compareNumeric,
  decodeNumeric,
  decodeNumericBinary,
  divideNumeric,
  divisionScale,
  encodeNumeric,
  encodeNumericBinary,
  formatNumeric,
  numericFromBigInt,
  numericKey,
  parseNumeric,
  NUMERIC_NAN,
} from './values/numeric.js';
export type { Numeric } from './values/numeric.js';
export { compareFloat, decodeFloat, encodeFloat4, encodeFloat8, formatFloat4, formatFloat8, parseFloatText } from './values/float-format.js';
export { parseDateText, parseTimeText, parseTimestampText, decodeDateBinary, decodeTimestampBinary } from './values/datetime.js';
export { decodeInt8, encodeInt8 } from './values/int8.js';
