import type { FuncCall, Node, ResTarget, SelectStmt, SortBy } from 'libpg-query';
import { cloneTree, columnRefNames, constText, exprKey, funcName, isStarRef, stringOf, uncast, walkTree } from '../sql/ast.js';
import { paramCount, renumberParams } from '../sql/renumber-params.js';
import { deparseNode } from '../sql/parser.js';
import { exprShape, isAggregateCall } from './aggregates.js';
import { figureColname } from './column-name.js';
import type { AggregateColumn, CombinedExpression, Count, MergeSpec, Operand, Predicate, SortKey } from './plan.js';
import { COMBINED_ROW, combinedColumn } from './plan.js';

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
/**
 * Functions an expression over aggregates may call on the final step: their
 * result depends only on their arguments (and the session settings the
 * compute connection shares), so evaluating them there gives one server's.
 */
const FINAL_STEP_FUNCTIONS = new Set([
  'abs', 'round', 'trunc', 'ceil', 'ceiling', 'floor', 'mod', 'power', 'pow', 'sqrt', 'cbrt', 'sign', 'div', 'exp', 'ln', 'log', 'log10',
  'greatest', 'least', 'coalesce', 'nullif', 'scale', 'width_bucket',
  'lower', 'upper', 'length', 'char_length', 'octet_length', 'substr', 'substring', 'concat', 'concat_ws', 'left', 'right', 'replace',
  'btrim', 'ltrim', 'rtrim', 'lpad', 'rpad', 'strpos', 'split_part', 'initcap', 'reverse', 'md5', 'format',
  'date_trunc', 'date_part', 'extract', 'to_char', 'age', 'justify_interval', 'justify_hours', 'justify_days', 'make_date',
]);
/** Operators an expression over aggregates may use on the final step (built-in arithmetic, comparison, concatenation). */
const FINAL_STEP_OPERATORS = new Set(['+', '-', '*', '/', '%', '^', '||', '=', '<>', '!=', '<', '<=', '>', '>=', '|/', '@']);
const EXPRESSION_HINT =
  'Use arithmetic, comparisons, CASE, COALESCE, NULLIF and built-in numeric, text and date functions over the aggregates and GROUP BY columns, without parameters or subqueries, or filter by the sharding key.';
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
  /** The select list as the client wrote it (entries that become expressions are replaced by NULL in the shard SQL). */
  readonly #written: (Node | undefined)[];
  /** Select-list entries that are expressions over aggregates, compiled once the group columns are known. */
  readonly #pending: { readonly val: Node; readonly column: number }[] = [];
  readonly #exprs: CombinedExpression[] = [];
  /** exprKey of each group key (as written and as the select-list entry it names) → its shard result column. */
  readonly #groupKeys = new Map<string, number>();
  #rewritten = false;

  constructor(sel: SelectStmt, clientSql: string) {
    this.#sel = sel;
    this.#clientSql = clientSql;
    let first = sel;
    while ((first.op ?? 'SETOP_NONE') !== 'SETOP_NONE' && first.larg !== undefined) first = first.larg;
    this.#targets = (first.targetList ?? []).map((t) => ('ResTarget' in t ? t.ResTarget : {}));
    this.#written = this.#targets.map((t) => t.val);
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
      this.#targets.forEach((t, i) => this.#aggregateTarget(t, i));
      groupBy = (sel.groupClause ?? []).map((g) => this.#groupColumn(g));
      this.#noteGroupKeys(groupBy);
      for (const p of this.#pending) this.#exprs.push({ column: p.column, sql: this.#combinedSql(p.val) });
    }
    const orderBy = (sel.sortClause ?? []).map((s) => this.#sortKey(s, setOp, grouped));
    const { having, havingSql } = grouped && sel.havingClause !== undefined ? this.#having(sel.havingClause) : { having: null, havingSql: null };
    if (having !== null || havingSql !== null) {
      delete sel.havingClause;
      this.#rewritten = true;
    }
    // Evaluated on the final step, which orders the combined rows itself: an ORDER BY on the shards would be wasted work,
    // and one over an expression of aggregates would evaluate it over one shard's partial aggregates.
    const final = this.#exprs.length > 0 || havingSql !== null;
    if (final) this.#everyColumnCombined(groupBy);
    if (final && sel.sortClause !== undefined) {
      delete sel.sortClause;
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
      if (final) {
        // The final step groups in PostgreSQL: no order to choose for streaming.
      } else if (groupBy.length > 0 && orderBy.length === 0) {
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
      aggregate: grouped
        ? { groupBy, columns: this.#aggs, having, ...(this.#exprs.length > 0 ? { expressions: this.#exprs } : {}), ...(havingSql !== null ? { havingSql } : {}) }
        : null,
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

  /**
   * Registers an aggregate output column (refusing aggregates that cannot be
   * combined), or an expression over aggregates: the shards send NULL in its
   * place, under the name one server would give it, and the final step
   * evaluates it over the combined group. Evaluating it on a shard would be
   * wasted, and could fail where the whole answer does not (a division by one
   * shard's zero count).
   */
  #aggregateTarget(target: ResTarget, column: number): void {
    const val = target.val;
    if (val === undefined) return;
    if ('FuncCall' in val && isAggregateCall(val.FuncCall)) {
      this.#aggs.push(this.#aggregateColumn(val.FuncCall, this.#known(column)));
      return;
    }
    if (!exprShape([val]).aggregates) return;
    this.#pending.push({ val, column: this.#known(column) });
    target.name ??= figureColname(val);
    target.val = { A_Const: { isnull: true } };
    this.#rewritten = true;
  }

  /** A hidden column the final step fills with `node`, an expression over aggregates. */
  #appendExpression(node: Node): number {
    const sql = this.#combinedSql(node);
    const column = this.#targets.length + this.#hidden.length;
    this.#hidden.push({ name: `__sg_${this.#hidden.length}`, val: { A_Const: { isnull: true } } });
    this.#exprs.push({ column, sql });
    return column;
  }

  /**
   * On the final step every column must be a group key, a combined aggregate
   * or an expression over them: a column computed per partial group from the
   * group keys (`g || 'x'`, a hidden `ORDER BY g` beside the group column
   * `g`) becomes an expression over the group columns (refused, and then
   * gathered, when it is not one).
   */
  #everyColumnCombined(groupBy: readonly number[]): void {
    const used = new Set<number>([...groupBy, ...this.#exprs.map((e) => e.column)]);
    for (const a of this.#aggs) for (const c of a.kind === 'avg' ? [a.column, a.sum, a.count] : [a.column]) used.add(c);
    const width = this.#targets.length + this.#hidden.length;
    for (let c = 0; c < width; c++) {
      if (used.has(c)) continue;
      const target = c < this.#targets.length ? this.#targets[c]! : this.#hidden[c - this.#targets.length]!;
      const val = c < this.#targets.length ? this.#written[c] : target.val;
      if (val === undefined) continue;
      this.#exprs.push({ column: c, sql: this.#combinedSql(val) });
      target.name ??= figureColname(val);
      target.val = { A_Const: { isnull: true } };
      this.#rewritten = true;
    }
  }

  #noteGroupKeys(groupBy: readonly number[]): void {
    (this.#sel.groupClause ?? []).forEach((g, j) => {
      const column = groupBy[j]!;
      if (this.#ordinal(g) === null) this.#groupKeys.set(exprKey(g), column);
      const named = column < this.#targets.length ? this.#written[column] : this.#hidden[column - this.#targets.length]?.val;
      if (named !== undefined) this.#groupKeys.set(exprKey(named), column);
    });
  }

  /** The column holding the aggregate `node` (combined): a select-list entry, a hidden column added before, or a new hidden one. */
  #aggregateOperand(node: Node & { FuncCall: FuncCall }): number {
    const registered = (c: number): boolean => this.#aggs.some((a) => a.column === c);
    const key = exprKey(node);
    const listed = this.#findExpr(node);
    if (listed !== -1 && registered(listed)) return listed;
    const hidden = this.#hidden.findIndex((h, i) => h.val !== undefined && exprKey(h.val) === key && registered(this.#targets.length + i));
    if (hidden !== -1) return this.#targets.length + hidden;
    const column = this.#appendHidden(node);
    this.#aggs.push(this.#aggregateColumn(node.FuncCall, column));
    return column;
  }

  /** `node` (an expression over aggregates and group keys) as SQL over the combined group row (plan.ts CombinedExpression). */
  #combinedSql(node: Node): string {
    return deparseNode(this.#combined(node));
  }

  /** `node` with every aggregate and group key replaced by its combined column; refuses what the final step could evaluate otherwise than one server. */
  #combined(node: Node): Node {
    const ref = (column: number): Node => ({ ColumnRef: { fields: [{ String: { sval: COMBINED_ROW } }, { String: { sval: combinedColumn(column) } }] } });
    const fail = (what: string): never => refuse(`an expression over aggregates with ${what} cannot be combined across shards`, EXPRESSION_HINT);
    if ('FuncCall' in node && isAggregateCall(node.FuncCall)) return ref(this.#aggregateOperand(node));
    const group = this.#groupKeys.get(exprKey(node));
    if (group !== undefined) return ref(group);
    const one = (n: Node | undefined): Node | undefined => (n === undefined ? undefined : this.#combined(n));
    const all = (ns: Node[] | undefined): Node[] | undefined => ns?.map((n) => this.#combined(n));
    if ('A_Const' in node) return node;
    if ('TypeCast' in node) return { TypeCast: { ...node.TypeCast, arg: one(node.TypeCast.arg) } };
    if ('CollateClause' in node) return { CollateClause: { ...node.CollateClause, arg: one(node.CollateClause.arg) } };
    if ('List' in node) return { List: { ...node.List, items: all(node.List.items) } };
    if ('A_Expr' in node) {
      const e = node.A_Expr;
      const op = e.name?.length === 1 ? stringOf(e.name[0]) : null;
      const kinds = ['AEXPR_OP', 'AEXPR_NULLIF', 'AEXPR_IN', 'AEXPR_DISTINCT', 'AEXPR_NOT_DISTINCT', 'AEXPR_BETWEEN', 'AEXPR_NOT_BETWEEN'];
      if (!kinds.includes(e.kind ?? '') || op === null || !(FINAL_STEP_OPERATORS.has(op) || (e.kind ?? '').includes('BETWEEN'))) fail('this operator');
      return { A_Expr: { ...e, lexpr: one(e.lexpr), rexpr: one(e.rexpr) } };
    }
    if ('FuncCall' in node) {
      const fc = node.FuncCall;
      const schema = (fc.funcname?.length ?? 0) > 1 ? stringOf(fc.funcname![0]) : 'pg_catalog';
      if (schema !== 'pg_catalog' || !FINAL_STEP_FUNCTIONS.has(funcName(fc)) || fc.agg_order !== undefined || fc.agg_filter !== undefined || fc.func_variadic === true) {
        fail(`the function ${funcName(fc)}()`);
      }
      return { FuncCall: { ...fc, args: all(fc.args) } };
    }
    if ('CoalesceExpr' in node) return { CoalesceExpr: { ...node.CoalesceExpr, args: all(node.CoalesceExpr.args) } };
    if ('MinMaxExpr' in node) return { MinMaxExpr: { ...node.MinMaxExpr, args: all(node.MinMaxExpr.args) } };
    if ('BoolExpr' in node) return { BoolExpr: { ...node.BoolExpr, args: all(node.BoolExpr.args) } };
    if ('NullTest' in node) return { NullTest: { ...node.NullTest, arg: one(node.NullTest.arg) } };
    if ('BooleanTest' in node) return { BooleanTest: { ...node.BooleanTest, arg: one(node.BooleanTest.arg) } };
    if ('CaseExpr' in node) {
      const c = node.CaseExpr;
      const whens = (c.args ?? []).map((w): Node => {
        if (!('CaseWhen' in w)) fail('this CASE');
        const cw = (w as { CaseWhen: { expr?: Node; result?: Node } }).CaseWhen;
        return { CaseWhen: { ...cw, expr: one(cw.expr), result: one(cw.result) } };
      });
      return { CaseExpr: { ...c, arg: one(c.arg), args: whens, defresult: one(c.defresult) } };
    }
    if ('ColumnRef' in node) fail('a column that is neither grouped nor inside an aggregate');
    if ('ParamRef' in node) fail('a parameter');
    if ('SubLink' in node) fail('a subquery');
    return fail(`a ${Object.keys(node)[0] ?? 'node'}`);
  }

  /**
   * HAVING as a Predicate the streaming merge evaluates, or, when it is more
   * than comparisons of aggregates, group keys, constants and parameters, as
   * SQL the final step evaluates over the combined group.
   */
  #having(node: Node): { having: Predicate | null; havingSql: string | null } {
    const hidden = this.#hidden.length;
    const aggs = this.#aggs.length;
    try {
      return { having: this.#predicate(node), havingSql: null };
    } catch (e) {
      if (!(e instanceof Refusal) || !exprShape([node]).aggregates) throw e;
      // Columns the attempt appended are not needed by the SQL form (it appends its own).
      this.#hidden.length = hidden;
      this.#aggs.length = aggs;
      return { having: null, havingSql: this.#combinedSql(node) };
    }
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
    return this.#written.findIndex((v) => v !== undefined && exprKey(v) === key);
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
        const aggregate = grouped && 'FuncCall' in node && isAggregateCall(node.FuncCall);
        // Also a column inside a *: a hidden copy is the only way to locate it.
        column = grouped && !aggregate && exprShape([node]).aggregates ? this.#appendExpression(node) : this.#appendHidden(node);
        fromEnd = this.#star !== -1;
        if (aggregate) this.#aggs.push(this.#aggregateColumn((node as { FuncCall: FuncCall }).FuncCall, column));
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
    // An expression column's type is known on the final step only: HAVING then goes there as SQL (#having).
    if (existing !== -1 && this.#exprs.some((e) => e.column === existing)) refuse('HAVING compares an expression over aggregates');
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
