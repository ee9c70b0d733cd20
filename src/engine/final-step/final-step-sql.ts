import type { FieldDescription } from '../../protocol/fields.js';
import type { MergeSpec, Operand, Predicate, SortKey } from '../../planner/plan.js';
import { COMBINED_ROW, combinedColumn, hasCombinedExpressions } from '../../planner/plan.js';
import { quoteLiteral } from '../../sql/ast.js';
import { quoteIdent } from '../../tx/gid.js';
import { sgError } from '../../errors/catalogue.js';
import { isCollatable, TypeOid } from '../values.js';
import type { TextRules } from '../values.js';

/** The temporary table the shards' rows are copied into on the compute connection. */
export const FINAL_TABLE = 'pg_temp.sg_final';

/** Column `i` of the temporary table (and of the combined rows): c0, c1, … */
export function finalColumn(i: number): string {
  return combinedColumn(i);
}


/**
 * Whether merging by `spec` (indexes absolute) would compare text values
 * that `text` does not let the merge compare itself: then PostgreSQL must
 * do that step (`finalSql`). Keys and min/max with their own COLLATE "C"
 * compare as bytes and do not count.
 */
export function needsFinalStep(fields: readonly FieldDescription[], spec: MergeSpec, shardText: TextRules): boolean {
  const text: TextRules = spec.otherCollation === true ? { order: false, equality: false } : shardText;
  const collatable = (c: number): boolean => isCollatable(fields[c]?.typeOid ?? 0);
  const agg = spec.aggregate;
  if (hasCombinedExpressions(spec)) return true;
  // Sums the proxy cannot add itself (interval, money): PostgreSQL adds the partials.
  const addable = (c: number): boolean => ADDED_IN_PROXY.has(fields[c]?.typeOid ?? 0);
  if (agg?.columns.some((a) => (a.kind === 'sum' && !addable(a.column)) || (a.kind === 'avg' && !addable(a.sum)))) return true;
  const outType = (c: number): number => (agg?.columns.some((a) => a.column === c && a.kind === 'avg') ? TypeOid.numeric : (fields[c]?.typeOid ?? 0));
  if (!text.order) {
    if (spec.orderBy.some((k) => k.byteOrder !== true && isCollatable(outType(k.column)))) return true;
    if (agg?.columns.some((a) => (a.kind === 'min' || a.kind === 'max') && a.byteOrder !== true && collatable(a.column))) return true;
    if (agg?.having !== null && agg?.having !== undefined && [...agg.groupBy, ...agg.columns.map((a) => a.column)].some(collatable)) return true;
  }
  if (!text.equality) {
    if (agg?.groupBy.some(collatable)) return true;
    if (spec.distinct && Array.from({ length: spec.visibleColumns }, (_, i) => i).some((i) => isCollatable(outType(i)))) return true;
  }
  return false;
}

/** Partial sums the streaming merge adds itself (engine/merge/aggregators.ts); any other goes to PostgreSQL. */
const ADDED_IN_PROXY: ReadonlySet<number> = new Set([TypeOid.int8, TypeOid.numeric, TypeOid.float4, TypeOid.float8]);

/** avg over partial sums of this type: float8 for floats, numeric for the other numbers, the sum's own type otherwise (interval). */
function avgType(sumType: number): number {
  if (sumType === TypeOid.float4 || sumType === TypeOid.float8) return TypeOid.float8;
  return ADDED_IN_PROXY.has(sumType) ? TypeOid.numeric : sumType;
}

/** The combined columns' types: avg columns as `avgType` says, the rest keep the shard's. */
function aggregatedTypes(fields: readonly FieldDescription[], spec: MergeSpec): FieldDescription[] {
  return fields.map((f, i) => {
    const avg = spec.aggregate?.columns.find((a) => a.kind === 'avg' && a.column === i);
    return avg === undefined || avg.kind !== 'avg' ? f : { ...f, typeOid: avgType(fields[avg.sum]?.typeOid ?? 0) };
  });
}

function refuse(what: string): Error {
  return sgError('featureNotSupported', {
    feature: `${what} when combining text under a collation other than C across shards`,
    hint: 'Add COLLATE "C" to the text keys if byte order is what you want, or filter by the sharding key so one shard answers.',
  });
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A HAVING operand. A numeric literal compared with a non-text column stays
 * a number (`sum(i) > 2.5` compares as numeric, as one server does, where
 * '2.5' would be cast to the column's int8 and fail); other literals and
 * parameter values become untyped literals, taking the other side's type.
 */
function operandSql(o: Operand, other: Operand, fields: readonly FieldDescription[], params: readonly (string | null | undefined)[]): string {
  if (o.kind === 'column') return finalColumn(o.column);
  const value = o.kind === 'literal' ? o.value : params[o.index];
  const otherText = other.kind !== 'column' || isCollatable(fields[other.column]?.typeOid ?? 0);
  if (o.kind === 'literal' && value !== null && value !== undefined && NUMBER.test(value) && !otherText) return value;
  if (value === undefined) throw sgError('featureNotSupported', { feature: `HAVING parameter $${o.kind === 'param' ? o.index + 1 : 0} in binary format across shards`, hint: 'Send the parameter in text format.' });
  return value === null ? 'NULL' : quoteLiteral(value);
}

/** A HAVING predicate over the combined groups' columns, as SQL. */
function predicateSql(p: Predicate, fields: readonly FieldDescription[], params: readonly (string | null | undefined)[]): string {
  switch (p.kind) {
    case 'and':
    case 'or':
      return `(${p.args.map((a) => predicateSql(a, fields, params)).join(p.kind === 'and' ? ' AND ' : ' OR ')})`;
    case 'not':
      return `(NOT ${predicateSql(p.arg, fields, params)})`;
    case 'isNull':
      return `(${operandSql(p.arg, p.arg, fields, params)} IS ${p.negated ? 'NOT ' : ''}NULL)`;
    case 'compare':
      return `(${operandSql(p.left, p.right, fields, params)} ${p.op} ${operandSql(p.right, p.left, fields, params)})`;
  }
}

// Qualified: a bare name in ORDER BY would match an output column's alias first (a client column named "c1").
function orderItem(key: SortKey): string {
  return `sg_rows.${finalColumn(key.column)}${key.descending ? ' DESC' : ''} NULLS ${key.nullsFirst ? 'FIRST' : 'LAST'}`;
}

/**
 * The SQL that combines the shards' rows, copied into `FINAL_TABLE`
 * (columns c0…cN of the shard result, with the shard query's own types and
 * collations), exactly as the merge would but evaluated by PostgreSQL:
 * partial aggregates are combined (count and sums of int partials as int8,
 * min/max, avg as the sum of partial sums over the sum of partial counts,
 * in numeric or float8 as PostgreSQL's avg gives), groups formed and HAVING
 * applied (literals and parameter values as untyped literals, which take the
 * type of the column they are compared with, as on one server), then ORDER
 * BY with explicit NULL placement, DISTINCT, OFFSET and LIMIT; only the
 * visible columns come out. `offset` and `limit` are resolved counts.
 * DISTINCT ordered by a hidden column is refused with 0A000.
 */
export function finalSql(fields: readonly FieldDescription[], spec: MergeSpec, offset: number, limit: number | null, params: readonly (string | null | undefined)[] = []): string {
  const width = fields.length;
  const columns = Array.from({ length: width }, (_, i) => finalColumn(i));
  let inner = `SELECT ${columns.join(', ')} FROM ${FINAL_TABLE}`;
  const agg = spec.aggregate;
  if (agg !== null) {
    const exprs = columns.map((c, i) => {
      if (agg.groupBy.includes(i)) return c;
      // Filled by its expression over the combined group, one level up.
      if (agg.expressions?.some((x) => x.column === i) === true) return 'NULL';
      const a = agg.columns.find((x) => x.column === i);
      if (a === undefined) {
        // Hidden partials of an avg are read through it; anything else would be "taken from the first row".
        if (agg.columns.some((x) => x.kind === 'avg' && (x.sum === i || x.count === i))) return `NULL::pg_catalog.int8`;
        throw refuse('a column that is neither grouped nor aggregated');
      }
      switch (a.kind) {
        case 'count':
          return `COALESCE(pg_catalog.sum(${c}), 0)::pg_catalog.int8`;
        case 'sum':
          // sum(int2/int4) partials arrive as int8, and one server answers int8: keep it.
          return fields[i]!.typeOid === TypeOid.int8 ? `pg_catalog.sum(${c})::pg_catalog.int8` : `pg_catalog.sum(${c})`;
        case 'min':
          return `pg_catalog.min(${c})`;
        case 'max':
          return `pg_catalog.max(${c})`;
        case 'avg': {
          // avg(float4/float8) is float8, of other numbers numeric; a count of 0 gives NULL.
          const sumType = fields[a.sum]!.typeOid;
          if (!ADDED_IN_PROXY.has(sumType)) {
            // avg(interval) is PostgreSQL's interval_avg: the exact sum divided by the count as float8.
            return `pg_catalog.sum(${columns[a.sum]!}) / NULLIF(pg_catalog.sum(${columns[a.count]!}), 0)::pg_catalog.float8`;
          }
          const type = avgType(sumType) === TypeOid.float8 ? 'pg_catalog.float8' : 'pg_catalog.numeric';
          return `pg_catalog.sum(${columns[a.sum]!})::${type} / NULLIF(pg_catalog.sum(${columns[a.count]!}), 0)::${type}`;
        }
      }
    });
    const groupBy = agg.groupBy.length > 0 ? ` GROUP BY ${agg.groupBy.map((g) => columns[g]!).join(', ')}` : '';
    inner = `SELECT ${exprs.map((e, i) => `${e} AS ${columns[i]!}`).join(', ')} FROM ${FINAL_TABLE}${groupBy}`;
    if (agg.having !== null) inner = `SELECT * FROM (${inner}) AS sg_groups WHERE ${predicateSql(agg.having, aggregatedTypes(fields, spec), params)}`;
    if (agg.havingSql !== undefined) inner = `SELECT * FROM (${inner}) AS ${COMBINED_ROW} WHERE ${agg.havingSql}`;
    const expressions = agg.expressions ?? [];
    if (expressions.length > 0) {
      // The client's expressions over the combined aggregates and group keys, evaluated as one server evaluates them.
      const out = columns.map((c, i) => {
        const e = expressions.find((x) => x.column === i);
        return e === undefined ? `${COMBINED_ROW}.${c}` : `(${e.sql}) AS ${c}`;
      });
      inner = `SELECT ${out.join(', ')} FROM (${inner}) AS ${COMBINED_ROW}`;
    }
  }
  const visible = columns.slice(0, spec.visibleColumns);
  if (spec.distinct && spec.orderBy.some((k) => k.column >= spec.visibleColumns)) throw refuse('DISTINCT ordered by a column not in the select list');
  const order = spec.orderBy.length > 0 ? ` ORDER BY ${spec.orderBy.map(orderItem).join(', ')}` : '';
  const cut = `${offset > 0 ? ` OFFSET ${offset}` : ''}${limit !== null ? ` LIMIT ${limit}` : ''}`;
  // The client's column names, as the shards described them (one server would answer with the same).
  const named = visible.map((c, i) => `${c} AS ${quoteIdent(fields[i]?.name ?? c)}`);
  return `SELECT ${spec.distinct ? 'DISTINCT ' : ''}${named.join(', ')} FROM (${inner}) AS sg_rows${order}${cut}`;
}

/** One row in COPY text format: values escaped (backslash, tab, newline, carriage return), NULL as \N. */
export function copyTextRow(values: readonly (Buffer | null | undefined)[]): Buffer {
  const parts: Buffer[] = [];
  values.forEach((v, i) => {
    if (i > 0) parts.push(TAB);
    if (v === null || v === undefined) parts.push(NULL_MARK);
    else parts.push(escapeCopyText(v));
  });
  parts.push(NEWLINE);
  return Buffer.concat(parts);
}

const TAB = Buffer.from('\t');
const NEWLINE = Buffer.from('\n');
const NULL_MARK = Buffer.from('\\N');

function escapeCopyText(v: Buffer): Buffer {
  let special = false;
  for (const b of v) if (b === 0x5c || b === 0x09 || b === 0x0a || b === 0x0d) special = true;
  if (!special) return v;
  const out: number[] = [];
  for (const b of v) {
    if (b === 0x5c) out.push(0x5c, 0x5c);
    else if (b === 0x09) out.push(0x5c, 0x74);
    else if (b === 0x0a) out.push(0x5c, 0x6e);
    else if (b === 0x0d) out.push(0x5c, 0x72);
    else out.push(b);
  }
  return Buffer.from(out);
}
