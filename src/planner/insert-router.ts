import type { InsertStmt, Node, SelectStmt } from 'libpg-query';
import { sgError } from '../errors/catalogue.js';
import { cloneTree, columnRefNames, isStarRef, walkTree } from '../sql/ast.js';
import { deparseNode } from '../sql/parser.js';
import { isNonDistributive } from './aggregates.js';
import type { ValueRef } from './key-conditions.js';
import { valueRef } from './key-conditions.js';
import type { Plan } from './plan.js';
import type { Occurrence, RelationFacts } from './relations.js';
import { sameShape } from './relations.js';
import type { Params, ShardSpace } from './routing.js';
import { routeRelations, RouteError, shardOfValue } from './routing.js';
import type { Router, StatementInfo } from './statement-info.js';
import { guard, PlanMemo, refusePlan } from './statement-info.js';

const KEY_HINT = 'List the sharding key column and give it a constant or parameter in every row.';
const SELECT_HINT = 'Insert the rows with VALUES, or select from a table sharded the same way by its key, or filter the SELECT to one shard.';

function unsupported(reason: string, hint: string): RouteError {
  return new RouteError(sgError('unsupportedCrossShard', { reason, hint }));
}

/**
 * Builds the router of an INSERT. Rows of a VALUES list go to the shard of
 * their key; a multi-row INSERT whose rows land on several shards is split
 * into one statement per shard holding only its rows, with parameters
 * renumbered. Returns a RefusePlan router for shapes that cannot be routed.
 */
export function insertRouter(stmt: InsertStmt, facts: RelationFacts, info: StatementInfo, space: ShardSpace): Router {
  const target = facts.occurrences.find((o) => o.target) as Occurrence;
  const others: RelationFacts = { ...facts, occurrences: facts.occurrences.filter((o) => !o.target) };
  const memo = new PlanMemo(info, space);
  if (target.placement === 'broadcast') {
    const bad = others.occurrences.find((o) => o.placement !== 'broadcast');
    if (bad !== undefined) {
      return fixed(unsupported(`a broadcast table must get the same rows on every shard, but the statement reads ${bad.placement} table ${bad.table}`, 'Insert constant rows, or rows read from broadcast tables only.'));
    }
    return { route: () => memo.get('broadcast-write', space.all) };
  }
  if (target.placement !== 'sharded' || target.rule === null) return new RelationsOnly(facts, memo, space);
  const key = target.rule.key;
  if (stmt.cols === undefined || stmt.cols.length === 0) {
    return fixed(unsupported(`INSERT into sharded table ${target.table} without a column list (the position of its sharding key ${key} is unknown)`, 'List the columns: INSERT INTO t (col, …) VALUES (…).'));
  }
  const keyIndex = stmt.cols.findIndex((c) => 'ResTarget' in c && c.ResTarget.name === key);
  if (keyIndex === -1) return fixed(unsupported(`the sharding key must be given: column ${key} is not in the column list`, KEY_HINT));
  const conflict = stmt.onConflictClause;
  if (conflict?.targetList?.some((t) => 'ResTarget' in t && t.ResTarget.name === key)) {
    return fixed(unsupported("changing a row's sharding key would move it to another shard", 'Delete the row and insert it again with the new key.'));
  }
  const src = stmt.selectStmt !== undefined && 'SelectStmt' in stmt.selectStmt ? stmt.selectStmt.SelectStmt : null;
  if (src === null) return fixed(unsupported('the sharding key must be given (INSERT … DEFAULT VALUES)', KEY_HINT));
  if ((src.valuesLists?.length ?? 0) > 0 && src.fromClause === undefined) {
    const rows: ValueRef[] = [];
    for (const row of src.valuesLists ?? []) {
      const items = 'List' in row ? (row.List.items ?? []) : [];
      const item = items[keyIndex];
      const v = item === undefined || 'SetToDefault' in item ? null : valueRef(item);
      if (v === null) {
        const what = item === undefined || 'SetToDefault' in item ? 'the sharding key must be given (DEFAULT cannot be routed)' : `the sharding key ${key} must be a constant or a parameter in every row`;
        return fixed(unsupported(what, KEY_HINT));
      }
      rows.push(v);
    }
    return new ValuesRouter(stmt, rows, target, others, memo, space, info.sql);
  }
  return selectSourceRouter(src, keyIndex, target, others, memo, space);
}

function fixed(e: RouteError): Router {
  const plan = refusePlan(e.error);
  return { route: () => plan };
}

/** Routed by its tables alone (INSERT into an unlisted table: the default shard). */
class RelationsOnly implements Router {
  constructor(
    readonly facts: RelationFacts,
    readonly memo: PlanMemo,
    readonly space: ShardSpace,
  ) {}

  route(params: Params): Plan {
    return guard(() => {
      const r = routeRelations(this.facts, params, this.space);
      return this.memo.get(r.route, r.shards);
    });
  }
}

class ValuesRouter implements Router {
  readonly #stmt: InsertStmt;
  readonly #rows: readonly ValueRef[];
  readonly #target: Occurrence;
  readonly #others: RelationFacts;
  readonly #memo: PlanMemo;
  readonly #space: ShardSpace;
  readonly #clientSql: string;
  /** Per-shard SQL for each distinct way the rows were split. */
  readonly #splits = new Map<string, Map<number, { sql: string; paramMap: readonly number[] }>>();

  constructor(stmt: InsertStmt, rows: readonly ValueRef[], target: Occurrence, others: RelationFacts, memo: PlanMemo, space: ShardSpace, clientSql: string) {
    this.#stmt = stmt;
    this.#rows = rows;
    this.#target = target;
    this.#others = others;
    this.#memo = memo;
    this.#space = space;
    this.#clientSql = clientSql;
  }

  route(params: Params): Plan {
    return guard(() => {
      const rowShards = this.#rows.map((v) => {
        const text = v.kind === 'literal' ? v.text : params[v.index];
        if (text === undefined) {
          throw new RouteError(sgError('invalidShardingKey', { table: this.#target.table, column: this.#target.rule?.key ?? '', reason: `parameter $${(v as { index: number }).index + 1} has no usable text value` }));
        }
        if (text === null) {
          throw new RouteError(sgError('invalidShardingKey', { table: this.#target.table, column: this.#target.rule?.key ?? '', reason: 'the sharding key is NULL' }));
        }
        return shardOfValue(text, this.#target, this.#space);
      });
      const shards = [...new Set(rowShards)].sort((a, b) => a - b);
      if (this.#others.occurrences.length > 0) {
        const r = routeRelations(this.#others, params, this.#space);
        if (r.shards.length !== 1 || shards.length !== 1 || r.shards[0] !== shards[0]) {
          throw unsupported('the INSERT reads other tables that are not on the shard its rows go to', SELECT_HINT);
        }
      }
      if (shards.length === 1) return this.#memo.get('single', shards);
      const key = rowShards.join(',');
      let split = this.#splits.get(key);
      if (split === undefined) {
        split = this.#split(rowShards, shards);
        if (this.#splits.size >= 64) this.#splits.clear();
        this.#splits.set(key, split);
      }
      const perShard = split;
      return this.#memo.get(shards.length === this.#space.count ? 'all' : 'multi', shards, null, (i) => perShard.get(i) ?? { sql: this.#clientSql, paramMap: null }, key);
    });
  }

  #split(rowShards: readonly number[], shards: readonly number[]): Map<number, { sql: string; paramMap: readonly number[] }> {
    const out = new Map<number, { sql: string; paramMap: readonly number[] }>();
    for (const shard of shards) {
      const copy = cloneTree(this.#stmt);
      const sel = (copy.selectStmt as { SelectStmt: SelectStmt }).SelectStmt;
      sel.valuesLists = (sel.valuesLists ?? []).filter((_, i) => rowShards[i] === shard);
      out.set(shard, renumberParams({ InsertStmt: copy }));
    }
    return out;
  }
}

/** Renumbers the parameters a statement uses to $1..$k, in order of their original numbers. */
function renumberParams(node: Node): { sql: string; paramMap: readonly number[] } {
  const refs: { number?: number }[] = [];
  walkTree(node, (type, value) => {
    if (type === 'ParamRef') refs.push(value as { number?: number });
    return true;
  });
  const used = [...new Set(refs.map((r) => r.number ?? 1))].sort((a, b) => a - b);
  const renumber = new Map(used.map((n, i) => [n, i + 1]));
  for (const r of refs) r.number = renumber.get(r.number ?? 1) ?? 1;
  return { sql: deparseNode(node), paramMap: used.map((n) => n - 1) };
}

/**
 * INSERT … SELECT into a sharded table: allowed when the selected key is a
 * constant (every row goes to its shard and the SELECT must read that shard)
 * or the key of a source table sharded the same way (each shard copies its
 * own rows).
 */
function selectSourceRouter(src: SelectStmt, keyIndex: number, target: Occurrence, others: RelationFacts, memo: PlanMemo, space: ShardSpace): Router {
  const targets = (src.op ?? 'SETOP_NONE') === 'SETOP_NONE' ? (src.targetList ?? []) : [];
  const starAt = targets.findIndex((t) => 'ResTarget' in t && isStarRef(t.ResTarget.val));
  const keyTarget = targets[keyIndex];
  const keyExpr = starAt !== -1 && starAt <= keyIndex ? undefined : keyTarget !== undefined && 'ResTarget' in keyTarget ? keyTarget.ResTarget.val : undefined;
  if (keyExpr === undefined) return fixed(unsupported('INSERT … SELECT across shards (the selected sharding key cannot be located)', SELECT_HINT));
  const constant = valueRef(keyExpr);
  if (constant !== null) {
    return {
      route: (params) =>
        guard(() => {
          const text = constant.kind === 'literal' ? constant.text : params[constant.index];
          if (text === undefined || text === null) {
            throw new RouteError(sgError('invalidShardingKey', { table: target.table, column: target.rule?.key ?? '', reason: text === null ? 'the sharding key is NULL' : 'the key parameter has no usable text value' }));
          }
          const shard = shardOfValue(text, target, space);
          const r = routeRelations(others, params, space);
          if (r.shards.length !== 1 || (r.shards[0] !== shard && others.occurrences.some((o) => o.placement !== 'broadcast'))) {
            throw unsupported('INSERT … SELECT across shards', SELECT_HINT);
          }
          return memo.get('single', [shard]);
        }),
    };
  }
  const names = 'ColumnRef' in keyExpr ? columnRefNames(keyExpr.ColumnRef) : null;
  const source =
    names === null
      ? []
      : others.occurrences.filter(
          (o) => o.placement === 'sharded' && o.restricting && o.rule?.key === names[names.length - 1] && (names.length === 1 || o.alias === names[names.length - 2]),
        );
  const from = source[0];
  if (source.length !== 1 || from === undefined || !sameShape(from.rule, target.rule) || !others.colocated) {
    return fixed(unsupported('INSERT … SELECT across shards', SELECT_HINT));
  }
  const distributive = !isNonDistributive(src);
  return {
    route: (params) =>
      guard(() => {
        const r = routeRelations(others, params, space);
        if (r.shards.length > 1 && !distributive) throw unsupported('INSERT … SELECT with aggregates, DISTINCT or LIMIT across shards', SELECT_HINT);
        return memo.get(r.route, r.shards);
      }),
  };
}
