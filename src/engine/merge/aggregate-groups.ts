import type { FieldDescription, RawRow } from '../../protocol/fields.js';
import type { AggregateSpec, MergeSpec, SortKey } from '../../planner/plan.js';
import { TypeOid } from '../values.js';
import type { TextRules } from '../values.js';
import { accumulatorFactory, avgIsFloat } from './aggregators.js';
import type { Accumulator, AccumulatorFactory } from './aggregators.js';
import { compileRowKey } from './row-key.js';
import { sortRows } from './row-order.js';
import type { RowOrder } from './row-order.js';

/**
 * The shard result's columns after aggregation: avg columns become numeric
 * (float8 for float inputs), as PostgreSQL types avg(); every other column
 * keeps the shard's type (count stays int8, sum the shard's sum type).
 */
export function aggregatedFields(fields: readonly FieldDescription[], spec: MergeSpec): FieldDescription[] {
  const out = [...fields];
  for (const agg of spec.aggregate?.columns ?? []) {
    const sumField = agg.kind === 'avg' ? fields[agg.sum] : undefined;
    const field = fields[agg.column];
    // A spec that does not fit the columns is reported when the merge runs.
    if (sumField === undefined || field === undefined) continue;
    const float = avgIsFloat(sumField);
    const typeOid = float ? TypeOid.float8 : TypeOid.numeric;
    if (field.typeOid !== typeOid) out[agg.column] = { ...field, typeOid, typeSize: float ? 8 : -1, typeModifier: -1 };
  }
  return out;
}

/** One group being combined. */
export interface GroupState {
  add(row: RawRow): void;
  /** The merged row: the group's first row with every aggregate column replaced by its final value. */
  finish(): RawRow;
}

/** One group being combined: its first row (for columns that are not aggregated) and one accumulator per aggregate. */
class Group implements GroupState {
  readonly #first: RawRow;
  readonly #accumulators: Accumulator[];
  readonly #columns: readonly number[];

  constructor(first: RawRow, factories: readonly AccumulatorFactory[], columns: readonly number[]) {
    this.#first = first;
    this.#columns = columns;
    this.#accumulators = factories.map((make) => make());
    this.add(first);
  }

  add(row: RawRow): void {
    for (const acc of this.#accumulators) acc.add(row);
  }

  finish(): RawRow {
    const row = [...this.#first];
    this.#accumulators.forEach((acc, i) => (row[this.#columns[i]!] = acc.result()));
    return row;
  }
}

/** The aggregate compiled against the shard columns; HAVING is applied to finished rows by `keep`. */
export interface GroupCombiner {
  start(row: RawRow): GroupState;
  /** Group key of a shard row ('' for a plain aggregate). */
  key(row: RawRow): string;
  /** The single row of a plain aggregate over no rows at all: counts 0, everything else NULL. */
  emptyRow(): RawRow;
  keep(row: RawRow): boolean;
}

export function compileGroups(fields: readonly FieldDescription[], spec: AggregateSpec, keep: (row: RawRow) => boolean, text: TextRules): GroupCombiner {
  const factories = spec.columns.map((agg) => accumulatorFactory(fields, agg, text));
  const columns = spec.columns.map((agg) => agg.column);
  const key = spec.groupBy.length === 0 ? () => '' : compileRowKey(fields, spec.groupBy, text, 'grouping');
  return {
    start: (row) => new Group(row, factories, columns),
    key,
    emptyRow() {
      const row: (Buffer | null)[] = fields.map(() => null);
      spec.columns.forEach((agg, i) => {
        if (agg.kind === 'count') row[agg.column] = factories[i]!().result();
      });
      return row;
    },
    keep,
  };
}

/**
 * The sort keys the shard streams must be merged by so that equal groups
 * arrive next to each other: the ORDER BY prefix made of exactly the group
 * keys (the planner orders shard results by the group keys when the client
 * gave no other order). Null when the ORDER BY does not start with them; the
 * groups are then combined in a hash table and sorted afterwards.
 */
export function streamingGroupOrder(spec: MergeSpec): readonly SortKey[] | null {
  const groupBy = spec.aggregate?.groupBy ?? [];
  if (groupBy.length === 0 || spec.orderBy.length < groupBy.length) return null;
  const prefix = spec.orderBy.slice(0, groupBy.length);
  const wanted = new Set(groupBy);
  return prefix.every((key) => wanted.has(key.column)) && new Set(prefix.map((k) => k.column)).size === wanted.size ? prefix : null;
}

/**
 * Combines groups from a stream in which equal group keys are adjacent (or
 * one plain aggregate): holds one group at a time. A plain aggregate yields
 * exactly one row, even when every input is empty.
 */
export async function* aggregateAdjacent(source: AsyncIterable<readonly RawRow[]>, groups: GroupCombiner, plain: boolean): AsyncGenerator<RawRow[], void, undefined> {
  let current: GroupState | null = null;
  let currentKey = '';
  for await (const batch of source) {
    const out: RawRow[] = [];
    for (const row of batch) {
      const key = groups.key(row);
      if (current !== null && key === currentKey) {
        current.add(row);
        continue;
      }
      if (current !== null) {
        const done = current.finish();
        if (groups.keep(done)) out.push(done);
      }
      current = groups.start(row);
      currentKey = key;
    }
    if (out.length > 0) yield out;
  }
  const last = current !== null ? current.finish() : plain ? groups.emptyRow() : null;
  if (last !== null && groups.keep(last)) yield [last];
}

/**
 * Combines groups arriving in any order in a hash table, then sorts them by
 * `order` (if any). Memory grows with the number of distinct groups, not with
 * the number of shard rows; that is the price of a GROUP BY whose keys do not
 * lead the ORDER BY.
 */
export async function* aggregateHashed(
  source: AsyncIterable<readonly RawRow[]>,
  groups: GroupCombiner,
  order: RowOrder | null,
  batchSize: number,
): AsyncGenerator<RawRow[], void, undefined> {
  const table = new Map<string, GroupState>();
  for await (const batch of source) {
    for (const row of batch) {
      const key = groups.key(row);
      const group = table.get(key);
      if (group === undefined) table.set(key, groups.start(row));
      else group.add(row);
    }
  }
  let rows: RawRow[] = [];
  for (const group of table.values()) {
    const row = group.finish();
    if (groups.keep(row)) rows.push(row);
  }
  table.clear();
  if (order !== null) rows = sortRows(rows, order);
  for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
}
