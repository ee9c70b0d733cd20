import type { InsertStmt, Node, SelectStmt, UpdateStmt } from 'libpg-query';
import { sgError } from '../errors/catalogue.js';
import { cloneTree, columnRefNames, isStarRef, walkTree } from '../sql/ast.js';
import { deparseNode } from '../sql/parser.js';
import { renumberParams } from '../sql/renumber-params.js';
import { isNonDistributive } from './aggregates.js';
import type { ValueRef } from './key-conditions.js';
import { valueRef } from './key-conditions.js';
import type { InsertSelectPlan, Plan, ShardsPlan } from './plan.js';
import { hasCombinedExpressions } from './plan.js';
import type { Occurrence, RelationFacts } from './relations.js';
import { sameShape } from './relations.js';
import type { Params, ShardSpace } from './routing.js';
import { requireKnownShape, routeRelations, RouteError, shardOfValue } from './routing.js';
import type { RouteContext, Router, StatementInfo } from './statement-info.js';
import { guard, PlanMemo, refusePlan } from './statement-info.js';

const KEY_HINT = 'List the sharding key column and give it a constant or parameter in every row.';
const SELECT_HINT = 'Insert the rows with VALUES, or select from a table sharded the same way by its key, or filter the SELECT to one shard.';

function unsupported(reason: string, hint: string): RouteError {
  return new RouteError(sgError('unsupportedCrossShard', { reason, hint }));
}

/** Plans a statement of its own: the SELECT of an INSERT … SELECT that moves rows, or the UPDATE/DELETE of a WITH that moves them. */
export type SourcePlanner = (stmt: Node) => Router;

/**
 * Builds the router of an INSERT. Rows of a VALUES list go to the shard of
 * their key; a multi-row INSERT whose rows land on several shards is split
 * into one statement per shard holding only its rows, with parameters
 * renumbered. An INSERT … SELECT runs on the shards that hold its rows when
 * each shard can copy its own rows, and otherwise becomes an
 * InsertSelectPlan (the engine reads the rows and inserts them where their
 * keys belong). Without a column list the key's position comes from
 * `RouteContext.columnsOf` at routing time. Returns a RefusePlan router for
 * shapes that cannot be routed.
 */
export function insertRouter(stmt: InsertStmt, facts: RelationFacts, info: StatementInfo, space: ShardSpace, planSource: SourcePlanner): Router {
  const target = facts.occurrences.find((o) => o.target) as Occurrence;
  const others: RelationFacts = { ...facts, occurrences: facts.occurrences.filter((o) => !o.target) };
  const memo = new PlanMemo(info, space);
  try {
    requireKnownShape(facts);
  } catch (e) {
    if (e instanceof RouteError) return fixed(e);
    throw e;
  }
  if (target.placement === 'broadcast') {
    const bad = others.occurrences.find((o) => o.placement !== 'broadcast');
    if (bad !== undefined) {
      return fixed(unsupported(`a broadcast table must get the same rows on every shard, but the statement reads ${bad.placement} table ${bad.table}`, 'Insert constant rows, or rows read from broadcast tables only.'));
    }
    return { route: () => memo.get('broadcast-write', space.all) };
  }
  if (target.placement !== 'sharded' || target.rule === null) return new RelationsOnly(facts, memo, space);
  const key = target.rule.key;
  if (stmt.cols === undefined || stmt.cols.length === 0) return new ImplicitColumnsRouter(stmt, target, others, memo, space, info.sql, planSource);
  const keyIndex = stmt.cols.findIndex((c) => 'ResTarget' in c && c.ResTarget.name === key);
  if (keyIndex === -1) return fixed(unsupported(`the sharding key must be given: column ${key} is not in the column list`, KEY_HINT));
  return keyedRouter(stmt, keyIndex, target, others, memo, space, info.sql, planSource);
}

/** The router of an INSERT into a sharded table once the key's position among the inserted values is known. */
function keyedRouter(
  stmt: InsertStmt,
  keyIndex: number,
  target: Occurrence,
  others: RelationFacts,
  memo: PlanMemo,
  space: ShardSpace,
  clientSql: string,
  planSource: SourcePlanner,
): Router {
  const key = target.rule?.key ?? '';
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
    return new ValuesRouter(stmt, rows, target, others, memo, space, clientSql);
  }
  return selectSourceRouter(src, keyIndex, target, others, memo, space, insertSelectRouter(stmt, src, keyIndex, target, planSource));
}

/**
 * INSERT without a column list into a sharded table: the values follow the
 * table's column order, which only the catalog knows. The caller supplies it
 * through `RouteContext.columnsOf`; without it the plan is a refusal naming
 * the table (`needsColumns`), so the caller can look the columns up and plan
 * again.
 */
class ImplicitColumnsRouter implements Router {
  /** Routers by the key's position (a table's column order rarely changes). */
  readonly #byKeyIndex = new Map<number, Router>();

  constructor(
    readonly stmt: InsertStmt,
    readonly target: Occurrence,
    readonly others: RelationFacts,
    readonly memo: PlanMemo,
    readonly space: ShardSpace,
    readonly clientSql: string,
    readonly planSource: SourcePlanner,
  ) {}

  route(params: Params, ctx?: RouteContext): Plan {
    const table = this.target.table;
    const key = this.target.rule?.key ?? '';
    const columns = ctx?.columnsOf?.(table);
    if (columns === undefined) {
      const error = sgError('unsupportedCrossShard', {
        reason: `INSERT into sharded table ${table} without a column list (the position of its sharding key ${key} is unknown)`,
        hint: 'List the columns: INSERT INTO t (col, …) VALUES (…).',
      });
      return { kind: 'refuse', error, needsColumns: table };
    }
    let keyIndex = columns.indexOf(key);
    if (keyIndex === -1) keyIndex = columns.findIndex((c) => c.toLowerCase() === key.toLowerCase());
    if (keyIndex === -1) return refusePlan(sgError('unsupportedCrossShard', { reason: `table ${table} has no column ${key}, its sharding key`, hint: 'Check the table rule in `tables:`.' }));
    let router = this.#byKeyIndex.get(keyIndex);
    if (router === undefined) {
      router = keyedRouter(this.stmt, keyIndex, this.target, this.others, this.memo, this.space, this.clientSql, this.planSource);
      this.#byKeyIndex.set(keyIndex, router);
    }
    return router.route(params, ctx);
  }
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

/**
 * INSERT … SELECT into a sharded table: allowed when the selected key is a
 * constant (every row goes to its shard and the SELECT must read that shard)
 * or the key of a source table sharded the same way (each shard copies its
 * own rows).
 */
function selectSourceRouter(src: SelectStmt, keyIndex: number, target: Occurrence, others: RelationFacts, memo: PlanMemo, space: ShardSpace, crossShard: Router): Router {
  const targets = (src.op ?? 'SETOP_NONE') === 'SETOP_NONE' ? (src.targetList ?? []) : [];
  const starAt = targets.findIndex((t) => 'ResTarget' in t && isStarRef(t.ResTarget.val));
  const keyTarget = targets[keyIndex];
  const keyExpr = starAt !== -1 && starAt <= keyIndex ? undefined : keyTarget !== undefined && 'ResTarget' in keyTarget ? keyTarget.ResTarget.val : undefined;
  if (keyExpr === undefined) return crossShard;
  const constant = valueRef(keyExpr);
  if (constant !== null) {
    return {
      route: (params, ctx) =>
        guard(() => {
          const text = constant.kind === 'literal' ? constant.text : params[constant.index];
          if (text === undefined || text === null) {
            throw new RouteError(sgError('invalidShardingKey', { table: target.table, column: target.rule?.key ?? '', reason: text === null ? 'the sharding key is NULL' : 'the key parameter has no usable text value' }));
          }
          const shard = shardOfValue(text, target, space);
          const r = routeOrNull(others, params, space);
          // The SELECT reads rows elsewhere (or cannot run as part of one shard's statement): move them.
          if (r === null || r.shards.length !== 1 || (r.shards[0] !== shard && others.occurrences.some((o) => o.placement !== 'broadcast'))) {
            return crossShard.route(params, ctx);
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
  if (source.length !== 1 || from === undefined || !sameShape(from.rule, target.rule) || !others.colocated) return crossShard;
  const distributive = !isNonDistributive(src);
  return {
    route: (params, ctx) =>
      guard(() => {
        const r = routeOrNull(others, params, space);
        // Aggregates, DISTINCT or LIMIT over several shards need the merged rows: move them.
        if (r === null || (r.shards.length > 1 && !distributive)) return crossShard.route(params, ctx);
        return memo.get(r.route, r.shards);
      }),
  };
}

/** routeRelations, or null when the tables cannot be routed as one statement. */
function routeOrNull(facts: RelationFacts, params: Params, space: ShardSpace): ReturnType<typeof routeRelations> | null {
  try {
    return routeRelations(facts, params, space);
  } catch (e) {
    if (e instanceof RouteError && e.error.code === '0A000') return null;
    throw e;
  }
}

const MOVE_HINT = 'Select from a table sharded the same way by its key so each shard copies its own rows, or filter the SELECT to one shard.';

/**
 * INSERT … SELECT whose rows must move between shards: an InsertSelectPlan
 * whose source is the SELECT planned as a statement of its own (with the
 * INSERT's WITH clause), built the first time it is needed.
 */
function insertSelectRouter(stmt: InsertStmt, src: SelectStmt, keyIndex: number, target: Occurrence, planSource: SourcePlanner): Router {
  if ((stmt.returningList?.length ?? 0) > 0) {
    return fixed(unsupported('RETURNING in an INSERT … SELECT that moves rows between shards', `Drop RETURNING and read the rows back with a SELECT. ${MOVE_HINT}`));
  }
  let refs = 0;
  walkTree(stmt.onConflictClause ?? {}, (type) => {
    if (type === 'ParamRef') refs++;
    return true;
  });
  if (refs > 0) return fixed(unsupported('parameters in the ON CONFLICT clause of an INSERT … SELECT that moves rows between shards', `Write the ON CONFLICT values as constants or EXCLUDED columns. ${MOVE_HINT}`));
  const select = cloneTree(src);
  if (stmt.withClause !== undefined) {
    let writes = false;
    walkTree(stmt.withClause, (type) => {
      if (type === 'InsertStmt' || type === 'UpdateStmt' || type === 'DeleteStmt' || type === 'MergeStmt') writes = true;
      return !writes;
    });
    if (writes) return movingWithRouter(stmt, src, keyIndex, target, planSource);
    if (select.withClause !== undefined) return fixed(unsupported('WITH clauses on both the INSERT and its SELECT, in an INSERT … SELECT that moves rows between shards', MOVE_HINT));
    select.withClause = cloneTree(stmt.withClause);
  }
  let source: Router | null = null;
  let template: { head: string; suffix: string } | null = null;
  return {
    route: (params, ctx) => {
      source ??= planSource({ SelectStmt: select });
      template ??= insertTemplate(stmt, keyIndex);
      const plan = source.route(params, ctx);
      // A gathered SELECT's plan is that SELECT over copies: run as the INSERT it would return rows and insert nothing.
      if (plan.kind === 'gather') return refusePlan(plan.refusal);
      if (plan.kind !== 'shards') return plan;
      // The rows are merged as a stream, which never evaluates expressions over aggregates (they need the final step).
      if (plan.merge !== null && hasCombinedExpressions(plan.merge)) {
        return refusePlan(unsupported('an INSERT … SELECT that moves rows computed by expressions over aggregates across shards', `Insert the aggregates themselves and compute the expression afterwards. ${MOVE_HINT}`).error);
      }
      return moveRowsPlan(stmt, target, plan, keyIndex, template);
    },
  };
}

function moveRowsPlan(stmt: InsertStmt, target: Occurrence, source: ShardsPlan, keyIndex: number, template: { head: string; suffix: string }): InsertSelectPlan {
  return {
    kind: 'insertSelect',
    table: target.table,
    source,
    columns: (stmt.cols ?? []).map((c) => ('ResTarget' in c ? (c.ResTarget.name ?? '') : '')),
    keyIndex,
    insertSql: template.head,
    insertSuffix: template.suffix,
  };
}

const MOVE_WITH_HINT =
  'Move rows with one data-modifying WITH query: WITH m AS (DELETE FROM a … RETURNING …) INSERT INTO b (…) SELECT … FROM m (or UPDATE … RETURNING), the SELECT taking columns of m row by row (no aggregates, DISTINCT, ORDER BY, LIMIT or subqueries).';

/**
 * `WITH m AS (DELETE|UPDATE … RETURNING …) INSERT INTO t … SELECT … FROM m`
 * into a sharded table: the rows the write takes are moved. The source is the
 * same WITH and SELECT run as one statement on each shard the write routes
 * to (each returns the rows it deleted or updated there, passed row by row
 * through the SELECT, so their concatenation is the one server's rows), and
 * the engine inserts them where their keys belong (InsertSelectPlan with a
 * source that writes). Other shapes of a WITH that writes are refused.
 */
function movingWithRouter(stmt: InsertStmt, src: SelectStmt, keyIndex: number, target: Occurrence, planSource: SourcePlanner): Router {
  const w = stmt.withClause;
  const ctes = w?.ctes ?? [];
  const cte = ctes.length === 1 && ctes[0] !== undefined && 'CommonTableExpr' in ctes[0] ? ctes[0].CommonTableExpr : null;
  const q = cte?.ctequery;
  const dml = q !== undefined && ('DeleteStmt' in q || 'UpdateStmt' in q) ? q : null;
  const dmlStmt = dml === null ? null : 'DeleteStmt' in dml ? dml.DeleteStmt : (dml as { UpdateStmt: UpdateStmt }).UpdateStmt;
  const from = src.fromClause ?? [];
  const only = from.length === 1 && from[0] !== undefined && 'RangeVar' in from[0] ? from[0].RangeVar : null;
  let sublinks = false;
  walkTree([src.targetList, src.whereClause], (type) => {
    if (type === 'SubLink') sublinks = true;
    return !sublinks;
  });
  const rowByRow =
    only !== null &&
    only.schemaname === undefined &&
    only.relname === cte?.ctename &&
    !isNonDistributive(src) &&
    (src.sortClause?.length ?? 0) === 0 &&
    (src.lockingClause?.length ?? 0) === 0 &&
    src.valuesLists === undefined &&
    src.withClause === undefined &&
    !sublinks;
  if (w?.recursive === true || dml === null || dmlStmt === null || dmlStmt.withClause !== undefined || (dmlStmt.returningList?.length ?? 0) === 0 || !rowByRow) {
    return fixed(unsupported('a WITH clause that writes, in an INSERT … SELECT that moves rows between shards, other than one DELETE or UPDATE … RETURNING whose rows the SELECT passes on', MOVE_WITH_HINT));
  }
  const select: SelectStmt = { ...cloneTree(src), withClause: cloneTree(w) };
  let write: Router | null = null;
  let template: { head: string; suffix: string } | null = null;
  let sourceSql: string | null = null;
  return {
    route: (params, ctx) =>
      guard(() => {
        write ??= planSource(dml);
        template ??= insertTemplate(stmt, keyIndex);
        sourceSql ??= deparseNode({ SelectStmt: select });
        const plan = write.route(params, ctx);
        if (plan.kind === 'refuse') return plan;
        if (plan.kind !== 'shards' || plan.route === 'broadcast-write' || plan.statements.some((s) => s.paramMap !== null)) {
          const what = plan.kind === 'shards' && plan.route === 'broadcast-write' ? 'its write changes a broadcast table, whose rows every shard would return' : 'its write cannot run as one statement on each of its shards';
          throw unsupported(`the WITH query of an INSERT that moves rows: ${what}`, MOVE_WITH_HINT);
        }
        const sql = sourceSql;
        const source: ShardsPlan = { ...plan, command: 'SELECT', statements: plan.statements.map((s) => ({ shard: s.shard, sql, paramMap: null })), merge: null };
        return moveRowsPlan(stmt, target, source, keyIndex, template);
      }),
  };
}

/**
 * The text around the VALUES rows of the INSERTs that place moved rows:
 * `INSERT INTO t (a, b) VALUES ` and the ON CONFLICT clause after the rows.
 * Both come from the deparser, so quoting is PostgreSQL's.
 */
function insertTemplate(stmt: InsertStmt, keyIndex: number): { head: string; suffix: string } {
  const width = Math.max(stmt.cols?.length ?? 0, keyIndex + 1);
  const row: Node = { List: { items: Array.from({ length: width }, (_, i) => ({ ParamRef: { number: i + 1 } })) } };
  const bare: InsertStmt = { ...cloneTree(stmt), selectStmt: { SelectStmt: { valuesLists: [row], op: 'SETOP_NONE' } } as Node };
  delete bare.withClause;
  delete bare.returningList;
  delete bare.onConflictClause;
  const plain = deparseNode({ InsertStmt: bare });
  const at = plain.lastIndexOf('VALUES');
  const head = `${plain.slice(0, at)}VALUES `;
  if (stmt.onConflictClause === undefined) return { head, suffix: '' };
  const full = deparseNode({ InsertStmt: { ...bare, onConflictClause: cloneTree(stmt.onConflictClause) } });
  const suffix = full.startsWith(plain) ? full.slice(plain.length) : null;
  if (suffix === null) throw new RouteError(sgError('internal', { reason: 'cannot build the INSERT of an INSERT … SELECT that moves rows' }));
  return { head, suffix };
}
