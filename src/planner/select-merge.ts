import type { FuncCall, Node, ResTarget, SelectStmt, SortBy } from 'libpg-query';
import { cloneTree, columnRefNames, constText, exprKey, funcName, isStarRef, stringOf, uncast, walkTree } from '../sql/ast.js';
import { paramCount, renumberParams } from '../sql/renumber-params.js';
import { exprShape, isAggregateCall } from './aggregates.js';
import type { AggregateColumn, Count, MergeSpec, Operand, Predicate, SortKey } from './plan.js';

/** A multi-shard SELECT rewritten for merging, or why it cannot be. */
export type MergeRewrite =
  /** `paramMap`: which client parameters the rewritten `sql` takes (ShardStatement.paramMap); null: all, unchanged. */
  | { readonly kind: 'ok'; readonly sql: string; readonly paramMap: readonly number[] | null; readonly merge: MergeSpec | null }
  | { readonly kind: 'refuse'; readonly reason: string; readonly hint: string };

class Refusal extends Error {
  constructor(readonly reason: string, readonly hint: string) {
    super(reason);
  }
}

const COMBINABLE = new Set(['count', 'sum', 'min', 'max', 'avg']);
const SINGLE_SHARD_HINT = 'Filter by the sharding key so the query reads one shard, or force a shard with /* shardgate:shard=NAME */.';
const STAR_HINT = 'List the columns instead of * (ShardGate needs their positions to merge the shards\' rows).';

function refuse(reason: string, hint = SINGLE_SHARD_HINT): never {
  throw new Refusal(reason, hint);
}

/**
 * Plans the merge of a SELECT that runs on several shards: what each shard
 * runs (the client's text when nothing must change) and how the engine
 * combines the streams (MergeSpec column indexes refer to the shard SQL's
 * result columns).
 *
 * With a `*` in the select list the width of the shard result is unknown
 * here, so columns after the first `*` are given from the end (negative
 * indexes, plan.ts): select items after the last `*` and the hidden columns
 * appended for the merge. When nothing else is hidden, `NULL AS __sg_0` is
 * appended so that `visibleColumns` (negative) can say where the client's
 * columns end.
 */
export function planSelectMerge(stmt: SelectStmt, clientSql: string): MergeRewrite {
  try {
    return new SelectMerge(cloneTree(stmt), clientSql).run();
  } catch (e) {
    if (e instanceof Refusal) return { kind: 'refuse', reason: e.reason, hint: e.hint };
    throw e;
  }
}

/** Collations whose order is UTF-8 byte order (code point order), the order the merge compares text in. */
const BYTE_ORDER_COLLATIONS = new Set(['c', 'posix', 'ucs_basic', 'pg_c_utf8']);

/** Whether a COLLATE clause's name list (`"C"`, `pg_catalog."C"`) names a byte-order collation. */
function byteOrderName(names: readonly Node[] | undefined): boolean {
  const parts = (names ?? []).map((n) => stringOf(n));
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => p === null)) return false;
  if (parts.length === 2 && parts[0] !== 'pg_catalog') return false;
  return BYTE_ORDER_COLLATIONS.has(parts[parts.length - 1]!.toLowerCase());
}

/** Whether `node` is `expr COLLATE "C"` (or another byte-order collation): its collation is then byte order whatever expr's was. */
function endsInByteCollate(node: Node | undefined): boolean {
  return node !== undefined && 'CollateClause' in node && byteOrderName(node.CollateClause.collname);
}

/** Whether any COLLATE clause in the statement names a collation that is not byte order. */
function namesOtherCollation(sel: SelectStmt): boolean {
  let other = false;
  walkTree(sel, (type, value) => {
    if (type === 'CollateClause' && !byteOrderName((value as { collname?: Node[] }).collname)) other = true;
  });
  return other;
}

class SelectMerge {
  readonly #sel: SelectStmt;
  readonly #clientSql: string;
  /** The top select list: the set operation's first branch for UNION ALL. */
  readonly #targets: ResTarget[];
  /** First and last `*` of the select list (-1: none). */
  readonly #star: number;
  readonly #lastStar: number;
  /** Sort keys whose column is an index into the select list + hidden columns that must be counted from the end. */
  readonly #fromEnd = new Set<SortKey>();
  readonly #hidden: ResTarget[] = [];
  readonly #aggs: AggregateColumn[] = [];
  #rewritten = false;

  constructor(sel: SelectStmt, clientSql: string) {
    this.#sel = sel;
    this.#clientSql = clientSql;
    let first = sel;
    while ((first.op ?? 'SETOP_NONE') !== 'SETOP_NONE' && first.larg !== undefined) first = first.larg;
    this.#targets = (first.targetList ?? []).map((t) => ('ResTarget' in t ? t.ResTarget : {}));
    this.#star = this.#targets.findIndex((t) => isStarRef(t.val));
    let last = -1;
    this.#targets.forEach((t, i) => {
      if (isStarRef(t.val)) last = i;
    });
    this.#lastStar = last;
  }

  run(): MergeRewrite {
    const sel = this.#sel;
    const clientParams = paramCount({ SelectStmt: sel });
    const setOp = (sel.op ?? 'SETOP_NONE') !== 'SETOP_NONE';
    if ((sel.distinctClause?.length ?? 0) > 0 && sel.distinctClause?.some((d) => Object.keys(d).length > 0)) refuse('DISTINCT ON needs all rows of a group on one shard');
    if (sel.limitOption === 'LIMIT_OPTION_WITH_TIES') refuse('FETCH … WITH TIES across shards is not supported');
    if ((sel.lockingClause?.length ?? 0) > 0 && (sel.limitCount !== undefined || sel.limitOffset !== undefined)) {
      refuse('FOR UPDATE/SHARE with LIMIT would lock rows on every shard that are not returned');
    }
    if ((sel.windowClause?.length ?? 0) > 0) refuse('window functions need all rows on one shard');
    const shape = exprShape([...(sel.targetList ?? []), ...(sel.sortClause ?? []), sel.havingClause]);
    if (shape.windows) refuse('window functions need all rows on one shard');
    const grouped = !setOp && (shape.aggregates || (sel.groupClause?.length ?? 0) > 0 || sel.havingClause !== undefined);
    // Only grouping by a primary key makes * valid with GROUP BY; the merge would need each column's role.
    if (grouped && this.#star !== -1) refuse('GROUP BY or aggregates with * cannot be merged across shards', STAR_HINT);

    let groupBy: number[] = [];
    if (grouped) {
      this.#targets.forEach((t, i) => {
        if (t.val !== undefined) this.#aggregateTarget(t.val, i);
      });
      groupBy = (sel.groupClause ?? []).map((g) => this.#groupColumn(g));
    }
    const orderBy = (sel.sortClause ?? []).map((s) => this.#sortKey(s, setOp, grouped));
    const having = grouped && sel.havingClause !== undefined ? this.#predicate(sel.havingClause) : null;
    if (having !== null) {
      delete sel.havingClause;
      this.#rewritten = true;
    }
    const otherCollation = namesOtherCollation(sel);
    let mergeOrder: SortKey[] = orderBy;
    if (grouped) {
      // The engine combines groups as a stream when the merge order starts with exactly the group
      // keys; shards then send partial groups in that order. Otherwise it combines groups in a hash
      // table and sorts afterwards, and an order on the shards would be wasted work.
      const prefix = new Set(orderBy.slice(0, groupBy.length).map((k) => k.column));
      const streamable = groupBy.length > 0 && prefix.size === new Set(groupBy).size && groupBy.every((c) => prefix.has(c));
      if (groupBy.length > 0 && orderBy.length === 0) {
        mergeOrder = groupBy.map((column) => ({ column, descending: false, nullsFirst: false }));
        sel.sortClause = groupBy.map((c) => sortByOrdinal(c + 1));
        this.#rewritten = true;
      } else if (!streamable && sel.sortClause !== undefined) {
        delete sel.sortClause;
        this.#rewritten = true;
      }
    }
    const { limit, offset } = this.#limits(grouped);
    const distinct = (sel.distinctClause?.length ?? 0) > 0;
    const needsMerge = grouped || distinct || mergeOrder.length > 0 || limit !== null || offset !== null;
    if (!needsMerge) return { kind: 'ok', sql: this.#clientSql, paramMap: null, merge: null };
    const star = this.#star !== -1;
    // Appending to every branch of a UNION ALL is not done; its ORDER BY never needs hidden columns otherwise.
    if (star && setOp) refuse('merging a UNION ALL whose select list contains * is not supported', STAR_HINT);
    // A negative visibleColumns cannot say "all of them", so a * always ends in at least one hidden column.
    if (star && this.#hidden.length === 0) this.#hidden.push({ name: '__sg_0', val: { A_Const: { isnull: true } } });
    if (this.#hidden.length > 0) {
      const list = setOp ? this.#firstBranch().targetList : sel.targetList;
      if (list === undefined) refuse('a select list is required');
      for (const h of this.#hidden) list.push({ ResTarget: h });
      this.#rewritten = true;
    }
    // Select list + hidden columns: an index into them counted from the end is that minus their number.
    const width = this.#targets.length + this.#hidden.length;
    const merge: MergeSpec = {
      visibleColumns: star ? -this.#hidden.length : this.#targets.length,
      aggregate: grouped ? { groupBy, columns: this.#aggs, having } : null,
      distinct,
      orderBy: mergeOrder.map((key) => (this.#fromEnd.has(key) ? { ...key, column: key.column - width } : key)),
      offset,
      limit,
      ...(mergeOrder !== orderBy ? { orderChosen: true as const } : {}),
      ...(otherCollation ? { otherCollation: true as const } : {}),
    };
    if (!this.#rewritten) return { kind: 'ok', sql: this.#clientSql, paramMap: null, merge };
    // A HAVING the merge evaluates takes its parameters with it: the shards get only the ones left.
    const { sql, paramMap } = renumberParams({ SelectStmt: sel });
    const all = paramMap.length === clientParams && paramMap.every((p, i) => p === i);
    return { kind: 'ok', sql, paramMap: all ? null : paramMap, merge };
  }

  #firstBranch(): SelectStmt {
    let first = this.#sel;
    while ((first.op ?? 'SETOP_NONE') !== 'SETOP_NONE' && first.larg !== undefined) first = first.larg;
    return first;
  }

  /** Column index of a select-list entry, which must lie before any `*` (entries after one are located by `#sortKey`). */
  #known(i: number): number {
    if (this.#star !== -1 && i >= this.#star) refuse('the merge needs the position of a column after *', STAR_HINT);
    return i;
  }

  /** Whether select-list entry `i` lies after the last `*`: its index counts from the end. Refuses an entry that is a `*` or between two. */
  #afterStar(i: number): boolean {
    if (this.#star === -1 || i < this.#star) return false;
    if (i <= this.#lastStar) refuse('the merge needs the position of a column between or inside *', STAR_HINT);
    return true;
  }

  #appendHidden(val: Node): number {
    const index = this.#targets.length + this.#hidden.length;
    this.#hidden.push({ name: `__sg_${this.#hidden.length}`, val: cloneTree(val) });
    return index;
  }

  /** Registers an aggregate output column; refuses aggregates that cannot be combined. */
  #aggregateTarget(val: Node, column: number): void {
    if (!('FuncCall' in val) || !isAggregateCall(val.FuncCall)) {
      if (exprShape([val]).aggregates) refuse('an expression over aggregates cannot be combined across shards', 'Select the aggregates themselves and compute the expression in the application, or filter by the sharding key.');
      return;
    }
    this.#aggs.push(this.#aggregateColumn(val.FuncCall, this.#known(column)));
  }

  #aggregateColumn(fc: FuncCall, column: number): AggregateColumn {
    const name = funcName(fc);
    if (!COMBINABLE.has(name) || fc.agg_within_group === true) refuse(`aggregate ${name}() cannot be combined across shards`);
    if (fc.agg_distinct === true) refuse(`${name}(DISTINCT …) cannot be combined across shards`);
    if (name === 'avg') {
      const sum = this.#appendHidden({ FuncCall: { ...cloneTree(fc), funcname: [{ String: { sval: 'sum' } }] } });
      const count = this.#appendHidden({ FuncCall: { ...cloneTree(fc), funcname: [{ String: { sval: 'count' } }] } });
      return { kind: 'avg', column, sum, count };
    }
    if ((name === 'min' || name === 'max') && endsInByteCollate(fc.args?.[0])) return { kind: name, column, byteOrder: true };
    return { kind: name as 'count' | 'sum' | 'min' | 'max', column };
  }

  /** Index of a select-list entry equal to `node` (ignoring where it was written), or -1. */
  #findExpr(node: Node): number {
    const key = exprKey(node);
    return this.#targets.findIndex((t) => t.val !== undefined && exprKey(t.val) === key);
  }

  #findName(node: Node): number {
    if (!('ColumnRef' in node)) return -1;
    const names = columnRefNames(node.ColumnRef);
    if (names === null || names.length !== 1) return -1;
    return this.#targets.findIndex((t) => outputName(t) === names[0]);
  }

  #ordinal(node: Node): number | null {
    if (!('A_Const' in node)) return null;
    const c = constText(node.A_Const);
    if (!c.integer || c.text === null) return null;
    const k = Number(c.text);
    // Past a * the select list's width is unknown; the engine checks the position against the shard result (42P10).
    if (k < 1 || (k > this.#targets.length && this.#star === -1)) refuse(`position ${k} is not in the select list`, 'Use a column position within the select list.');
    return k - 1;
  }

  #groupColumn(g: Node): number {
    if ('GroupingSet' in g) refuse('GROUPING SETS, ROLLUP and CUBE cannot be combined across shards');
    const ord = this.#ordinal(g);
    if (ord !== null) return this.#known(ord);
    // GROUP BY prefers input columns, then output names (PostgreSQL's order).
    const byExpr = this.#findExpr(g);
    if (byExpr !== -1) return this.#known(byExpr);
    const byName = this.#findName(g);
    if (byName !== -1) return this.#known(byName);
    return this.#appendHidden(g);
  }

  #sortKey(s: Node, setOp: boolean, grouped: boolean): SortKey {
    if (!('SortBy' in s)) refuse('unexpected ORDER BY item');
    const sb: SortBy = s.SortBy;
    if (sb.sortby_dir === 'SORTBY_USING' || sb.useOp !== undefined) refuse('ORDER BY … USING cannot be merged across shards');
    const descending = sb.sortby_dir === 'SORTBY_DESC';
    const nullsFirst = sb.sortby_nulls === 'SORTBY_NULLS_FIRST' ? true : sb.sortby_nulls === 'SORTBY_NULLS_LAST' ? false : descending;
    const node = sb.node;
    if (node === undefined) refuse('unexpected ORDER BY item');
    const ord = this.#ordinal(node);
    let column: number;
    let fromEnd = false;
    // The collation of the key: its own COLLATE clause, or that of the select-list entry it names.
    let byteOrder = endsInByteCollate(node);
    // An ordinal names an output column, which keeps its position whatever a * expands to.
    if (ord !== null) {
      column = this.#star === -1 ? this.#known(ord) : ord;
      byteOrder = (this.#star === -1 || ord < this.#star) && endsInByteCollate(this.#targets[ord]?.val);
    } else {
      // ORDER BY prefers output column names, then expressions of the select list.
      const byName = this.#findName(node);
      const byExpr = byName === -1 ? this.#findExpr(node) : byName;
      if (byExpr !== -1) {
        byteOrder ||= endsInByteCollate(this.#targets[byExpr]?.val);
        fromEnd = this.#afterStar(byExpr);
        column = fromEnd ? byExpr : this.#known(byExpr);
      } else if (setOp) refuse('ORDER BY of a UNION ALL must name an output column');
      else {
        // Also a column inside a *: a hidden copy is the only way to locate it.
        column = this.#appendHidden(node);
        fromEnd = this.#star !== -1;
        if (grouped && 'FuncCall' in node && isAggregateCall(node.FuncCall)) this.#aggs.push(this.#aggregateColumn(node.FuncCall, column));
        else if (grouped && exprShape([node]).aggregates) refuse('ORDER BY an expression over aggregates cannot be merged across shards');
      }
    }
    const key: SortKey = byteOrder ? { column, descending, nullsFirst, byteOrder: true } : { column, descending, nullsFirst };
    if (fromEnd) this.#fromEnd.add(key);
    return key;
  }

  /** A HAVING condition as a Predicate over merged group columns. */
  #predicate(node: Node): Predicate {
    if ('BoolExpr' in node) {
      const args = (node.BoolExpr.args ?? []).map((a) => this.#predicate(a));
      if (node.BoolExpr.boolop === 'NOT_EXPR') return { kind: 'not', arg: args[0] as Predicate };
      return { kind: node.BoolExpr.boolop === 'OR_EXPR' ? 'or' : 'and', args };
    }
    if ('NullTest' in node && node.NullTest.arg !== undefined) {
      return { kind: 'isNull', negated: node.NullTest.nulltesttype === 'IS_NOT_NULL', arg: this.#operand(node.NullTest.arg) };
    }
    if ('A_Expr' in node && node.A_Expr.kind === 'AEXPR_OP' && node.A_Expr.lexpr !== undefined && node.A_Expr.rexpr !== undefined) {
      const raw = stringOf(node.A_Expr.name?.[0]);
      const op = raw === '!=' ? '<>' : raw;
      if (op === '=' || op === '<>' || op === '<' || op === '<=' || op === '>' || op === '>=') {
        return { kind: 'compare', op, left: this.#operand(node.A_Expr.lexpr), right: this.#operand(node.A_Expr.rexpr) };
      }
    }
    refuse('this HAVING condition cannot be evaluated after merging shards', 'Use comparisons of aggregates, group columns, constants and parameters combined with AND, OR, NOT.');
  }

  #operand(node: Node): Operand {
    const bare = uncast(node);
    if ('A_Const' in bare) return { kind: 'literal', value: constText(bare.A_Const).text };
    if ('ParamRef' in bare) return { kind: 'param', index: (bare.ParamRef.number ?? 1) - 1 };
    const existing = this.#findExpr(node);
    if (existing !== -1) return { kind: 'column', column: this.#known(existing) };
    if ('FuncCall' in node && isAggregateCall(node.FuncCall)) {
      const column = this.#appendHidden(node);
      this.#aggs.push(this.#aggregateColumn(node.FuncCall, column));
      return { kind: 'column', column };
    }
    const group = (this.#sel.groupClause ?? []).some((g) => exprKey(g) === exprKey(node));
    if (group) return { kind: 'column', column: this.#appendHidden(node) };
    refuse('this HAVING condition cannot be evaluated after merging shards', 'Use comparisons of aggregates, group columns, constants and parameters combined with AND, OR, NOT.');
  }

  /** Merge limits; rewrites the shard query to fetch limit + offset rows (nothing is cut on shards when grouping). */
  #limits(grouped: boolean): { limit: Count | null; offset: Count | null } {
    const sel = this.#sel;
    const limit = sel.limitCount === undefined ? null : countOf(sel.limitCount, 'LIMIT');
    const offset = sel.limitOffset === undefined ? null : countOf(sel.limitOffset, 'OFFSET');
    // LIMIT ALL / LIMIT NULL without OFFSET: nothing to do.
    if (limit === null && offset === null) return { limit: null, offset: null };
    if (offset !== null || grouped || limit === null) this.#rewritten = true;
    delete sel.limitOffset;
    if (grouped || limit === null) {
      delete sel.limitCount;
      sel.limitOption = 'LIMIT_OPTION_DEFAULT';
    } else if (offset !== null) {
      sel.limitCount = sumCounts(limit, offset);
    }
    return { limit, offset };
  }
}

/** A LIMIT/OFFSET value: a constant, a parameter, or null for LIMIT ALL / NULL. */
function countOf(node: Node, what: string): Count | null {
  const bare = uncast(node);
  if ('A_Const' in bare) {
    const c = constText(bare.A_Const);
    if (c.text === null) return null;
    if (!c.integer) refuse(`${what} must be an integer constant or parameter across shards`, 'Write the count as an integer or a parameter.');
    return { kind: 'value', value: Number(c.text) };
  }
  if ('ParamRef' in bare) return { kind: 'param', index: (bare.ParamRef.number ?? 1) - 1 };
  refuse(`${what} must be an integer constant or parameter across shards`, 'Write the count as an integer or a parameter.');
}

function countNode(c: Count): Node {
  if (c.kind === 'value') return { A_Const: { ival: { ival: c.value } } };
  // Typed so that PostgreSQL can resolve `$1 + $2` without knowing the parameters' types.
  return { TypeCast: { arg: { ParamRef: { number: c.index + 1 } }, typeName: { names: [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'int8' } }], typemod: -1 } } };
}

function sumCounts(a: Count, b: Count): Node {
  if (a.kind === 'value' && b.kind === 'value') return countNode({ kind: 'value', value: a.value + b.value });
  return { A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '+' } }], lexpr: countNode(a), rexpr: countNode(b) } };
}

function sortByOrdinal(k: number): Node {
  return { SortBy: { node: { A_Const: { ival: { ival: k } } }, sortby_dir: 'SORTBY_DEFAULT', sortby_nulls: 'SORTBY_NULLS_DEFAULT' } };
}

/** The column name PostgreSQL gives a select-list entry (alias, column name or function name). */
function outputName(t: ResTarget): string | null {
  if (t.name !== undefined) return t.name;
  const v = t.val;
  if (v === undefined) return null;
  if ('ColumnRef' in v) {
    const names = columnRefNames(v.ColumnRef);
    return names === null ? null : (names[names.length - 1] ?? null);
  }
  if ('FuncCall' in v) return funcName(v.FuncCall);
  return null;
}
