import type { FieldDescription, FormatCode, RawRow } from '../../protocol/fields.js';
import type { AggregateColumn } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';
import {
  addNumeric,
  decodeFloat,
  decodeInt8,
  decodeNumeric,
  divideNumeric,
  encodeFloat4,
  encodeFloat8,
  encodeInt8,
  encodeNumeric,
  numericFromBigInt,
  orderedType,
  TEXT_AS_BYTES,
  TypeOid,
  typeName,
} from '../values.js';
import type { Numeric, TextRules } from '../values.js';

/** Folds one aggregate column's partial results from the shards into the final value. */
export interface Accumulator {
  add(row: RawRow): void;
  /** The final value encoded in the output column's type and format; null for SQL NULL. */
  result(): Buffer | null;
}

/** Creates a fresh accumulator per group. */
export type AccumulatorFactory = () => Accumulator;

/** How the partial sums of a column add up, by the shard's result type. */
interface SumKind<T> {
  readonly zero: T;
  decode(raw: Buffer): T;
  add(a: T, b: T): T;
  encode(value: T): Buffer;
}

function sumKind(field: FieldDescription, what: string): SumKind<unknown> {
  const format = field.format;
  switch (field.typeOid) {
    // sum(int2/int4) and count() arrive as int8; PostgreSQL adds them as int8 too.
    case TypeOid.int8:
      return { zero: 0n, decode: (raw) => decodeInt8(raw, format), add: (a, b) => a + b, encode: (v) => encodeInt8(v, format) } satisfies SumKind<bigint> as SumKind<unknown>;
    // sum(int8) and sum(numeric) arrive as numeric: exact, scale = the largest input scale.
    case TypeOid.numeric:
      return {
        zero: numericFromBigInt(0n),
        decode: (raw) => decodeNumeric(raw, format),
        add: addNumeric,
        encode: (v) => encodeNumeric(v, format),
      } satisfies SumKind<Numeric> as SumKind<unknown>;
    case TypeOid.float4:
    case TypeOid.float8: {
      const encode = field.typeOid === TypeOid.float4 ? encodeFloat4 : encodeFloat8;
      return { zero: 0, decode: (raw) => decodeFloat(raw, format), add: addFloat, encode: (v) => encode(v, format) } satisfies SumKind<number> as SumKind<unknown>;
    }
    default:
      throw sgError('featureNotSupported', {
        feature: `${what} of type ${typeName(field.typeOid)} across shards`,
        hint: 'Cast the argument to numeric or double precision, or filter by the sharding key so one shard answers.',
      });
  }
}

/** float8pl: overflow of finite inputs is an error in PostgreSQL, not Infinity. */
function addFloat(a: number, b: number): number {
  const sum = a + b;
  if (!Number.isFinite(sum) && Number.isFinite(a) && Number.isFinite(b)) throw sgError('valueOutOfRange', { reason: 'value out of range: overflow' });
  return sum;
}

/** count: the sum of the shards' counts; 0 for no rows at all. sum: NULL when every partial is NULL. */
function sumFactory(field: FieldDescription, column: number, nullWhenEmpty: boolean, what: string): AccumulatorFactory {
  const kind = sumKind(field, what);
  return () => {
    let total = kind.zero;
    let seen = false;
    return {
      add(row) {
        const raw = row[column];
        if (raw === null || raw === undefined) return;
        total = seen ? kind.add(total, kind.decode(raw)) : kind.decode(raw);
        seen = true;
      },
      result: () => (nullWhenEmpty && !seen ? null : kind.encode(total)),
    };
  };
}

/** min/max: compared by type (text only in byte order, see TextRules), the winning value's bytes are kept as the shard sent them. */
function extremeFactory(field: FieldDescription, column: number, keep: (c: number) => boolean, text: TextRules): AccumulatorFactory {
  const type = orderedType(field.typeOid, field.format, 'comparing', text);
  return () => {
    let best: Buffer | null = null;
    let bestValue: unknown = null;
    return {
      add(row) {
        const raw = row[column];
        if (raw === null || raw === undefined) return;
        const value = type.decode(raw);
        if (best === null || keep(type.compare(value, bestValue))) {
          best = raw;
          bestValue = value;
        }
      },
      result: () => best,
    };
  };
}

/** Whether avg over this shard sum column yields float8 (float inputs) rather than numeric. */
export function avgIsFloat(sumField: FieldDescription): boolean {
  return sumField.typeOid === TypeOid.float4 || sumField.typeOid === TypeOid.float8;
}

/**
 * avg = (sum of partial sums) / (sum of partial counts). Numeric division uses
 * PostgreSQL's result scale and rounding, so avg(int) prints exactly what one
 * server prints (2.5000000000000000); float inputs give float8. NULL when the
 * count is 0.
 */
function avgFactory(fields: readonly FieldDescription[], agg: { column: number; sum: number; count: number }, outFormat: FormatCode): AccumulatorFactory {
  const sumField = fields[agg.sum]!;
  const countField = fields[agg.count]!;
  const sum = sumKind(sumField, 'avg');
  const count = sumKind(countField, 'count');
  const float = avgIsFloat(sumField);
  return () => {
    let total = sum.zero;
    let n = count.zero;
    return {
      add(row) {
        const rawSum = row[agg.sum];
        const rawCount = row[agg.count];
        if (rawSum !== null && rawSum !== undefined) total = sum.add(total, sum.decode(rawSum));
        if (rawCount !== null && rawCount !== undefined) n = count.add(n, count.decode(rawCount));
      },
      result() {
        const countValue = toNumeric(n);
        if (countValue.kind === 'finite' && countValue.unscaled === 0n) return null;
        if (float) return encodeFloat8((total as number) / Number(countValue.kind === 'finite' ? countValue.unscaled : NaN), outFormat);
        return encodeNumeric(divideNumeric(toNumeric(total), countValue), outFormat);
      },
    };
  };
}

function toNumeric(value: unknown): Numeric {
  if (typeof value === 'bigint') return numericFromBigInt(value);
  if (typeof value === 'number') throw sgError('internal', { reason: 'float partial where numeric was expected' });
  return value as Numeric;
}

/** The accumulator factory for one aggregate column of the shards' result; `text` decides whether min/max of text may be compared here. */
export function accumulatorFactory(fields: readonly FieldDescription[], agg: AggregateColumn, text: TextRules): AccumulatorFactory {
  const field = fields[agg.column]!;
  switch (agg.kind) {
    case 'count':
      return sumFactory(field, agg.column, false, 'count');
    case 'sum':
      return sumFactory(field, agg.column, true, 'sum');
    case 'min':
      return extremeFactory(field, agg.column, (c) => c < 0, agg.byteOrder === true ? TEXT_AS_BYTES : text);
    case 'max':
      return extremeFactory(field, agg.column, (c) => c > 0, agg.byteOrder === true ? TEXT_AS_BYTES : text);
    case 'avg':
      return avgFactory(fields, agg, field.format);
  }
}
