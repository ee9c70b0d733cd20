import type { FieldDescription } from '../../protocol/fields.js';
import type { MergeSpec, SortKey } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';
import { isCollatable, TypeOid } from '../values.js';
import type { TextRules } from '../values.js';

/** The temporary table the shards' rows are copied into on the compute connection. */
export const FINAL_TABLE = 'pg_temp.sg_final';

/** Column `i` of the temporary table (and of the combined rows): c0, c1, … */
export function finalColumn(i: number): string {
  return `c${i}`;
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

function refuse(what: string): Error {
  return sgError('featureNotSupported', {
    feature: `${what} when combining text under a collation other than C across shards`,
    hint: 'Add COLLATE "C" to the text keys if byte order is what you want, or filter by the sharding key so one shard answers.',
  });
}

function orderItem(key: SortKey): string {
  return `${finalColumn(key.column)}${key.descending ? ' DESC' : ''} NULLS ${key.nullsFirst ? 'FIRST' : 'LAST'}`;
}

/**
 * The SQL that combines the shards' rows, copied into `FINAL_TABLE`
 * (columns c0…cN of the shard result, with the shard query's own types and
 * collations), exactly as the merge would but evaluated by PostgreSQL:
 * partial aggregates are combined (count and sums of int partials as int8,
 * min/max), groups formed, then ORDER BY with explicit NULL placement,
 * DISTINCT, OFFSET and LIMIT; only the visible columns come out. `offset` and
 * `limit` are resolved counts. Shapes it does not reproduce exactly (avg,
 * HAVING, DISTINCT ordered by a hidden column) are refused with 0A000.
 */
export function finalSql(fields: readonly FieldDescription[], spec: MergeSpec, offset: number, limit: number | null): string {
  const width = fields.length;
  const columns = Array.from({ length: width }, (_, i) => finalColumn(i));
  let inner = `SELECT ${columns.join(', ')} FROM ${FINAL_TABLE}`;
  const agg = spec.aggregate;
  if (agg !== null) {
    if (agg.having !== null) throw refuse('HAVING');
    const exprs = columns.map((c, i) => {
      if (agg.groupBy.includes(i)) return c;
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
        case 'avg':
          throw refuse('avg()');
      }
    });
    const groupBy = agg.groupBy.length > 0 ? ` GROUP BY ${agg.groupBy.map((g) => columns[g]!).join(', ')}` : '';
    inner = `SELECT ${exprs.map((e, i) => `${e} AS ${columns[i]!}`).join(', ')} FROM ${FINAL_TABLE}${groupBy}`;
  }
  const visible = columns.slice(0, spec.visibleColumns);
  if (spec.distinct && spec.orderBy.some((k) => k.column >= spec.visibleColumns)) throw refuse('DISTINCT ordered by a column not in the select list');
  const order = spec.orderBy.length > 0 ? ` ORDER BY ${spec.orderBy.map(orderItem).join(', ')}` : '';
  const cut = `${offset > 0 ? ` OFFSET ${offset}` : ''}${limit !== null ? ` LIMIT ${limit}` : ''}`;
  return `SELECT ${spec.distinct ? 'DISTINCT ' : ''}${visible.join(', ')} FROM (${inner}) AS sg_rows${order}${cut}`;
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
