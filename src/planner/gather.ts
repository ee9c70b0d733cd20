import type { Node, RangeVar, SelectStmt } from 'libpg-query';
import type { TableName } from '../config/names.js';
import type { PgError } from '../errors/pg-error.js';
import { cloneTree, columnRefNames, findRangeVars, funcName, isStarRef, quoteIdent, stringOf, walkTree } from '../sql/ast.js';
import { deparseNode } from '../sql/parser.js';
import type { Alias, ColumnRef, FuncCall, JoinExpr, SubLink } from 'libpg-query';
import type { GatherFilter, GatherPlan, GatherTable } from './plan.js';
import type { RelationFacts } from './relations.js';
import type { ShardSpace } from './routing.js';

/**
 * Functions whose result depends only on their arguments (and the session
 * settings the compute connection shares with the client), so evaluating
 * them over the copies gives what one server gives. Anything else —
 * random(), nextval(), now() and the other transaction-time functions,
 * user-defined functions that might read tables — keeps the statement
 * refused.
 */
const DETERMINISTIC_FUNCTIONS = new Set([
  // aggregates
  'count', 'sum', 'min', 'max', 'avg', 'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'string_agg', 'array_agg', 'json_agg', 'jsonb_agg',
  'json_object_agg', 'jsonb_object_agg', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp', 'corr', 'covar_pop', 'covar_samp',
  'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx', 'regr_sxy', 'regr_syy', 'percentile_cont',
  'percentile_disc', 'mode', 'grouping',
  // window functions
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead', 'first_value', 'last_value', 'nth_value',
  // scalar
  'abs', 'round', 'trunc', 'ceil', 'ceiling', 'floor', 'mod', 'power', 'sqrt', 'sign', 'div', 'exp', 'ln', 'log', 'greatest', 'least',
  'lower', 'upper', 'length', 'char_length', 'octet_length', 'substr', 'substring', 'concat', 'concat_ws', 'left', 'right', 'replace',
  'btrim', 'ltrim', 'rtrim', 'trim', 'lpad', 'rpad', 'position', 'strpos', 'split_part', 'starts_with', 'initcap', 'reverse', 'md5',
  'date_trunc', 'date_part', 'extract', 'to_char', 'age', 'make_date', 'coalesce', 'nullif', 'array_length', 'cardinality', 'unnest',
  'generate_series', 'jsonb_build_object', 'json_build_object', 'to_json', 'to_jsonb', 'array_to_string', 'format',
]);

/** Nodes a gathered statement may not contain: they lock, write, sample at random, or read the transaction's time. */
const REFUSED_NODES: Readonly<Record<string, string>> = {
  LockingClause: 'FOR UPDATE/SHARE',
  IntoClause: 'SELECT INTO',
  SQLValueFunction: 'CURRENT_DATE, CURRENT_TIMESTAMP, CURRENT_USER and the like',
  RangeTableSample: 'TABLESAMPLE',
  RangeTableFunc: 'XMLTABLE',
  JsonTable: 'JSON_TABLE',
  InsertStmt: 'a data-modifying WITH',
  UpdateStmt: 'a data-modifying WITH',
  DeleteStmt: 'a data-modifying WITH',
  MergeStmt: 'a data-modifying WITH',
};

/**
 * A GatherPlan for a read-only SELECT over sharded, broadcast and unlisted
 * (default-shard) tables, or null when gathering it is not known to be exact
 * (the caller keeps its refusal): a catalog table, a lock, a
 * write, a function outside DETERMINISTIC_FUNCTIONS, a CTE named like a
 * table, two schemas' tables of one name. Pure: no I/O; that every name is
 * a plain table (not a view whose rows would come from one shard) is
 * checked by the engine on the shards.
 */
export function planGather(stmt: SelectStmt, facts: RelationFacts, space: ShardSpace, refusal: PgError): GatherPlan | null {
  if (facts.unsupported !== null || facts.writesInCte) return null;
  if (facts.occurrences.length === 0 || facts.occurrences.some((o) => o.placement === 'catalog')) return null;
  const names = new Set<string>(facts.occurrences.map((o) => o.table));
  let safe = true;
  walkTree(stmt, (type, value) => {
    if (type in REFUSED_NODES) safe = false;
    if (type === 'FuncCall') {
      const fc = value as FuncCall;
      const schema = fc.funcname !== undefined && fc.funcname.length > 1 ? stringOf(fc.funcname[0]) : 'pg_catalog';
      if (schema !== 'pg_catalog' || !DETERMINISTIC_FUNCTIONS.has(funcName(fc))) safe = false;
    }
    if (type === 'CommonTableExpr' && names.has(String((value as { ctename?: string }).ctename ?? ''))) safe = false;
  });
  if (!safe) return null;
  const columns = referencedColumns(stmt);
  if (columns === 'system') return null;
  const tree = cloneTree(stmt);
  const sources = new Map<string, RangeVar>();
  let conflict = false;
  walkTree(tree, (type, value) => {
    if (type !== 'RangeVar') return;
    const rv = value as RangeVar;
    const name = rv.relname ?? '';
    if (!names.has(name)) return;
    const seen = sources.get(name);
    if (seen !== undefined && seen.schemaname !== rv.schemaname) conflict = true;
    if (seen === undefined) sources.set(name, { ...rv });
    rv.schemaname = 'pg_temp';
  });
  if (conflict || sources.size !== names.size) return null;
  const tables: GatherTable[] = [...sources.entries()].map(([name, rv]) => {
    const occ = facts.occurrences.find((o) => o.table === name)!;
    const source = `${rv.schemaname !== undefined ? `${quoteIdent(rv.schemaname)}.` : ''}${quoteIdent(name)}`;
    const copy = `pg_temp.${quoteIdent(name)}`;
    return {
      table: name as TableName,
      source,
      shards: occ.placement === 'sharded' ? [...space.names] : [space.names[space.defaultIndex]!],
      copyOut: `COPY (SELECT * FROM ${source}) TO STDOUT`,
      create: `CREATE TEMP TABLE ${copy} (LIKE ${source}) ON COMMIT DROP`,
      copyIn: `COPY ${copy} FROM STDIN`,
      analyze: `ANALYZE ${copy}`,
      columns,
      ...(pushableFilters(stmt, name) ?? { refName: name, filters: [] }),
    };
  });
  return { kind: 'gather', refusal, tables, finalSql: deparseNode({ SelectStmt: tree } as Node) };
}

/** System columns: a copy has its own (ctid, xmin, tableoid …), so a statement naming one is not gathered. */
const SYSTEM_COLUMNS = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid', 'oid']);

/**
 * Every name a column reference of the statement may resolve to (each
 * field of every ColumnRef, every JOIN … USING column), so that copying
 * only the tables' columns of these names changes no name resolution: a
 * name resolves in a scope to a table's column exactly when that table has
 * it, and each table keeps every column of every name here. Null (copy all
 * columns) when the statement may see columns it does not name: `*` or
 * `t.*` (except as the select list of a plain `EXISTS` subquery, whose rows
 * count but whose columns are never read), a NATURAL join, a whole-row
 * reference (a bare name that is the name of a table in scope, see
 * wholeRowReferences), or an alias column list on a table or a join (which
 * renames columns by position). 'system' for a reference to a system column.
 */
function referencedColumns(stmt: SelectStmt): readonly string[] | null | 'system' {
  const names = new Set<string>();
  const unread = new Set<unknown>();
  let all = false;
  walkTree(stmt, (type, value) => {
    if (type === 'SubLink') {
      const link = value as SubLink;
      const sub = link.subselect !== undefined && 'SelectStmt' in link.subselect ? link.subselect.SelectStmt : undefined;
      // EXISTS reads whether a row comes out, not its columns. GROUP BY or a set operation would check the star's
      // columns, and DISTINCT with OFFSET would count rows made of them.
      const plain = sub !== undefined && sub.op === 'SETOP_NONE' && [sub.groupClause, sub.havingClause, sub.distinctClause, sub.limitOffset].every((c) => c === undefined);
      if (link.subLinkType === 'EXISTS_SUBLINK' && plain) {
        for (const t of sub.targetList ?? []) {
          const val = 'ResTarget' in t ? t.ResTarget.val : undefined;
          if (val !== undefined && 'ColumnRef' in val && isStarRef(val)) unread.add(val.ColumnRef);
        }
      }
    }
    if (type === 'ColumnRef') {
      if (unread.has(value)) return false;
      const fields = columnRefNames(value as ColumnRef);
      if (fields === null) all = true;
      for (const f of fields ?? []) names.add(f);
    }
    if (type === 'A_Star' || type === 'RangeTableFunc') all = true;
    if (type === 'RangeVar' || type === 'JoinExpr') {
      if (((value as { alias?: Alias }).alias?.colnames?.length ?? 0) > 0) all = true;
    }
    if (type === 'JoinExpr') {
      const join = value as JoinExpr;
      if (join.isNatural === true) all = true;
      for (const u of join.usingClause ?? []) {
        const s = stringOf(u);
        if (s === null) all = true;
        else names.add(s);
      }
    }
    return undefined;
  });
  if ([...names].some((n) => SYSTEM_COLUMNS.has(n))) return 'system';
  return all || wholeRowReferences({ SelectStmt: stmt }, new Set()) ? null : [...names].sort();
}

/**
 * True when a bare name (a one-field ColumnRef) may be a whole-row
 * reference to a table: `SELECT t FROM t`, `count(t)`, `row_to_json(x)` for
 * `FROM t AS x`. Each SELECT sees the tables of its own FROM (by alias, or
 * by name when unaliased) and those of the SELECTs around it; the walk
 * lends every node below a SELECT — its FROM subqueries and LATERAL items
 * included — that whole set, a superset of what PostgreSQL lets them see,
 * so it may copy all columns where pruning was safe, never the reverse.
 */
function wholeRowReferences(node: unknown, visible: ReadonlySet<string>): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some((n) => wholeRowReferences(n, visible));
  const obj = node as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    const child = obj[key];
    if (key === 'ColumnRef') {
      const fields = columnRefNames(child as ColumnRef);
      if (fields !== null && fields.length === 1 && visible.has(fields[0]!)) return true;
      continue;
    }
    if (key === 'SelectStmt') {
      const sel = child as SelectStmt;
      const inner = new Set(visible);
      for (const item of sel.fromClause ?? []) fromNames(item, inner);
      if (wholeRowReferences(child, inner)) return true;
      continue;
    }
    if (wholeRowReferences(child, visible)) return true;
  }
  return false;
}

/** Adds the names by which the tables of a FROM item (and the joins in it) can be referred to. */
function fromNames(item: Node, out: Set<string>): void {
  if ('RangeVar' in item) out.add(item.RangeVar.alias?.aliasname ?? item.RangeVar.relname ?? '');
  if ('JoinExpr' in item) {
    const join = item.JoinExpr;
    if (join.alias?.aliasname !== undefined) out.add(join.alias.aliasname);
    if (join.larg !== undefined) fromNames(join.larg, out);
    if (join.rarg !== undefined) fromNames(join.rarg, out);
  }
}

/**
 * The statements that copy only `kept` (the table's columns, in catalog
 * order, whose names the statement references; never empty) of the rows of
 * a gathered table that meet `filters` (those of `table.filters` whose
 * columns are all the table's): the copy has exactly those columns, with
 * their types, typmods and collations (CREATE TABLE AS derives them from
 * the table's own columns). The table is read under the statement's own
 * reference name, so the filters' qualified columns mean what they meant.
 */
export function prunedCopy(table: GatherTable, kept: readonly string[], filters: readonly GatherFilter[]): Pick<GatherTable, 'create' | 'copyOut' | 'copyIn'> {
  const list = kept.map(quoteIdent).join(', ');
  const copy = `pg_temp.${quoteIdent(table.table)}`;
  const where = filters.length === 0 ? '' : ` WHERE ${filters.map((f) => `(${f.sql})`).join(' AND ')}`;
  return {
    create: `CREATE TEMP TABLE ${copy} ON COMMIT DROP AS SELECT ${list} FROM ${table.source} WITH NO DATA`,
    copyOut: `COPY (SELECT ${list} FROM ${table.source} AS ${quoteIdent(table.refName)}${where}) TO STDOUT`,
    copyIn: `COPY ${copy} (${list}) FROM STDIN`,
  };
}

/**
 * An index on the copy over `columns` (the table's primary key on the
 * shard, when the copy kept all of its columns), so the statement over the
 * copies can be planned as over the table (TPC-H Q20's correlated subquery
 * runs per matching partsupp row instead of per row). Not unique: a key
 * without the sharding key is unique on each shard only.
 */
export function copyIndex(table: GatherTable, columns: readonly string[]): string {
  return `CREATE INDEX ON pg_temp.${quoteIdent(table.table)} (${columns.map(quoteIdent).join(', ')})`;
}

/** Operators a pushed-down filter may use: built-in comparisons, arithmetic and LIKE (a user-defined operator might read tables). */
const FILTER_OPERATORS = new Set(['=', '<>', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/', '%', '~~', '!~~', '~~*', '!~~*']);
const FILTER_EXPR_KINDS = new Set(['AEXPR_OP', 'AEXPR_IN', 'AEXPR_LIKE', 'AEXPR_ILIKE', 'AEXPR_BETWEEN', 'AEXPR_NOT_BETWEEN']);
/** Built-in types a pushed-down filter may cast to (a cast to a user-defined type might run a user function). */
const FILTER_CAST_TYPES = new Set([
  'date', 'interval', 'int2', 'int4', 'int8', 'integer', 'int', 'bigint', 'smallint', 'numeric', 'decimal', 'float4', 'float8', 'text', 'varchar',
  'bpchar', 'char', 'timestamp', 'timestamptz', 'time', 'bool', 'boolean',
]);
const FILTER_NODES = new Set(['A_Expr', 'BoolExpr', 'ColumnRef', 'A_Const', 'TypeCast', 'NullTest', 'BooleanTest', 'String', 'Integer', 'Float', 'List']);

/**
 * Conditions that every row of `table` must meet to count in the statement's
 * answer, to be applied while copying it: the conjuncts of the WHERE clause
 * of the one SELECT whose FROM holds the table's only reference (directly
 * or through inner joins only — a row of the nullable side of an outer join
 * may count NULL-extended), each made only of columns (unqualified, or
 * qualified by the table's own reference name), constants, built-in
 * operators and casts to built-in types. A row that fails one of them
 * cannot contribute to that SELECT's rows, and nothing else reads the
 * table, so the answer is unchanged. Each comes with the column names it
 * reads: the engine applies it only when all are columns of the table (then
 * they resolve to it in that SELECT).
 */
function pushableFilters(stmt: SelectStmt, name: string): { refName: string; filters: GatherFilter[] } | null {
  const refs = findRangeVars(stmt).filter((rv) => rv.relname === name);
  if (refs.length !== 1) return null;
  const target = refs[0]!;
  let found: { sel: SelectStmt } | null = null;
  walkTree({ SelectStmt: stmt }, (type, value) => {
    if (type !== 'SelectStmt' || found !== null) return;
    const sel = value as SelectStmt;
    if ((sel.fromClause ?? []).some((item) => innerlyHolds(item, target))) found = { sel };
  });
  if (found === null) return null;
  const sel = (found as { sel: SelectStmt }).sel;
  const refName = target.alias?.aliasname ?? name;
  const filters: GatherFilter[] = [];
  for (const conj of conjuncts(sel.whereClause)) {
    const names = new Set<string>();
    let ok = true;
    walkTree(conj, (type, value) => {
      if (!FILTER_NODES.has(type)) ok = false;
      if (type === 'A_Expr') {
        const e = value as { kind?: string; name?: Node[] };
        const op = e.name !== undefined && e.name.length === 1 ? stringOf(e.name[0]) : null;
        if (!FILTER_EXPR_KINDS.has(e.kind ?? '') || op === null || !FILTER_OPERATORS.has(op)) ok = false;
      }
      if (type === 'TypeCast') {
        // The type name is a plain field of the cast, not a node of its own.
        const parts = ((value as { typeName?: { names?: Node[] } }).typeName?.names ?? []).map(stringOf);
        const last = parts[parts.length - 1];
        if (last === null || last === undefined || !FILTER_CAST_TYPES.has(last) || (parts.length > 1 && parts[0] !== 'pg_catalog')) ok = false;
      }
      if (type === 'ColumnRef') {
        const fields = columnRefNames(value as ColumnRef);
        if (fields === null || fields.length > 2 || (fields.length === 2 && fields[0] !== refName)) ok = false;
        else names.add(fields[fields.length - 1]!);
        return false;
      }
      return undefined;
    });
    if (ok && names.size > 0) filters.push({ sql: deparseNode(conj), columns: [...names].sort() });
  }
  return { refName, filters };
}

/** True when `item` is `target` or holds it through inner joins only. */
function innerlyHolds(item: Node, target: RangeVar): boolean {
  if ('RangeVar' in item) return item.RangeVar === target;
  if ('JoinExpr' in item) {
    const j = item.JoinExpr;
    if (j.jointype !== 'JOIN_INNER') return false;
    return (j.larg !== undefined && innerlyHolds(j.larg, target)) || (j.rarg !== undefined && innerlyHolds(j.rarg, target));
  }
  return false;
}

/** The AND-ed parts of a condition. */
function conjuncts(where: Node | undefined): Node[] {
  if (where === undefined) return [];
  if ('BoolExpr' in where && where.BoolExpr.boolop === 'AND_EXPR') return (where.BoolExpr.args ?? []).flatMap(conjuncts);
  return [where];
}
