import type { A_Expr, DeleteStmt, InsertStmt, JoinExpr, Node, RangeTableSample, RangeVar, SelectStmt, UpdateStmt, WithClause } from 'libpg-query';
import type { TableName } from '../config/names.js';
import { tableName } from '../config/names.js';
import type { ShardGateConfig, TableRule } from '../config/types.js';
import { columnRefNames, findRangeVars, nodeFields, nodeType, stringOf, walkTree } from '../sql/ast.js';
import { isNonDistributive } from './aggregates.js';
import type { BoundRef, KeyCond } from './key-conditions.js';
import { ANY, andCond, orCond, valueRef } from './key-conditions.js';

/** Where a referenced table lives. Catalog relations live (for us) on the default shard. */
export type Placement = 'sharded' | 'broadcast' | 'unlisted' | 'catalog';

/** One reference to a table in a statement (a table joined to itself is two occurrences). */
export interface Occurrence {
  readonly table: TableName;
  readonly placement: Placement;
  /** The rule when sharded. */
  readonly rule: Exclude<TableRule, { kind: 'broadcast' }> | null;
  readonly alias: string;
  /** Conditions on its sharding key that every result row satisfies. */
  cond: KeyCond;
  /**
   * True when the statement's result rows come from this occurrence's rows
   * (top-level FROM, or a plain subquery in it), so its key conditions may
   * restrict the shards the whole statement runs on.
   */
  readonly restricting: boolean;
  /** The table an INSERT, UPDATE or DELETE writes. */
  readonly target: boolean;
}

interface Scope {
  readonly parent: Scope | null;
  readonly occs: Occurrence[];
  readonly ctes: Set<string>;
}

/** Everything routing needs to know about the tables of a statement. */
export interface RelationFacts {
  readonly occurrences: readonly Occurrence[];
  /** Every sharded occurrence is joined to the others by equality of sharding keys under compatible rules. */
  readonly colocated: boolean;
  /** Reasons the statement cannot run on several shards at once (empty: it can). */
  readonly multiShardBlockers: readonly string[];
  /** A WITH clause holds an INSERT, UPDATE or DELETE. */
  readonly writesInCte: boolean;
  /**
   * A shape the collector does not understand and that could hide a table
   * reference (what it is, e.g. "a RangeFoo in FROM"), or null. Such a
   * statement is refused whatever its tables: routing it by the tables that
   * were seen could read one shard and answer wrong.
   */
  readonly unsupported: string | null;
}

const CATALOG_SCHEMAS = new Set(['pg_catalog', 'information_schema']);

/** TABLESAMPLE methods that keep each row with a fixed probability: the samples of all shards together are a sample of the table. */
const DISTRIBUTIVE_SAMPLES = new Set(['system', 'bernoulli']);

/** Nodes that name or produce a table and may appear only where the collector reads FROM items. */
const FROM_ONLY_NODES = new Set(['RangeVar', 'RangeTableSample', 'RangeSubselect', 'JoinExpr', 'RangeFunction', 'RangeTableFunc', 'JsonTable']);

/**
 * Collects the tables of a statement, the sharding-key conditions on each,
 * the key equalities that join them, and the shapes that prevent running it
 * on several shards.
 */
export class RelationCollector {
  readonly #config: ShardGateConfig;
  readonly #occs: Occurrence[] = [];
  readonly #pairs: [Occurrence, Occurrence][] = [];
  readonly #blockers: string[] = [];
  /** Sets of occurrences inside subqueries that compute over rows (aggregates, LIMIT…), with a description. */
  readonly #closedGroups: { occs: Occurrence[]; what: string }[] = [];
  #writesInCte = false;
  #unsupported: string | null = null;

  constructor(config: ShardGateConfig) {
    this.#config = config;
  }

  /** The placement of a table reference. */
  placementOf(rv: RangeVar): { table: TableName; placement: Placement; rule: TableRule | null } {
    const name = rv.relname ?? '';
    const schema = rv.schemaname;
    if (schema !== undefined && CATALOG_SCHEMAS.has(schema)) return { table: tableName(name), placement: 'catalog', rule: null };
    const rule = this.#config.tables.get(tableName(name)) ?? null;
    if (rule !== null) return { table: tableName(name), placement: rule.kind === 'broadcast' ? 'broadcast' : 'sharded', rule };
    if (schema === undefined && name.startsWith('pg_')) return { table: tableName(name), placement: 'catalog', rule: null };
    return { table: tableName(name), placement: 'unlisted', rule: null };
  }

  /** Analyzes a top-level SELECT (or VALUES, or a set operation). */
  select(sel: SelectStmt): this {
    this.#select(sel, null, true, false);
    return this;
  }

  /** Analyzes an UPDATE: its target, FROM list, conditions and subqueries. */
  update(u: UpdateStmt): this {
    const scope = this.#scope(null, u.withClause);
    this.#addRangeVar(u.relation ?? {}, scope, true, true);
    for (const item of u.fromClause ?? []) this.#fromItem(item, scope, true, false);
    this.#where(u.whereClause, scope);
    this.#subqueries([...(u.targetList ?? []), ...(u.returningList ?? [])], scope);
    return this;
  }

  /** Analyzes a DELETE: its target, USING list, conditions and subqueries. */
  delete(d: DeleteStmt): this {
    const scope = this.#scope(null, d.withClause);
    this.#addRangeVar(d.relation ?? {}, scope, true, true);
    for (const item of d.usingClause ?? []) this.#fromItem(item, scope, true, false);
    this.#where(d.whereClause, scope);
    this.#subqueries(d.returningList ?? [], scope);
    return this;
  }

  /** Analyzes an INSERT's target (not restricting: rows are routed by their values) and its source query. */
  insert(i: InsertStmt): this {
    const scope = this.#scope(null, i.withClause);
    this.#addRangeVar(i.relation ?? {}, scope, false, true);
    const src = i.selectStmt;
    if (src !== undefined && 'SelectStmt' in src) {
      const s = src.SelectStmt;
      if ((s.valuesLists?.length ?? 0) > 0 && s.fromClause === undefined) this.#subqueries(s.valuesLists ?? [], scope);
      else this.#select(s, scope, true, false);
    }
    const conflict = i.onConflictClause;
    if (conflict !== undefined) this.#subqueries([...(conflict.targetList ?? []), conflict.whereClause], scope);
    this.#subqueries(i.returningList ?? [], scope);
    return this;
  }

  /** Analyzes any node by collecting its table references only (no conditions): used for utility statements. */
  tablesOnly(node: Node): this {
    for (const rv of findRangeVars(node)) this.#addRangeVar(rv, this.#scope(null, undefined), false, false);
    return this;
  }

  facts(): RelationFacts {
    // An INSERT's target is routed by its rows' values, not joined: it takes no part in co-location.
    const sharded = this.#occs.filter((o) => o.placement === 'sharded' && !(o.target && !o.restricting));
    const colocated = this.#colocated(sharded);
    const blockers = [...this.#blockers];
    for (const g of this.#closedGroups) {
      const inside = new Set(g.occs);
      // A subquery computing over rows is still right per shard when each of its tables is tied to an outer row by the key.
      const correlated = g.occs.every((o) => this.#pairs.some(([a, b]) => (a === o && !inside.has(b)) || (b === o && !inside.has(a))));
      if (!correlated || !colocated) blockers.push(`${g.what} reads sharded table ${g.occs[0]?.table ?? ''} on several shards`);
    }
    if (sharded.length > 0 && !sharded.some((o) => o.restricting)) blockers.push('the sharded tables appear only in subqueries');
    return { occurrences: this.#occs, colocated, multiShardBlockers: blockers, writesInCte: this.#writesInCte, unsupported: this.#unsupported };
  }

  #colocated(sharded: readonly Occurrence[]): boolean {
    if (sharded.length <= 1) return true;
    const parent = new Map<Occurrence, Occurrence>(sharded.map((o) => [o, o]));
    const find = (o: Occurrence): Occurrence => {
      let r = o;
      while (parent.get(r) !== r) r = parent.get(r) as Occurrence;
      return r;
    };
    for (const [a, b] of this.#pairs) {
      if (sameShape(a.rule, b.rule)) parent.set(find(a), find(b));
    }
    const root = find(sharded[0] as Occurrence);
    return sharded.every((o) => find(o) === root);
  }

  #scope(parent: Scope | null, withClause: WithClause | undefined): Scope {
    const scope: Scope = { parent, occs: [], ctes: new Set() };
    if (withClause !== undefined) {
      for (const c of withClause.ctes ?? []) {
        if (!('CommonTableExpr' in c)) continue;
        const cte = c.CommonTableExpr;
        if (withClause.recursive === true) scope.ctes.add(cte.ctename ?? '');
        const q = cte.ctequery;
        if (q !== undefined) this.#nested(q, scope, `the WITH query ${cte.ctename ?? ''}`);
        scope.ctes.add(cte.ctename ?? '');
      }
    }
    return scope;
  }

  /** A query nested in another (CTE, subquery): tables count, conditions do not restrict the outer statement. */
  #nested(q: Node, parent: Scope, what: string): void {
    const before = this.#occs.length;
    if ('SelectStmt' in q) {
      this.#select(q.SelectStmt, parent, false, true);
      const inner = this.#occs.slice(before).filter((o) => o.placement === 'sharded');
      if (inner.length > 0 && isNonDistributive(q.SelectStmt)) this.#closedGroups.push({ occs: inner, what: `${what} (with aggregates, GROUP BY, DISTINCT, LIMIT, window functions or a set operation)` });
    } else if ('InsertStmt' in q || 'UpdateStmt' in q || 'DeleteStmt' in q) {
      this.#writesInCte = true;
      const sub = new RelationCollector(this.#config);
      if ('InsertStmt' in q) sub.insert(q.InsertStmt);
      else if ('UpdateStmt' in q) sub.update(q.UpdateStmt);
      else sub.delete(q.DeleteStmt);
      // The statement's target is its own (top-level) one: a table the WITH query writes is not it.
      for (const o of sub.#occs) this.#occs.push({ ...o, restricting: false, target: false });
      this.#unsupported ??= sub.#unsupported;
      // A broadcast table must change alike on every shard, and the statement may run on one only: fail closed.
      const broadcast = sub.#occs.find((o) => o.target && o.placement === 'broadcast');
      if (broadcast !== undefined) this.#refuseShape(`a WITH query that writes broadcast table ${broadcast.table}`);
      if (sub.#occs.some((o) => o.placement === 'sharded' || o.placement === 'broadcast')) this.#blockers.push(`${what} writes a sharded or broadcast table`);
    } else this.#refuseShape(`a ${nodeType(q)} in ${what}`);
  }

  /** Records a shape the collector cannot see into: the statement is refused (fail closed), the first reason kept. */
  #refuseShape(what: string): void {
    this.#unsupported ??= what;
  }

  #select(sel: SelectStmt, parent: Scope | null, restricting: boolean, nested: boolean): void {
    const scope = this.#scope(parent, sel.withClause);
    const op = sel.op ?? 'SETOP_NONE';
    if (op !== 'SETOP_NONE') {
      if (!nested && !(op === 'SETOP_UNION' && sel.all === true)) this.#blockers.push(`${op.replace('SETOP_', '')}${sel.all === true ? ' ALL' : ''} combines rows of several shards`);
      for (const branch of [sel.larg, sel.rarg]) {
        if (branch === undefined) continue;
        const before = this.#occs.length;
        this.#select(branch, scope, restricting, nested);
        if (!nested && !this.#occs.slice(before).some((o) => o.placement === 'sharded' && o.restricting)) {
          this.#blockers.push('a UNION ALL branch without a sharded table would repeat its rows on every shard');
        }
      }
      this.#subqueries([...(sel.sortClause ?? []), sel.limitCount, sel.limitOffset], scope);
      return;
    }
    for (const item of sel.fromClause ?? []) this.#fromItem(item, scope, restricting, false);
    this.#where(sel.whereClause, scope);
    this.#subqueries(
      [...(sel.targetList ?? []), ...(sel.valuesLists ?? []), sel.havingClause, ...(sel.groupClause ?? []), ...(sel.sortClause ?? []), ...(sel.distinctClause ?? []), ...(sel.windowClause ?? []), sel.limitCount, sel.limitOffset],
      scope,
    );
  }

  #addRangeVar(rv: RangeVar, scope: Scope, restricting: boolean, target: boolean): void {
    const name = rv.relname ?? '';
    if (rv.schemaname === undefined && inCte(scope, name)) return;
    const p = this.placementOf(rv);
    const occ: Occurrence = {
      table: p.table,
      placement: p.placement,
      rule: p.rule === null || p.rule.kind === 'broadcast' ? null : p.rule,
      alias: rv.alias?.aliasname ?? name,
      cond: ANY,
      restricting,
      target,
    };
    scope.occs.push(occ);
    this.#occs.push(occ);
  }

  /**
   * One item of a FROM (or USING) list. Every kind the grammar allows is
   * handled by name; any other is refused, since it might read a table the
   * routing would not know about.
   */
  #fromItem(item: Node, scope: Scope, restricting: boolean, nullable: boolean): void {
    if ('RangeVar' in item) this.#addRangeVar(item.RangeVar, scope, restricting, false);
    else if ('RangeTableSample' in item) this.#tableSample(item.RangeTableSample, scope, restricting);
    else if ('JoinExpr' in item) this.#join(item.JoinExpr, scope, restricting, nullable);
    else if ('RangeSubselect' in item) {
      const sub = item.RangeSubselect.subquery;
      if (sub !== undefined && 'SelectStmt' in sub) {
        // A plain subquery in FROM passes its rows through: its tables restrict like top-level ones.
        const plain = !isNonDistributive(sub.SelectStmt) && sub.SelectStmt.withClause === undefined;
        if (plain && restricting && !nullable) this.#select(sub.SelectStmt, scope, true, false);
        else this.#nested(sub, scope, 'a subquery in FROM');
      } else this.#refuseShape(`a subquery in FROM that is a ${sub === undefined ? 'missing node' : nodeType(sub)}`);
    } else if ('RangeFunction' in item || 'RangeTableFunc' in item || 'JsonTable' in item) {
      // Functions, ROWS FROM, XMLTABLE and JSON_TABLE hold only expressions: a table can be read there only in a subquery.
      this.#subqueries([item], scope, nodeFields(item));
    } else this.#refuseShape(`a ${nodeType(item)} in FROM`);
  }

  /**
   * `t TABLESAMPLE method (args) [REPEATABLE (seed)]` reads the rows of t, so
   * it routes as t does. Each shard samples its own rows; with a method that
   * keeps each row (SYSTEM: each page) with the same probability, the shards'
   * samples together are a sample of the whole table. Other methods (for
   * example tsm_system_rows, which returns n rows) would return n rows per
   * shard: those may run on one shard only.
   */
  #tableSample(ts: RangeTableSample, scope: Scope, restricting: boolean): void {
    const rel = ts.relation;
    if (rel === undefined || !('RangeVar' in rel)) {
      this.#refuseShape(`TABLESAMPLE of a ${rel === undefined ? 'missing node' : nodeType(rel)}`);
      return;
    }
    this.#addRangeVar(rel.RangeVar, scope, restricting, false);
    const names = ts.method ?? [];
    const method = (stringOf(names[names.length - 1]) ?? '').toLowerCase();
    if (!DISTRIBUTIVE_SAMPLES.has(method)) this.#blockers.push(`TABLESAMPLE ${method.toUpperCase()} samples each shard by itself`);
    this.#subqueries([...(ts.args ?? []), ts.repeatable], scope);
  }

  #join(j: JoinExpr, scope: Scope, restricting: boolean, nullable: boolean): void {
    const type = j.jointype ?? 'JOIN_INNER';
    const leftNullable = nullable || type === 'JOIN_RIGHT' || type === 'JOIN_FULL';
    const rightNullable = nullable || type === 'JOIN_LEFT' || type === 'JOIN_FULL';
    const before = scope.occs.length;
    if (j.larg !== undefined) this.#fromItem(j.larg, scope, restricting, leftNullable);
    const middle = scope.occs.length;
    if (j.rarg !== undefined) this.#fromItem(j.rarg, scope, restricting, rightNullable);
    const left = scope.occs.slice(before, middle);
    const right = scope.occs.slice(middle);
    for (const u of j.usingClause ?? []) {
      const col = stringOf(u);
      for (const a of left) for (const b of right) if (a.rule?.key === col && b.rule?.key === col) this.#pairs.push([a, b]);
    }
    if (j.quals !== undefined) {
      this.#equalities(j.quals, scope);
      // ON conditions of an outer join do not filter the preserved side: only inner joins restrict.
      if (type === 'JOIN_INNER' && !nullable) this.#conditions(j.quals, scope);
      this.#subqueries([j.quals], scope);
    }
  }

  #where(where: Node | undefined, scope: Scope): void {
    if (where === undefined) return;
    this.#equalities(where, scope);
    this.#conditions(where, scope);
    this.#subqueries([where], scope);
  }

  #conditions(expr: Node, scope: Scope): void {
    for (const occ of scope.occs) {
      if (occ.placement !== 'sharded') continue;
      const c = this.#condFor(expr, occ, scope);
      if (c.kind !== 'any') occ.cond = andCond([occ.cond, c]);
    }
  }

  #condFor(expr: Node, occ: Occurrence, scope: Scope): KeyCond {
    if ('BoolExpr' in expr) {
      const args = expr.BoolExpr.args ?? [];
      if (expr.BoolExpr.boolop === 'AND_EXPR') return andCond(args.map((a) => this.#condFor(a, occ, scope)));
      if (expr.BoolExpr.boolop === 'OR_EXPR') return orCond(args.map((a) => this.#condFor(a, occ, scope)));
      return ANY;
    }
    if (!('A_Expr' in expr)) return ANY;
    const e: A_Expr = expr.A_Expr;
    const op = stringOf(e.name?.[0]);
    const l = e.lexpr;
    const r = e.rexpr;
    if (l === undefined || r === undefined) return ANY;
    switch (e.kind) {
      case 'AEXPR_OP': {
        if (op === null) return ANY;
        let flipped = false;
        let value = this.#refersTo(l, occ, scope) ? valueRef(r) : null;
        if (value === null && this.#refersTo(r, occ, scope)) {
          value = valueRef(l);
          flipped = true;
        }
        if (value === null) return ANY;
        const o = flipped ? FLIP[op] : op;
        if (o === '=') return { kind: 'in', values: [value] };
        const bound: BoundRef = { value, inclusive: o === '<=' || o === '>=' };
        if (o === '<' || o === '<=') return { kind: 'range', lo: null, hi: bound };
        if (o === '>' || o === '>=') return { kind: 'range', lo: bound, hi: null };
        return ANY;
      }
      case 'AEXPR_IN': {
        if (op !== '=' || !this.#refersTo(l, occ, scope) || !('List' in r)) return ANY;
        const values = (r.List.items ?? []).map(valueRef);
        return values.every((v) => v !== null) ? { kind: 'in', values: values as NonNullable<(typeof values)[number]>[] } : ANY;
      }
      case 'AEXPR_OP_ANY': {
        if (op !== '=' || !this.#refersTo(l, occ, scope)) return ANY;
        const v = valueRef(r);
        if (v !== null && v.kind === 'param') return { kind: 'array', index: v.index };
        const arr = 'A_ArrayExpr' in r ? (r.A_ArrayExpr.elements ?? []).map(valueRef) : null;
        return arr !== null && arr.every((x) => x !== null) ? { kind: 'in', values: arr as NonNullable<(typeof arr)[number]>[] } : ANY;
      }
      case 'AEXPR_BETWEEN': {
        if (!this.#refersTo(l, occ, scope) || !('List' in r)) return ANY;
        const [lo, hi] = (r.List.items ?? []).map(valueRef);
        if (lo === null || hi === null || lo === undefined || hi === undefined) return ANY;
        return { kind: 'range', lo: { value: lo, inclusive: true }, hi: { value: hi, inclusive: true } };
      }
      default:
        return ANY;
    }
  }

  /** True when `node` is a reference to `occ`'s sharding key as seen from `scope`. */
  #refersTo(node: Node, occ: Occurrence, scope: Scope): boolean {
    return this.#resolveKey(node, scope).includes(occ);
  }

  /** Sharded occurrences whose key `node` names (qualified names also look in outer scopes). */
  #resolveKey(node: Node, scope: Scope): Occurrence[] {
    if (!('ColumnRef' in node)) return [];
    const names = columnRefNames(node.ColumnRef);
    if (names === null || names.length === 0) return [];
    const col = names[names.length - 1] as string;
    if (names.length === 1) return scope.occs.filter((o) => o.rule?.key === col);
    const qualifier = names[names.length - 2] as string;
    for (let s: Scope | null = scope; s !== null; s = s.parent) {
      const found = s.occs.filter((o) => o.alias === qualifier);
      if (found.length > 0) return found.filter((o) => o.rule?.key === col);
    }
    return [];
  }

  #equalities(expr: Node, scope: Scope): void {
    if ('BoolExpr' in expr) {
      if (expr.BoolExpr.boolop === 'AND_EXPR') for (const a of expr.BoolExpr.args ?? []) this.#equalities(a, scope);
      return;
    }
    if (!('A_Expr' in expr) || expr.A_Expr.kind !== 'AEXPR_OP' || stringOf(expr.A_Expr.name?.[0]) !== '=') return;
    const { lexpr, rexpr } = expr.A_Expr;
    if (lexpr === undefined || rexpr === undefined) return;
    const left = this.#resolveKey(lexpr, scope);
    const right = this.#resolveKey(rexpr, scope);
    for (const a of left) for (const b of right) if (a !== b) this.#pairs.push([a, b]);
  }

  /**
   * Finds subqueries in expressions and analyzes them as nested queries. A
   * table reference outside a subquery (a FROM item where only an expression
   * is expected) is a shape the collector does not understand: the statement
   * is refused. `fromItem`: the fields of the one FROM item being searched.
   */
  #subqueries(nodes: readonly (Node | undefined)[], scope: Scope, fromItem: Record<string, unknown> | null = null): void {
    for (const n of nodes) {
      if (n === undefined) continue;
      walkTree(n, (type, value) => {
        if (FROM_ONLY_NODES.has(type) && value !== fromItem) {
          this.#refuseShape(`a ${type} inside an expression`);
          return false;
        }
        if (type !== 'SubLink') return true;
        const sub = (value as { subselect?: Node }).subselect;
        if (sub !== undefined) this.#nested(sub, scope, 'a subquery');
        const test = (value as { testexpr?: Node }).testexpr;
        if (test !== undefined) this.#subqueries([test], scope);
        return false;
      });
    }
  }
}

const FLIP: Record<string, string> = { '=': '=', '<': '>', '>': '<', '<=': '>=', '>=': '<=' };

function inCte(scope: Scope, name: string): boolean {
  for (let s: Scope | null = scope; s !== null; s = s.parent) if (s.ctes.has(name)) return true;
  return false;
}

/** Two rules place equal key values on the same shard. */
export function sameShape(a: TableRule | null, b: TableRule | null): boolean {
  if (a === null || b === null || a.kind !== b.kind) return false;
  if (a.kind === 'range' && b.kind === 'range') {
    return a.ranges.length === b.ranges.length && a.ranges.every((r, i) => r.shard === b.ranges[i]?.shard && String(r.below) === String(b.ranges[i]?.below));
  }
  return true;
}
