import type { Node } from 'libpg-query';
import { sgError } from '../errors/catalogue.js';
import { quoteLiteral, walkTree } from '../sql/ast.js';
import { deparseNode, parseSql } from '../sql/parser.js';

/**
 * `pg_prepared_statements` and `pg_cursors` describe the session that reads
 * them. Behind ShardGate a client's prepared statements and cursors are the
 * session's own (SQL PREPARE and DECLARE are kept here, protocol statements by
 * the wire server) while the shard connection that would answer the query is
 * a pooled one, holding ShardGate's cached statements of every client. So a
 * SELECT that reads either view gets it replaced by the session's rows, as
 * literal VALUES typed like the view's columns, and then runs as any other
 * statement.
 */

/** A prepared statement of the session, as `pg_prepared_statements` shows it. */
export interface StatementView {
  readonly name: string;
  /** The text the client sent: the PREPARE statement for SQL, the Parse text for the protocol. */
  readonly statement: string;
  readonly prepareTime: Date;
  /** Parameter type OIDs as PostgreSQL resolved them. */
  readonly paramTypes: readonly number[];
  readonly fromSql: boolean;
  /** Times it was run: EXECUTE for SQL, Bind for the protocol (PostgreSQL picks a plan at each). */
  readonly runs: number;
}

/** An open cursor of the session, as `pg_cursors` shows it; null `scrollable`: not known to ShardGate. */
export interface CursorView {
  readonly name: string;
  readonly statement: string;
  readonly holdable: boolean;
  readonly binary: boolean;
  readonly scrollable: boolean | null;
  readonly creationTime: Date;
}

/** What the views hold for this statement. */
export interface SessionViewRows {
  readonly statements: readonly StatementView[];
  readonly cursors: readonly CursorView[];
  /** `plan_cache_mode` was set by the client: how often PostgreSQL would pick a generic plan is not known. */
  readonly planCacheModeSet: boolean;
}

type ViewName = 'pg_prepared_statements' | 'pg_cursors';

const VIEW_WORDS = /pg_prepared_statements|pg_cursors/i;

/** A cheap test on the text: could the statement read one of the views? */
export function mayReadSessionViews(sql: string): boolean {
  return VIEW_WORDS.test(sql);
}

/** A statement that reads the views: which ones, its tree, and the names of its WITH queries (which hide a view of that name). */
export interface SessionViewsRead {
  readonly views: ReadonlySet<ViewName>;
  readonly stmt: Node;
  readonly shadowed: ReadonlySet<string>;
}

/** The views a statement reads (null: none). */
export function sessionViewsRead(sql: string): SessionViewsRead | null {
  const parsed = parseSql(sql);
  if (parsed.length !== 1) return null;
  const stmt = parsed[0]!.stmt;
  const views = new Set<ViewName>();
  const shadowed = cteNames(stmt);
  walkTree(stmt, (type, value) => {
    if (type !== 'RangeVar') return;
    const view = viewOf(value, shadowed);
    if (view !== null) views.add(view);
  });
  return views.size === 0 ? null : { views, stmt, shadowed };
}

function cteNames(stmt: unknown): Set<string> {
  const names = new Set<string>();
  walkTree(stmt, (type, value) => {
    if (type === 'CommonTableExpr' && typeof value.ctename === 'string') names.add(value.ctename);
  });
  return names;
}

function viewOf(rv: Record<string, unknown>, shadowed: ReadonlySet<string>): ViewName | null {
  const name = rv.relname;
  if (name !== 'pg_prepared_statements' && name !== 'pg_cursors') return null;
  const schema = rv.schemaname;
  // pg_catalog comes first in every search path unless named later; a WITH query of that name hides the view.
  if (schema === 'pg_catalog') return name;
  if (schema !== undefined || shadowed.has(name)) return null;
  return name;
}

const STATEMENT_COLUMNS = ['name', 'statement', 'prepare_time', 'parameter_types', 'from_sql', 'generic_plans', 'custom_plans'] as const;
const CURSOR_COLUMNS = ['name', 'statement', 'is_holdable', 'is_binary', 'is_scrollable', 'creation_time'] as const;
const STATEMENT_TYPES = ['text', 'text', 'timestamptz', 'regtype[]', 'boolean', 'int8', 'int8'];
const CURSOR_TYPES = ['text', 'text', 'boolean', 'boolean', 'boolean', 'timestamptz'];

/** Custom plans PostgreSQL makes before it compares them with a generic one (plancache.c, choose_custom_plan). */
const CUSTOM_PLANS_FIRST = 5;

/**
 * generic_plans and custom_plans as one server would count them, or null:
 * a statement without parameters always runs a generic plan; one with
 * parameters runs custom plans the first five times, after which the choice
 * depends on plan costs this proxy does not see (nor when plan_cache_mode is
 * set).
 */
function planCounts(s: StatementView, planCacheModeSet: boolean): { generic: number; custom: number } | null {
  if (s.paramTypes.length === 0) return { generic: s.runs, custom: 0 };
  if (planCacheModeSet || s.runs > CUSTOM_PLANS_FIRST) return null;
  return { generic: 0, custom: s.runs };
}

function timeLiteral(t: Date): string {
  return `CAST(${quoteLiteral(t.toISOString())} AS timestamptz)`;
}

function bool(b: boolean): string {
  return b ? 'true' : 'false';
}

/** The rows of one view as SQL, with the columns whose value ShardGate does not know for some row. */
function viewQuery(view: ViewName, rows: SessionViewRows): { sql: string; unknown: Set<string> } {
  const unknown = new Set<string>();
  const columns: readonly string[] = view === 'pg_cursors' ? CURSOR_COLUMNS : STATEMENT_COLUMNS;
  const types = view === 'pg_cursors' ? CURSOR_TYPES : STATEMENT_TYPES;
  let values: string[][];
  if (view === 'pg_cursors') {
    values = rows.cursors.map((c) => {
      if (c.scrollable === null) unknown.add('is_scrollable');
      return [quoteLiteral(c.name), quoteLiteral(c.statement), bool(c.holdable), bool(c.binary), c.scrollable === null ? 'NULL' : bool(c.scrollable), timeLiteral(c.creationTime)];
    });
  } else {
    values = rows.statements.map((s) => {
      const counts = planCounts(s, rows.planCacheModeSet);
      if (counts === null) {
        unknown.add('generic_plans');
        unknown.add('custom_plans');
      }
      const types = `CAST(CAST(${quoteLiteral(`{${s.paramTypes.join(',')}}`)} AS oid[]) AS regtype[])`;
      return [quoteLiteral(s.name), quoteLiteral(s.statement), timeLiteral(s.prepareTime), types, bool(s.fromSql), counts === null ? 'NULL' : String(counts.generic), counts === null ? 'NULL' : String(counts.custom)];
    });
  }
  const typed = (row: readonly string[]): string => row.map((v, i) => `CAST(${v} AS ${types[i]!}) AS ${columns[i]!}`).join(', ');
  if (values.length === 0) return { sql: `SELECT ${typed(columns.map(() => 'NULL'))} WHERE false`, unknown };
  // Every row is cast, so each column has the view's type whatever the rows' literals.
  return { sql: values.map((row) => `SELECT ${typed(row)}`).join(' UNION ALL '), unknown };
}

/** Whether the statement reads a column in `names` of a view: by name, through `*`, or as a whole row. */
function readsAny(stmt: Node, names: ReadonlySet<string>, aliases: ReadonlySet<string>): boolean {
  let found = false;
  walkTree(stmt, (type, value) => {
    if (found || type !== 'ColumnRef') return;
    const fields = (value.fields as Record<string, unknown>[] | undefined) ?? [];
    const last = fields[fields.length - 1];
    if (last === undefined) return;
    if ('A_Star' in last) found = true;
    const name = (last.String as { sval?: string } | undefined)?.sval;
    if (name !== undefined && (names.has(name) || (fields.length === 1 && aliases.has(name)))) found = true;
  });
  return found;
}

/**
 * The statement with every reference to the views replaced by the session's
 * rows. Only a plain SELECT is rewritten; another statement that reads the
 * views (a write, EXPLAIN) is refused with 0A000, as is a SELECT of a column
 * whose value ShardGate cannot know (plan counts after the fifth run of a
 * statement with parameters; whether a cursor over several shards could
 * scroll backward, which PostgreSQL decides from the plan).
 */
export function withSessionViews(read: SessionViewsRead, rows: SessionViewRows): string {
  const stmt = read.stmt as Record<string, unknown>;
  if (!('SelectStmt' in stmt)) {
    throw sgError('unsupportedCrossShard', {
      reason: `a statement other than SELECT that reads ${[...read.views].join(' and ')} (they describe this session, not a shard's connection)`,
      hint: 'Read the view in a SELECT of its own.',
    });
  }
  const queries = new Map<ViewName, { sql: string; unknown: Set<string> }>();
  for (const view of read.views) queries.set(view, viewQuery(view, rows));
  const aliases = new Set<string>();
  replaceRangeVars(stmt, (rv) => {
    const view = viewOf(rv, read.shadowed);
    if (view === null) return null;
    const alias = (rv.alias as { aliasname?: string; colnames?: unknown[] } | undefined) ?? { aliasname: view };
    aliases.add(alias.aliasname ?? view);
    const sub = parseSql(queries.get(view)!.sql)[0]!.stmt;
    return { RangeSubselect: { subquery: sub, alias: { aliasname: alias.aliasname ?? view, ...(alias.colnames !== undefined ? { colnames: alias.colnames } : {}) } } };
  });
  const unknown = new Set<string>();
  for (const q of queries.values()) for (const c of q.unknown) unknown.add(c);
  if (unknown.size > 0 && readsAny(stmt as Node, unknown, aliases)) {
    throw sgError('unsupportedCrossShard', {
      reason: `${[...unknown].join(', ')} of this session's ${[...read.views].join(' and ')}: PostgreSQL decides them from plans no shard made`,
      hint: `Select the other columns by name (without ${[...unknown].join(', ')}).`,
    });
  }
  return deparseNode(stmt as Node);
}

/** Replaces, in place, each `{ RangeVar: … }` node for which `replace` gives a node. */
function replaceRangeVars(root: unknown, replace: (rv: Record<string, unknown>) => Record<string, unknown> | null): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const cur = stack.pop();
    if (cur === null || typeof cur !== 'object') continue;
    if (Array.isArray(cur)) {
      stack.push(...(cur as unknown[]));
      continue;
    }
    const obj = cur as Record<string, unknown>;
    const rv = obj.RangeVar as Record<string, unknown> | undefined;
    if (rv !== undefined) {
      const node = replace(rv);
      if (node !== null) {
        delete obj.RangeVar;
        Object.assign(obj, node);
        continue;
      }
    }
    for (const key in obj) stack.push(obj[key]);
  }
}
