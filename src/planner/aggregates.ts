import type { FuncCall, Node, SelectStmt } from 'libpg-query';
import { funcName, walkTree } from '../sql/ast.js';

/** Built-in aggregate functions. User-defined aggregates are not recognised (README: "Limits"). */
export const AGGREGATE_NAMES: ReadonlySet<string> = new Set([
  'count', 'sum', 'min', 'max', 'avg',
  'array_agg', 'string_agg', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'json_arrayagg', 'json_objectagg', 'xmlagg',
  'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'bit_xor',
  'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp',
  'corr', 'covar_pop', 'covar_samp', 'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx', 'regr_sxy', 'regr_syy',
  'percentile_cont', 'percentile_disc', 'mode', 'range_agg', 'range_intersect_agg', 'any_value',
]);

/** True when the call is an aggregate (not a window function). */
export function isAggregateCall(fc: FuncCall): boolean {
  if (fc.over !== undefined) return false;
  return fc.agg_star === true || fc.agg_within_group === true || AGGREGATE_NAMES.has(funcName(fc));
}

/** What a select level computes over its rows, ignoring nested subqueries. */
export interface SelectShape {
  readonly aggregates: boolean;
  readonly windows: boolean;
}

/** Looks for aggregate and window calls in expressions, without entering subqueries. */
export function exprShape(nodes: readonly (Node | undefined)[]): SelectShape {
  let aggregates = false;
  let windows = false;
  for (const node of nodes) {
    if (node === undefined) continue;
    walkTree(node, (type, value) => {
      if (type === 'SubLink') return false;
      if (type === 'FuncCall') {
        const fc = value as FuncCall;
        if (fc.over !== undefined) windows = true;
        else if (isAggregateCall(fc)) aggregates = true;
      }
      return true;
    });
  }
  return { aggregates, windows };
}

/** True when a select level does more than filter and project rows: its result on one shard is not its share of the global result. */
export function isNonDistributive(sel: SelectStmt): boolean {
  if ((sel.op ?? 'SETOP_NONE') !== 'SETOP_NONE') return true;
  if ((sel.groupClause?.length ?? 0) > 0 || sel.havingClause !== undefined) return true;
  if ((sel.distinctClause?.length ?? 0) > 0) return true;
  if (sel.limitCount !== undefined || sel.limitOffset !== undefined) return true;
  if ((sel.windowClause?.length ?? 0) > 0) return true;
  const shape = exprShape([...(sel.targetList ?? []), ...(sel.sortClause ?? [])]);
  return shape.aggregates || shape.windows;
}
