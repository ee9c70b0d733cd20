import type { Node, RangeVar, SelectStmt } from 'libpg-query';
import type { TableName } from '../config/names.js';
import type { PgError } from '../errors/pg-error.js';
import { cloneTree, columnRefNames, funcName, quoteIdent, stringOf, walkTree } from '../sql/ast.js';
import { deparseNode } from '../sql/parser.js';
import type { Alias, ColumnRef, FuncCall, JoinExpr } from 'libpg-query';
import type { GatherPlan, GatherTable } from './plan.js';
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
  const columns = referencedColumns(stmt, names);
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
 * columns) when the statement sees columns it does not name: `*` or
 * `t.*`, a NATURAL join, a whole-row reference (a bare name that is a
 * table or an alias), or an alias column list on a table or a join (which
 * renames columns by position). 'system' for a reference to a system column.
 */
function referencedColumns(stmt: SelectStmt, tables: ReadonlySet<string>): readonly string[] | null | 'system' {
  const names = new Set<string>();
  const relationNames = new Set<string>(tables);
  let all = false;
  walkTree(stmt, (type, value) => {
    if (type === 'A_Star' || type === 'RangeTableFunc') all = true;
    if (type === 'ColumnRef') {
      const fields = columnRefNames(value as ColumnRef);
      if (fields === null) all = true;
      for (const f of fields ?? []) names.add(f);
    }
    if (type === 'RangeVar' || type === 'JoinExpr') {
      const alias = (value as { alias?: Alias }).alias;
      if (alias?.aliasname !== undefined) relationNames.add(alias.aliasname);
      if ((alias?.colnames?.length ?? 0) > 0) all = true;
    }
    if (type === 'RangeSubselect' || type === 'RangeFunction') {
      const alias = (value as { alias?: Alias }).alias;
      if (alias?.aliasname !== undefined) relationNames.add(alias.aliasname);
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
  });
  if ([...names].some((n) => SYSTEM_COLUMNS.has(n))) return 'system';
  // A bare name equal to a relation's name or alias may be a whole-row reference (`SELECT t FROM t`, `count(t)`).
  walkTree(stmt, (type, value) => {
    if (type !== 'ColumnRef') return;
    const fields = columnRefNames(value as ColumnRef);
    if (fields !== null && fields.length === 1 && relationNames.has(fields[0]!)) all = true;
  });
  return all ? null : [...names].sort();
}

/**
 * The statements that copy only `kept` (the table's columns, in catalog
 * order, whose names the statement references; never empty) of a gathered
 * table: the copy has exactly those columns, with their types, typmods and
 * collations (CREATE TABLE AS derives them from the table's own columns).
 */
export function prunedCopy(table: GatherTable, kept: readonly string[]): Pick<GatherTable, 'create' | 'copyOut' | 'copyIn'> {
  const list = kept.map(quoteIdent).join(', ');
  const copy = `pg_temp.${quoteIdent(table.table)}`;
  return {
    create: `CREATE TEMP TABLE ${copy} ON COMMIT DROP AS SELECT ${list} FROM ${table.source} WITH NO DATA`,
    copyOut: `COPY (SELECT ${list} FROM ${table.source}) TO STDOUT`,
    copyIn: `COPY ${copy} (${list}) FROM STDIN`,
  };
}
