import type { DeleteStmt, Node, ResTarget, SelectStmt, SubLink, UpdateStmt } from 'libpg-query';
import type { TableName } from '../config/names.js';
import { tableName } from '../config/names.js';
import type { PgError } from '../errors/pg-error.js';
import { sgError } from '../errors/catalogue.js';
import { cloneTree, columnRefNames, exprKey, isStarRef, walkTree } from '../sql/ast.js';
import { parseSql } from '../sql/parser.js';
import { renumberParams } from '../sql/renumber-params.js';
import type { Plan, SubqueryWritePlan, WriteSubquery } from './plan.js';
import type { Params } from './routing.js';
import type { RouteContext } from './statement-info.js';

/** Plans a statement given as text (the Planner's own `plan`, with its caches). */
export type TextPlanner = (sql: string, params: Params, ctx: RouteContext) => Plan;

const CORRELATED_HINT =
  'Join the subquery to the written table on the sharding key (WHERE s.key = t.key, tables sharded alike), or write it without references to the outer table so it can run first.';

/**
 * The fallback of an UPDATE or DELETE that cannot run as one statement on its
 * shards because a subquery in its WHERE or SET reads tables the write's
 * shards do not hold (another table sharded differently, or not joined on
 * the key; a table of the default shard): each uncorrelated subquery
 * (`x IN (SELECT …)`, `x op ANY|ALL (SELECT …)`, a scalar `(SELECT …)`,
 * `EXISTS (…)`, `ARRAY(…)`, a row `(a, b) IN (SELECT …)`,
 * `SET (a, b) = (SELECT …)`) becomes parameters of the write, and the SELECT runs first as a statement
 * of its own (SubqueryWritePlan). Returns null when there is nothing to
 * extract (the caller keeps its refusal), or a RefusePlan (a correlated
 * subquery, a column order that must be read first: `needsColumns`).
 */
export function planSubqueryWrite(stmt: UpdateStmt | DeleteStmt, update: boolean, params: Params, ctx: RouteContext, planText: TextPlanner, refusal: PgError): Plan | null {
  if (stmt.withClause !== undefined) return null;
  const links = topSubLinks(stmt, update);
  if (links.length === 0) return null;
  const outer = outerScope(stmt, update);
  const chosen: number[] = [];
  let correlated: string | null = null;
  for (const [i, found] of links.entries()) {
    const kind = extractable(found);
    if (kind === null) continue;
    const ref = outerReference(found.link.subselect as { SelectStmt: SelectStmt }, outer, ctx);
    if (ref.kind === 'needs') return { kind: 'refuse', error: refusal, needsColumns: ref.table };
    if (ref.kind === 'none') chosen.push(i);
    else correlated ??= ref.what;
  }
  if (chosen.length === 0) {
    if (correlated === null) return null;
    return { kind: 'refuse', error: sgError('unsupportedCrossShard', { reason: `a correlated subquery (it refers to ${correlated}) reads shards the write does not run on`, hint: CORRELATED_HINT }) };
  }
  // The subqueries' values follow the client's parameters: $k+1, $k+2, …
  const copy = cloneTree(stmt);
  const copies = topSubLinks(copy, update);
  const subqueries: WriteSubquery[] = [];
  let next = params.length + 1;
  for (const i of chosen) {
    const found = copies[i] as FoundSubLink;
    const kind = extractable(found) as WriteSubquery['kind'];
    const select = renumberParams(cloneTree(liftedQuery(found.link, kind)));
    const plan = planText(select.sql, select.paramMap.map((p) => params[p]), ctx);
    if (plan.kind === 'refuse') return plan;
    if (plan.kind !== 'shards' && plan.kind !== 'gather') return null;
    if (plan.kind === 'shards' && plan.writes) return null;
    const columns = kind === 'rows' || kind === 'assign' ? resultWidth(found.link) : 1;
    subqueries.push({ kind, plan, paramMap: select.paramMap, sql: select.sql, ...(kind === 'rows' || kind === 'assign' ? { columns } : {}) });
    replaceSubLink(found, kind, next);
    next += columns;
  }
  // Only the parameters the write still uses are sent with it (an unused one would have no type).
  const tree: Node = update ? { UpdateStmt: copy as UpdateStmt } : { DeleteStmt: copy as DeleteStmt };
  const write = renumberParams(tree);
  // The write's text must read back as the tree it was made from: the deparser drops parentheses some
  // parents need (`(NOT $1) IS NULL` comes out as `NOT $1 IS NULL`, which PostgreSQL reads as NOT ($1 IS NULL)).
  if (exprKey(parseSql(write.sql)[0]?.stmt ?? tree) !== exprKey(tree)) {
    return { kind: 'refuse', error: sgError('unsupportedCrossShard', { reason: 'the write with its subqueries replaced by their values cannot be written back as SQL exactly', hint: 'Parenthesize differently or split the condition, e.g. write (x IN (SELECT …)) IS NULL as a CASE or a comparison of its own.' }) };
  }
  const nulls = [...params, ...Array.from({ length: next - 1 - params.length }, () => null)];
  // Planned with unknown (NULL) values first: a write still refused (another subquery) fails before anything runs.
  const check = planText(write.sql, write.paramMap.map((i) => nulls[i]), ctx);
  if (check.kind === 'refuse') return check;
  if (check.kind !== 'shards') {
    return { kind: 'refuse', error: sgError('unsupportedCrossShard', { reason: correlated === null ? 'a subquery of the write cannot run first' : `a correlated subquery (it refers to ${correlated}) reads shards the write does not run on`, hint: CORRELATED_HINT }) };
  }
  const out: SubqueryWritePlan = { kind: 'subqueryWrite', command: update ? 'UPDATE' : 'DELETE', subqueries, write: write.sql, writeParams: write.paramMap };
  return out;
}

/**
 * A SubLink of the write: `wrapper` is the node holding it (replaced by a
 * parameter); for `SET (a, b) = (SELECT …)`, `targets` are the SET items it
 * assigns (each holds its own copy of the SubLink).
 */
interface FoundSubLink {
  readonly wrapper: { SubLink?: SubLink } & Record<string, unknown>;
  readonly link: SubLink;
  readonly targets?: readonly ResTarget[];
}

/** The result columns of a subquery when known without the catalog (no `*`); null otherwise. */
function resultColumns(link: SubLink): number | null {
  const sub = link.subselect;
  if (sub === undefined || !('SelectStmt' in sub)) return null;
  const sel = sub.SelectStmt;
  if (sel.intoClause !== undefined || (sel.lockingClause?.length ?? 0) > 0) return null;
  // A set operation's columns are those of its leftmost branch.
  let first = sel;
  while ((first.op ?? 'SETOP_NONE') !== 'SETOP_NONE' && first.larg !== undefined) first = first.larg;
  const targets = first.targetList ?? [];
  if (first.valuesLists !== undefined || targets.length === 0 || targets.some((t) => 'ResTarget' in t && isStarRef(t.ResTarget.val))) return null;
  return targets.length;
}

function resultWidth(link: SubLink): number {
  return resultColumns(link) ?? 0;
}

/** How a SubLink becomes parameters (WriteSubquery['kind']); null when it stays. */
function extractable(found: FoundSubLink): WriteSubquery['kind'] | null {
  const link = found.link;
  const sub = link.subselect;
  if (sub === undefined || !('SelectStmt' in sub)) return null;
  const sel = sub.SelectStmt;
  if (sel.intoClause !== undefined || (sel.lockingClause?.length ?? 0) > 0) return null;
  const type = link.subLinkType;
  // EXISTS reads no column: any target list (`*` included) will do.
  if (type === 'EXISTS_SUBLINK') return 'exists';
  const width = resultColumns(link);
  if (width === null) return null;
  if (found.targets !== undefined) return type === 'EXPR_SUBLINK' && width === found.targets.length ? 'assign' : null;
  if (type === 'EXPR_SUBLINK') return width === 1 ? 'scalar' : null;
  if (type === 'ARRAY_SUBLINK') return width === 1 ? 'array' : null;
  if (type === 'ANY_SUBLINK' || type === 'ALL_SUBLINK') {
    const test = link.testexpr;
    if (test === undefined || 'List' in test) return null;
    // A row on the left takes one column of the subquery per field; PostgreSQL reports a mismatch, so it stays for it to report.
    if ('RowExpr' in test) return (test.RowExpr.args?.length ?? 0) === width && width > 0 ? 'rows' : null;
    return width === 1 ? 'list' : null;
  }
  return null;
}

/**
 * The SELECT that runs first for a SubLink: its subquery, except for EXISTS
 * without a LIMIT or OFFSET of its own, which gets `LIMIT 1`: whether a row
 * exists does not change, and like PostgreSQL's EXISTS it stops at the first.
 */
function liftedQuery(link: SubLink, kind: WriteSubquery['kind']): Node {
  const sub = link.subselect as { SelectStmt: SelectStmt };
  if (kind !== 'exists' || sub.SelectStmt.limitCount !== undefined || sub.SelectStmt.limitOffset !== undefined) return sub;
  return { SelectStmt: { ...sub.SelectStmt, limitCount: { A_Const: { ival: { ival: 1 } } }, limitOption: 'LIMIT_OPTION_COUNT' } };
}

/**
 * `x IN (SELECT …)` → `x = ANY($n)`; `x op ALL (SELECT …)` → `x op ALL($n)`;
 * `(SELECT …)`, `EXISTS (…)`, `ARRAY(…)` → `$n`; a row IN / op ANY|ALL and
 * `SET (a, b) = (SELECT …)` keep their SubLink, its subquery replaced by
 * `SELECT * FROM ROWS FROM (pg_catalog.unnest($n), pg_catalog.unnest($n+1), …)`
 * (one array per column, read back in step: row i of each).
 */
function replaceSubLink(found: FoundSubLink, kind: WriteSubquery['kind'], n: number): void {
  const { wrapper, link } = found;
  if (kind === 'rows' || kind === 'assign') {
    const width = resultWidth(link);
    const unnest: Node = {
      SelectStmt: {
        targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }],
        fromClause: [
          {
            RangeFunction: {
              // ROWS FROM, not unnest(a, b): the parser expands only an unqualified unnest of several arrays.
              is_rowsfrom: true,
              functions: Array.from({ length: width }, (_, j): Node => ({ List: { items: [{ FuncCall: { funcname: [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'unnest' } }], args: [{ ParamRef: { number: n + j } }], funcformat: 'COERCE_EXPLICIT_CALL' } }, {} as Node] } })),
            },
          },
        ],
        limitOption: 'LIMIT_OPTION_DEFAULT',
        op: 'SETOP_NONE',
      },
    };
    link.subselect = unnest;
    for (const t of found.targets ?? []) {
      const m = t.val !== undefined && 'MultiAssignRef' in t.val ? t.val.MultiAssignRef.source : undefined;
      if (m !== undefined && 'SubLink' in m) m.SubLink.subselect = cloneTree(unnest);
    }
    return;
  }
  delete wrapper.SubLink;
  if (kind === 'scalar' || kind === 'exists' || kind === 'array') {
    wrapper.ParamRef = { number: n };
    return;
  }
  wrapper.A_Expr = {
    kind: link.subLinkType === 'ALL_SUBLINK' ? 'AEXPR_OP_ALL' : 'AEXPR_OP_ANY',
    name: link.operName ?? [{ String: { sval: '=' } }],
    lexpr: link.testexpr,
    rexpr: { ParamRef: { number: n } },
  };
}

/**
 * The SubLinks of the write's WHERE clause and (UPDATE) SET values, in tree
 * order, not those nested in other subqueries. Not RETURNING: its
 * subqueries stay in the statement. `SET (a, b) = (SELECT …)` is one
 * SubLink for all the items it assigns.
 */
function topSubLinks(stmt: UpdateStmt | DeleteStmt, update: boolean): FoundSubLink[] {
  const out: FoundSubLink[] = [];
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const x of node) visit(x);
      return;
    }
    const obj = node as Record<string, unknown>;
    if ('SubLink' in obj) {
      out.push({ wrapper: obj, link: obj.SubLink as SubLink });
      return;
    }
    for (const k in obj) visit(obj[k]);
  };
  if (update) {
    const list = (stmt as UpdateStmt).targetList ?? [];
    for (const [i, t] of list.entries()) {
      const val = 'ResTarget' in t ? t.ResTarget.val : undefined;
      if (val !== undefined && 'MultiAssignRef' in val) {
        const m = val.MultiAssignRef;
        // The items of one `(a, b) = source` are consecutive, colno 1 … ncolumns; each holds a copy of the source.
        if (m.colno !== 1) continue;
        const source = m.source;
        if (source !== undefined && 'SubLink' in source) {
          const targets = list.slice(i, i + (m.ncolumns ?? 1)).map((x) => (x as { ResTarget: ResTarget }).ResTarget);
          out.push({ wrapper: source as Record<string, unknown>, link: source.SubLink, targets });
        } else visit(source);
        continue;
      }
      visit(val);
    }
  }
  visit(stmt.whereClause);
  return out;
}

/** The names the write's subqueries may refer to from outside: the target and the FROM (USING) items. */
interface OuterScope {
  readonly names: ReadonlySet<string>;
  readonly tables: readonly TableName[];
  /** A FROM item whose columns are not a table's (a subquery, a function): any unqualified name may be one of them. */
  readonly opaque: boolean;
}

function outerScope(stmt: UpdateStmt | DeleteStmt, update: boolean): OuterScope {
  const scope: InnerScope = { names: new Set(), tables: [], opaque: false };
  const rel = stmt.relation;
  if (rel !== undefined) addFromItem({ RangeVar: rel }, scope, [], new Set());
  const from = update ? (stmt as UpdateStmt).fromClause : (stmt as DeleteStmt).usingClause;
  for (const item of from ?? []) addFromItem(item, scope, [], new Set());
  return scope;
}

interface InnerScope {
  readonly names: Set<string>;
  readonly tables: TableName[];
  opaque: boolean;
}

type Reference = { readonly kind: 'none' } | { readonly kind: 'outer'; readonly what: string } | { readonly kind: 'needs'; readonly table: TableName };

/**
 * Whether a subquery may refer to the outer statement, resolved as
 * PostgreSQL resolves names (innermost scope first):
 * - `q.c`: outer when `q` names no FROM item (or CTE) of the subquery's
 *   scopes but names one of the outer statement;
 * - an unqualified `c`: outer when some outer table has a column `c` (or `c`
 *   is an outer item's name, a whole-row reference) and no table of the
 *   subquery's scopes has one. Needs the tables' column lists
 *   (`RouteContext.columnsOf`, `needs` when one is not known); a FROM item
 *   of the subquery that is not a plain table (a subquery, a function, a CTE)
 *   may have any column, so such a name counts as outer.
 * An error (a name found nowhere) is left to PostgreSQL, which reports it on
 * the subquery as it would on the whole statement.
 */
function outerReference(sub: { SelectStmt: SelectStmt }, outer: OuterScope, ctx: RouteContext): Reference {
  const columnsOf = (t: TableName): readonly string[] | undefined => ctx.columnsOf?.(t);
  let result: Reference = { kind: 'none' };
  const resolve = (names: readonly string[], chain: readonly InnerScope[], ctes: ReadonlySet<string>): Reference => {
    if (names.length >= 2) {
      const q = names[names.length - 2] as string;
      if (chain.some((s) => s.names.has(q)) || ctes.has(q)) return { kind: 'none' };
      return outer.names.has(q) ? { kind: 'outer', what: names.join('.') } : { kind: 'none' };
    }
    const col = names[0] as string;
    if (chain.some((s) => s.names.has(col))) return { kind: 'none' };
    let outerHas = outer.opaque || outer.names.has(col);
    for (const t of outer.tables) {
      if (outerHas) break;
      const cols = columnsOf(t);
      if (cols === undefined) return { kind: 'needs', table: t };
      outerHas = cols.includes(col);
    }
    if (!outerHas) return { kind: 'none' };
    for (const s of chain) {
      if (s.opaque) return { kind: 'outer', what: `${col} (which a subquery or function in its FROM may or may not have)` };
      for (const t of s.tables) {
        const cols = columnsOf(t);
        if (cols === undefined) return { kind: 'needs', table: t };
        if (cols.includes(col)) return { kind: 'none' };
      }
    }
    return { kind: 'outer', what: col };
  };
  const select = (sel: SelectStmt, chain: readonly InnerScope[], outerCtes: ReadonlySet<string>): void => {
    const ctes = new Set(outerCtes);
    for (const c of sel.withClause?.ctes ?? []) {
      if (!('CommonTableExpr' in c)) continue;
      if (sel.withClause?.recursive === true) ctes.add(c.CommonTableExpr.ctename ?? '');
      const q = c.CommonTableExpr.ctequery;
      if (q !== undefined && 'SelectStmt' in q) select(q.SelectStmt, chain, ctes);
      else if (q !== undefined) result = { kind: 'outer', what: 'a data-modifying WITH query' };
      ctes.add(c.CommonTableExpr.ctename ?? '');
    }
    if ((sel.op ?? 'SETOP_NONE') !== 'SETOP_NONE') {
      if (sel.larg !== undefined) select(sel.larg, chain, ctes);
      if (sel.rarg !== undefined) select(sel.rarg, chain, ctes);
      return;
    }
    const scope: InnerScope = { names: new Set(), tables: [], opaque: false };
    const nested: { sel: SelectStmt; lateral: boolean }[] = [];
    const exprs: unknown[] = [];
    for (const item of sel.fromClause ?? []) addFromItem(item, scope, exprs, ctes, nested);
    const inner = [scope, ...chain];
    for (const n of nested) select(n.sel, inner, ctes);
    expressions([exprs, sel.targetList, sel.whereClause, sel.groupClause, sel.havingClause, sel.sortClause, sel.distinctClause, sel.windowClause, sel.limitCount, sel.limitOffset, sel.valuesLists], inner, ctes);
  };
  const expressions = (nodes: unknown, chain: readonly InnerScope[], ctes: ReadonlySet<string>): void => {
    walkTree(nodes, (type, value) => {
      if (result.kind !== 'none') return false;
      if (type === 'SubLink') {
        const link = value as SubLink;
        if (link.testexpr !== undefined) expressions(link.testexpr, chain, ctes);
        if (link.subselect !== undefined && 'SelectStmt' in link.subselect) select(link.subselect.SelectStmt, chain, ctes);
        return false;
      }
      if (type === 'ColumnRef') {
        const fields = (value as { fields?: Node[] }).fields ?? [];
        const star = fields.length > 0 && 'A_Star' in (fields[fields.length - 1] as Node);
        const names = columnRefNames({ fields: star ? [...fields.slice(0, -1), { String: { sval: '' } }] : fields });
        if (names === null || (star && names.length === 1)) return false;
        const r = resolve(names, chain, ctes);
        if (r.kind !== 'none') result = r;
        return false;
      }
      return true;
    });
  };
  select(sub.SelectStmt, [], new Set());
  return result;
}

/**
 * Adds a FROM item's names (alias, or table name) and tables to a scope.
 * Expressions inside it (join conditions, function arguments) go to
 * `exprs`, subqueries to `nested`; a CTE reference or anything but a plain
 * table makes the scope opaque (its columns are unknown here).
 */
function addFromItem(item: Node, scope: InnerScope, exprs: unknown[], ctes: ReadonlySet<string>, nested: { sel: SelectStmt; lateral: boolean }[] = []): void {
  if ('RangeVar' in item) {
    const rv = item.RangeVar;
    const name = rv.relname ?? '';
    scope.names.add(rv.alias?.aliasname ?? name);
    if (rv.schemaname === undefined && ctes.has(name)) scope.opaque = true;
    else scope.tables.push(tableName(name));
    return;
  }
  if ('JoinExpr' in item) {
    const j = item.JoinExpr;
    if (j.larg !== undefined) addFromItem(j.larg, scope, exprs, ctes, nested);
    if (j.rarg !== undefined) addFromItem(j.rarg, scope, exprs, ctes, nested);
    if (j.alias?.aliasname !== undefined) scope.names.add(j.alias.aliasname);
    exprs.push(j.quals);
    return;
  }
  scope.opaque = true;
  if ('RangeSubselect' in item) {
    const r = item.RangeSubselect;
    if (r.alias?.aliasname !== undefined) scope.names.add(r.alias.aliasname);
    if (r.subquery !== undefined && 'SelectStmt' in r.subquery) nested.push({ sel: r.subquery.SelectStmt, lateral: r.lateral === true });
    return;
  }
  const alias = (Object.values(item)[0] as { alias?: { aliasname?: string } } | undefined)?.alias?.aliasname;
  if (alias !== undefined) scope.names.add(alias);
  exprs.push(item);
}
