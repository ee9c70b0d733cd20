import type { Node } from 'libpg-query';
import { stringOf } from '../sql/ast.js';

/**
 * The name PostgreSQL gives a select-list entry without an alias
 * (`FigureColname` in parse_target.c) for the expression nodes the merge
 * evaluates on the final step: a column's last name, a function's name,
 * `coalesce`, `greatest`/`least`, `nullif`, `case` unless its ELSE names it,
 * a cast's type unless its argument names it; `?column?` otherwise.
 */
export function figureColname(node: Node): string {
  return nameOf(node)?.name ?? '?column?';
}

/** The name and its strength (2: a column or function, 1: a type or `case`), or null. */
function nameOf(node: Node | undefined): { name: string; strength: 1 | 2 } | null {
  if (node === undefined) return null;
  if ('ColumnRef' in node) {
    const names = (node.ColumnRef.fields ?? []).map((f) => stringOf(f)).filter((n): n is string => n !== null);
    return names.length === 0 ? null : { name: names[names.length - 1]!, strength: 2 };
  }
  if ('FuncCall' in node) {
    const names = node.FuncCall.funcname ?? [];
    return { name: stringOf(names[names.length - 1]) ?? '', strength: 2 };
  }
  if ('A_Expr' in node) return node.A_Expr.kind === 'AEXPR_NULLIF' ? { name: 'nullif', strength: 2 } : null;
  if ('TypeCast' in node) {
    const inner = nameOf(node.TypeCast.arg);
    if (inner !== null && inner.strength > 1) return inner;
    const names = node.TypeCast.typeName?.names ?? [];
    const type = stringOf(names[names.length - 1]);
    return type === null ? inner : { name: type, strength: 1 };
  }
  if ('CollateClause' in node) return nameOf(node.CollateClause.arg);
  if ('CaseExpr' in node) {
    const inner = nameOf(node.CaseExpr.defresult);
    return inner !== null && inner.strength > 1 ? inner : { name: 'case', strength: 1 };
  }
  if ('CoalesceExpr' in node) return { name: 'coalesce', strength: 2 };
  if ('MinMaxExpr' in node) return { name: node.MinMaxExpr.op === 'IS_LEAST' ? 'least' : 'greatest', strength: 2 };
  if ('A_ArrayExpr' in node) return { name: 'array', strength: 2 };
  if ('RowExpr' in node) return { name: 'row', strength: 2 };
  return null;
}
