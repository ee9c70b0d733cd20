import type { FieldDescription, RawRow } from '../../protocol/fields.js';
import type { MergeSpec, SortKey } from '../../planner/plan.js';
import { hasCombinedExpressions } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';
import { aggregateAdjacent, aggregatedFields, aggregateHashed, compileGroups, streamingGroupOrder } from './aggregate-groups.js';
import { distinctAdjacent, distinctHashed, sortedOnVisible } from './distinct-rows.js';
import { compilePredicate } from './having.js';
import { InputSet } from './input-set.js';
import { concatenate, mergeSorted } from './k-way-merge.js';
import { offsetLimit, resolveCount } from './offset-limit.js';
import { compileOrder } from './row-order.js';
import { compileRowKey } from './row-key.js';
import { resolveMergeSpec } from './resolve-merge-spec.js';
import { isCollatable, TEXT_UNKNOWN } from '../values.js';
import type { TextRules } from '../values.js';

export { resolveMergeSpec } from './resolve-merge-spec.js';

/** Rows per output batch when the caller does not say. */
export const DEFAULT_MERGE_BATCH_SIZE = 1000;

export interface MergeOptions {
  /**
   * Most rows in an output batch the merge builds (default 1000). Batches may
   * be smaller (rows are handed on before waiting for a shard); a shard's
   * batch that passes through unchanged (no ORDER BY) keeps its own size.
   */
  readonly batchSize?: number;
  /**
   * What the collations in effect on the shards allow for text keys
   * (`shardTextRules` finds out). Default: nothing, so ordering, grouping,
   * min/max and HAVING comparisons of text are refused (0A000).
   */
  readonly text?: TextRules;
}

/**
 * The RowDescription the client sees for a merged result: the first
 * `visibleColumns` shard columns (negative indexes resolved against
 * `fields.length`); count keeps the shard's int8, sum the shard's sum type,
 * and avg columns become numeric (float8 for float inputs). Throws 42P10
 * for an ORDER BY position past the visible columns, as `mergeStreams` does.
 */
export function mergedFields(fields: readonly FieldDescription[], spec: MergeSpec): FieldDescription[] {
  refuseCombinedExpressions(spec);
  const resolved = resolveMergeSpec(spec, fields.length);
  return aggregatedFields(fields, resolved).slice(0, resolved.visibleColumns);
}

/**
 * Merges the result streams of one statement run on several shards into what
 * one server would have returned, following `spec` (negative indexes are
 * resolved against `fields.length` first, see `resolveMergeSpec`):
 *
 * 1. ORDER BY: a k-way merge of the inputs (each already sorted the same way
 *    by its shard); without an order the inputs are read one after another.
 * 2. Aggregate: groups are combined while streaming when the shards sorted by
 *    the group keys (adjacent equal groups), otherwise in a hash table (memory
 *    bounded by the number of groups) and then sorted by ORDER BY. HAVING is
 *    applied to merged groups. A plain aggregate yields exactly one row.
 * 3. DISTINCT over the visible columns: streaming when the rows are sorted on
 *    all of them, otherwise a set of encoded keys (bounded by distinct rows).
 * 4. OFFSET then LIMIT (values or text parameters, 0-based index into
 *    `params`). Once the limit is reached no input is pulled again and every
 *    input iterator's `return()` is called, which closes the shard streams.
 * 5. Hidden columns (past `visibleColumns`) are dropped.
 *
 * Inputs are pulled lazily, one batch at a time. On the streaming paths at
 * most one batch per input plus the output batch are held. Every input is
 * closed when the merge ends, fails, or its consumer stops early.
 *
 * Errors — unsupported key types (0A000), bad LIMIT/OFFSET (2201W, 2201X,
 * 22P02), overflow (22003), an ORDER BY position past the visible columns
 * (42P10) — are raised from the iteration, after which the
 * inputs are closed too.
 */
export function mergeStreams(
  inputs: readonly AsyncIterable<readonly RawRow[]>[],
  fields: readonly FieldDescription[],
  spec: MergeSpec,
  params: readonly (string | null | undefined)[],
  options: MergeOptions = {},
): AsyncIterable<readonly RawRow[]> {
  return runMerge(new InputSet(inputs), fields, spec, params, options.batchSize ?? DEFAULT_MERGE_BATCH_SIZE, options.text ?? TEXT_UNKNOWN);
}

async function* runMerge(
  inputs: InputSet,
  fields: readonly FieldDescription[],
  given: MergeSpec,
  params: readonly (string | null | undefined)[],
  batchSize: number,
  shardText: TextRules,
): AsyncGenerator<readonly RawRow[], void, undefined> {
  try {
    refuseCombinedExpressions(given);
    // Negative indexes (columns around a `*`) become absolute now that the shard result's width is known.
    const spec = resolveMergeSpec(given, fields.length);
    // A COLLATE naming another collation may give any text key that collation.
    const text = spec.otherCollation === true ? TEXT_UNKNOWN : shardText;
    checkSpec(fields, spec, batchSize);
    const offset = resolveCount(spec.offset, params, 'OFFSET') ?? 0;
    const limit = resolveCount(spec.limit, params, 'LIMIT');
    let rows: AsyncIterable<readonly RawRow[]>;
    // The order rows are in after steps 1 and 2 (empty: none).
    let sortedBy: readonly SortKey[] = spec.orderBy;
    const aggregate = spec.aggregate;
    if (aggregate !== null) {
      const outFields = aggregatedFields(fields, spec);
      const having = aggregate.having === null ? null : compilePredicate(aggregate.having, outFields, params, text);
      const groups = compileGroups(fields, aggregate, having === null ? () => true : (row) => having(row) === true, text);
      const groupOrder = streamingGroupOrder(spec);
      // An order the planner chose only for streaming, in a text order the merge cannot follow: combine in a hash table, unordered.
      const hashUnordered = groupOrder !== null && spec.orderChosen === true && !text.order && groupOrder.some((k) => isCollatable(fields[k.column]!.typeOid));
      if (aggregate.groupBy.length === 0) {
        rows = aggregateAdjacent(concatenate(inputs), groups, true);
      } else if (groupOrder !== null && !hashUnordered) {
        rows = aggregateAdjacent(mergeSorted(inputs, compileOrder(fields, groupOrder, text), batchSize), groups, false);
      } else {
        const order = spec.orderBy.length > 0 && !hashUnordered ? compileOrder(outFields, spec.orderBy, text) : null;
        rows = aggregateHashed(concatenate(inputs), groups, order, batchSize);
        if (hashUnordered) sortedBy = [];
      }
    } else if (spec.orderBy.length > 0) {
      rows = mergeSorted(inputs, compileOrder(fields, spec.orderBy, text), batchSize);
    } else {
      rows = concatenate(inputs);
      sortedBy = [];
    }
    if (spec.distinct) {
      const visible = Array.from({ length: spec.visibleColumns }, (_, i) => i);
      const key = compileRowKey(aggregatedFields(fields, spec), visible, text, 'grouping');
      rows = sortedOnVisible(sortedBy, spec.visibleColumns) ? distinctAdjacent(rows, key) : distinctHashed(rows, key);
    }
    if (offset > 0 || limit !== null) rows = offsetLimit(rows, offset, limit, () => inputs.close());
    const hidden = fields.length > spec.visibleColumns;
    for await (const batch of rows) yield hidden ? batch.map((row) => row.slice(0, spec.visibleColumns)) : batch;
  } finally {
    await inputs.close();
  }
}

/**
 * Expressions over aggregates (and HAVING in SQL) are evaluated by PostgreSQL
 * on the final step (engine/final-step), never here: a merge without a
 * compute connection refuses them (0A000) rather than answer without them.
 */
function refuseCombinedExpressions(spec: MergeSpec): void {
  if (!hasCombinedExpressions(spec)) return;
  throw sgError('featureNotSupported', {
    feature: 'an expression over aggregates (or a HAVING condition beyond comparisons) across shards without a compute connection',
    hint: 'Run it through shards that are PostgreSQL servers (not embedded), select the aggregates themselves and compute the expression in the application, or filter by the sharding key so one shard answers.',
  });
}

/** A spec that does not fit the shard result is a planner bug, reported as such (XX000). */
function checkSpec(fields: readonly FieldDescription[], spec: MergeSpec, batchSize: number): void {
  const columns = fields.length;
  const bad = (what: string): Error => sgError('internal', { reason: `merge spec ${what} (shard result has ${columns} columns)` });
  if (!Number.isInteger(batchSize) || batchSize < 1) throw bad(`batch size ${batchSize}`);
  if (spec.visibleColumns > columns || spec.visibleColumns < 0) throw bad(`shows ${spec.visibleColumns} columns`);
  const inRange = (c: number): boolean => Number.isInteger(c) && c >= 0 && c < columns;
  for (const key of spec.orderBy) if (!inRange(key.column)) throw bad(`orders by column ${key.column}`);
  for (const c of spec.aggregate?.groupBy ?? []) if (!inRange(c)) throw bad(`groups by column ${c}`);
  for (const agg of spec.aggregate?.columns ?? []) {
    const used = agg.kind === 'avg' ? [agg.column, agg.sum, agg.count] : [agg.column];
    for (const c of used) if (!inRange(c)) throw bad(`aggregates column ${c}`);
  }
}
