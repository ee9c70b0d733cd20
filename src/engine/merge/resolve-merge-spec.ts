import type { AggregateColumn, AggregateSpec, MergeSpec, Operand, Predicate, SortKey } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';

/**
 * The spec with every index made absolute for a shard result of
 * `columnCount` columns: a negative column index `c` becomes
 * `columnCount + c`, a negative `visibleColumns` `v` becomes
 * `columnCount + v` (plan.ts, "MergeSpec"). A spec without negative indexes
 * is returned as it is (the same object).
 *
 * Indexes that still do not fit the result are left for the merge to report
 * as a planner bug (XX000). One thing is the client's doing, not the
 * planner's: with a negative `visibleColumns`, a non-negative sort column
 * comes from a position the client wrote (`SELECT *, … ORDER BY 4`), and one
 * that lands on a hidden column raises 42P10 as PostgreSQL would; the shard
 * cannot catch it because it sees the hidden columns as ordinary ones.
 */
export function resolveMergeSpec(spec: MergeSpec, columnCount: number): MergeSpec {
  if (!hasNegative(spec)) return spec;
  const at = (c: number): number => (c < 0 ? columnCount + c : c);
  const visibleColumns = at(spec.visibleColumns);
  if (spec.visibleColumns < 0 && visibleColumns >= 0) {
    for (const key of spec.orderBy) {
      if (key.column >= visibleColumns && key.column < columnCount) throw sgError('orderByPositionNotInSelectList', { position: key.column + 1 });
    }
  }
  const aggregate: AggregateSpec | null =
    spec.aggregate === null
      ? null
      : {
          ...spec.aggregate,
          groupBy: spec.aggregate.groupBy.map(at),
          columns: spec.aggregate.columns.map((agg) => resolveAggregate(agg, at)),
          having: spec.aggregate.having === null ? null : resolvePredicate(spec.aggregate.having, at),
        };
  return {
    ...spec,
    visibleColumns,
    aggregate,
    orderBy: spec.orderBy.map((key): SortKey => ({ ...key, column: at(key.column) })),
  };
}

function hasNegative(spec: MergeSpec): boolean {
  if (spec.visibleColumns < 0) return true;
  if (spec.orderBy.some((key) => key.column < 0)) return true;
  const aggregate = spec.aggregate;
  if (aggregate === null) return false;
  if (aggregate.groupBy.some((c) => c < 0)) return true;
  if (aggregate.columns.some((agg) => agg.column < 0 || (agg.kind === 'avg' && (agg.sum < 0 || agg.count < 0)))) return true;
  return aggregate.having !== null && predicateHasNegative(aggregate.having);
}

function predicateHasNegative(p: Predicate): boolean {
  switch (p.kind) {
    case 'and':
    case 'or':
      return p.args.some(predicateHasNegative);
    case 'not':
      return predicateHasNegative(p.arg);
    case 'compare':
      return negativeOperand(p.left) || negativeOperand(p.right);
    case 'isNull':
      return negativeOperand(p.arg);
  }
}

function negativeOperand(o: Operand): boolean {
  return o.kind === 'column' && o.column < 0;
}

function resolveAggregate(agg: AggregateColumn, at: (c: number) => number): AggregateColumn {
  if (agg.kind === 'avg') return { kind: 'avg', column: at(agg.column), sum: at(agg.sum), count: at(agg.count) };
  return { kind: agg.kind, column: at(agg.column) };
}

function resolvePredicate(p: Predicate, at: (c: number) => number): Predicate {
  switch (p.kind) {
    case 'and':
    case 'or':
      return { kind: p.kind, args: p.args.map((a) => resolvePredicate(a, at)) };
    case 'not':
      return { kind: 'not', arg: resolvePredicate(p.arg, at) };
    case 'compare':
      return { kind: 'compare', op: p.op, left: resolveOperand(p.left, at), right: resolveOperand(p.right, at) };
    case 'isNull':
      return { kind: 'isNull', negated: p.negated, arg: resolveOperand(p.arg, at) };
  }
}

function resolveOperand(o: Operand, at: (c: number) => number): Operand {
  return o.kind === 'column' ? { kind: 'column', column: at(o.column) } : o;
}
