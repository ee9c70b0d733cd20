import type { ShardName, TableName } from '../config/names.js';
import type { PgError } from '../errors/pg-error.js';

/**
 * The routing decision for one statement: pure data, produced by `planStatement`
 * from the statement, its parameter values and the rules. Everything downstream
 * (engine, transaction manager, server) works on this value and never looks at
 * SQL again.
 */
export type Plan =
  | ShardsPlan
  | TransactionPlan
  | SetPlan
  | ShowPlan
  | CopyFromPlan
  | CopyToPlan
  | InsertSelectPlan
  | SubqueryWritePlan
  | EmptyPlan
  | GatherPlan
  | PreparePlan
  | ExecutePlan
  | DeallocatePlan
  | DeclarePlan
  | FetchPlan
  | ClosePlan
  | RefusePlan;

/** Why the shards were chosen; counted in metrics and shown in EXPLAIN-like output. */
export type RouteKind =
  | 'single' // the key conditions picked one shard
  | 'multi' // several (not all) shards by key
  | 'all' // every shard (no usable key condition, or DDL on a sharded table)
  | 'broadcast-read' // a broadcast table read on one shard
  | 'broadcast-write' // a broadcast table written on every shard
  | 'default' // unlisted tables, catalog queries, statements with no table
  | 'hint'; // forced by a shard hint

/** SQL sent to one shard. */
export interface ShardStatement {
  readonly shard: ShardName;
  /**
   * Text sent to the shard. When the plan needs no rewrite this is the client's
   * own text, unchanged.
   */
  readonly sql: string;
  /**
   * Which client parameters the shard statement takes, in order: shard `$k`
   * is client parameter `paramMap[k-1]` (0-based index). `null` means all of
   * them unchanged.
   */
  readonly paramMap: readonly number[] | null;
}

/** A statement executed on one or more shards, with an optional merge of the results. */
export interface ShardsPlan {
  readonly kind: 'shards';
  readonly route: RouteKind;
  /** PostgreSQL command word for the command tag, e.g. 'SELECT', 'INSERT', 'CREATE TABLE'. */
  readonly command: string;
  /** True when the statement may modify data or schema on the shards it runs on. */
  readonly writes: boolean;
  /** True for DDL (CREATE/ALTER/DROP/TRUNCATE …). */
  readonly ddl: boolean;
  readonly tables: readonly TableName[];
  readonly statements: readonly ShardStatement[];
  /** How to combine the shards' results; null when one shard runs or results are simply concatenated. */
  readonly merge: MergeSpec | null;
  /**
   * Present (always false) for statements PostgreSQL refuses inside a
   * transaction block (VACUUM, CREATE INDEX CONCURRENTLY, CREATE DATABASE,
   * ALTER SYSTEM …): they run on each shard outside any transaction, so on
   * several shards they are not atomic; inside a transaction block they fail
   * with 25001. Absent means the statement may run in a transaction.
   */
  readonly transactional?: false;
  /**
   * Present when the statement leaves its shard's branch unable to
   * `PREPARE TRANSACTION` (it creates a temporary object, runs LISTEN/UNLISTEN/
   * NOTIFY, or declares a cursor WITH HOLD): what it does, for the error. Such
   * a branch may not be one of two or more written shards of a transaction.
   */
  readonly notPreparable?: string;
  /**
   * Present for EXPLAIN of a statement that runs on several shards: each
   * statement is the EXPLAIN of that shard's part, and the engine answers
   * with `header` followed, per statement, by its label line and the shard's
   * own plan under it (`explain.ts`).
   */
  readonly explain?: { readonly header: readonly string[]; readonly labels: readonly string[] };
}

/**
 * How to merge result streams from several shards. Column indexes refer to the
 * shard statement's result columns (the rewritten select list), 0-based.
 *
 * Negative indexes count from the END of the shard result: -1 is its last
 * column. They exist because a select list with `*` has a width known only
 * when the shards describe their result: columns the merge adds are appended
 * after the `*`, and select items after a `*` can only be located from the
 * end. This applies to every column index here: `SortKey.column`,
 * `AggregateSpec.groupBy`, `AggregateColumn` columns (`column`, `sum`,
 * `count`) and `Operand` columns. The engine resolves a spec against the
 * shard result's column count once it has the RowDescription
 * (`resolveMergeSpec` in engine/merge), before anything else reads it.
 *
 * When `visibleColumns` is negative, a non-negative sort column must lie
 * within the visible columns: it comes from a position the client wrote
 * (`ORDER BY 2`), and one beyond them is PostgreSQL's 42P10.
 */
export interface MergeSpec {
  /**
   * Columns the client sees: the first `visibleColumns` of the shard result;
   * the rest were added for the merge and are dropped. Negative: every column
   * except the last `-visibleColumns` (the hidden columns appended after a `*`).
   */
  readonly visibleColumns: number;
  /** Combine groups (GROUP BY or a plain aggregate query). Shards return partial aggregates. */
  readonly aggregate: AggregateSpec | null;
  /** Remove duplicate rows (SELECT DISTINCT), over the visible columns. */
  readonly distinct: boolean;
  /** Final order; empty when none was asked for. */
  readonly orderBy: readonly SortKey[];
  /** Rows to skip and to return after merging; values or client parameter indexes. */
  readonly offset: Count | null;
  readonly limit: Count | null;
  /**
   * Present (true) when `orderBy` was chosen by the planner, not the client:
   * the shards order GROUP BY keys so groups can be combined as a stream,
   * but any output order is right. The engine may then combine groups in a
   * hash table instead (when it cannot reproduce the shards' text order).
   */
  readonly orderChosen?: true;
  /**
   * Present (true) when the statement names, in a COLLATE clause, a
   * collation other than "C", "POSIX", "ucs_basic" or "pg_c_utf8": text
   * keys (other than those with their own `byteOrder`) may then carry that
   * collation, and the engine does not compare them itself.
   */
  readonly otherCollation?: true;
}

export type Count = { readonly kind: 'value'; readonly value: number } | { readonly kind: 'param'; readonly index: number };

export interface SortKey {
  readonly column: number;
  readonly descending: boolean;
  /** PostgreSQL's default: NULLS LAST for ASC, NULLS FIRST for DESC. */
  readonly nullsFirst: boolean;
  /** Present (true) when the key ends in `COLLATE "C"` (or "POSIX", "ucs_basic", "pg_c_utf8"): its text order is byte order. */
  readonly byteOrder?: true;
}

export interface AggregateSpec {
  /** Columns that form the group key (shard result indexes). Empty for a plain aggregate without GROUP BY. */
  readonly groupBy: readonly number[];
  /** One entry per aggregated output column. Columns not listed here and not in groupBy are taken from the first row of the group. */
  readonly columns: readonly AggregateColumn[];
  /** Predicate evaluated on each merged group (from HAVING); rows failing it are dropped. */
  readonly having: Predicate | null;
  /**
   * Present when the select list or ORDER BY holds expressions over
   * aggregates (`round(avg(x), 2)`, `sum(a) / count(*)`): each replaces a
   * shard result column (the shards send NULL there) and is evaluated by
   * PostgreSQL on the final step over the combined group (engine/final-step).
   * The streaming merge never evaluates them: it refuses such a spec (0A000).
   */
  readonly expressions?: readonly CombinedExpression[];
  /**
   * Present when HAVING is not a `Predicate` (an expression over aggregates,
   * a function, arithmetic): the condition in SQL over the combined group,
   * evaluated on the final step like `expressions` (`having` is then null).
   */
  readonly havingSql?: string;
}

/**
 * An expression over combined aggregates and group keys, as SQL in which
 * column k of the combined group is written `sg_combined.ck` (`COMBINED_ROW`,
 * `combinedColumn`): PostgreSQL evaluates it over the combined rows, so its
 * type, rounding and output text are one server's.
 */
export interface CombinedExpression {
  /** The shard result column it fills (the shard statement has NULL there). */
  readonly column: number;
  readonly sql: string;
}

/** The alias of the combined group row that `CombinedExpression.sql` and `AggregateSpec.havingSql` refer to. */
export const COMBINED_ROW = 'sg_combined';

/** Whether the spec holds expressions over aggregates (or a HAVING in SQL), which only the final step evaluates. */
export function hasCombinedExpressions(spec: MergeSpec): boolean {
  return (spec.aggregate?.expressions?.length ?? 0) > 0 || spec.aggregate?.havingSql !== undefined;
}

/** The name of column `k` of the combined group row (and of the final step's temporary table): c0, c1, … */
export function combinedColumn(k: number): string {
  return `c${k}`;
}

export type AggregateColumn =
  | { readonly kind: 'count' | 'sum'; readonly column: number }
  /** `byteOrder` as in SortKey: the argument ends in `COLLATE "C"`, so text compares as bytes. */
  | { readonly kind: 'min' | 'max'; readonly column: number; readonly byteOrder?: true }
  /** AVG rewritten into SUM (at `sum`) and COUNT (at `count`); the result goes into `column`. */
  | { readonly kind: 'avg'; readonly column: number; readonly sum: number; readonly count: number };

/** A small boolean expression over merged group columns (HAVING after merge). */
export type Predicate =
  | { readonly kind: 'and' | 'or'; readonly args: readonly Predicate[] }
  | { readonly kind: 'not'; readonly arg: Predicate }
  | { readonly kind: 'compare'; readonly op: '=' | '<>' | '<' | '<=' | '>' | '>='; readonly left: Operand; readonly right: Operand }
  | { readonly kind: 'isNull'; readonly negated: boolean; readonly arg: Operand };

export type Operand =
  | { readonly kind: 'column'; readonly column: number }
  | { readonly kind: 'literal'; readonly value: string | null }
  | { readonly kind: 'param'; readonly index: number };

/** Transaction control handled by the transaction manager. */
export interface TransactionPlan {
  readonly kind: 'transaction';
  readonly op: 'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo' | 'prepare' | 'commitPrepared' | 'rollbackPrepared';
  /** Savepoint name, or the gid for the *Prepared operations. */
  readonly name: string | null;
  /** BEGIN options as written (ISOLATION LEVEL …, READ ONLY …), re-sent to every shard the transaction touches. */
  readonly options: string;
  /** Command tag PostgreSQL would answer with. */
  readonly command: string;
}

/**
 * SET / RESET / SET LOCAL. `shardgate.*` settings are ShardGate's own and are
 * not sent to shards; others are recorded in the session and applied on every
 * backend that serves it.
 */
export interface SetPlan {
  readonly kind: 'set';
  /** Lower-cased setting name; null for RESET ALL. */
  readonly name: string | null;
  /** New value as SQL text (already quoted as needed); null for RESET / SET … TO DEFAULT. */
  readonly value: string | null;
  readonly local: boolean;
  /** The statement to send to shards, when the setting belongs to PostgreSQL. */
  readonly sql: string;
  readonly command: 'SET' | 'RESET';
}

/** SHOW of a ShardGate setting (answered locally); PostgreSQL settings are ShardsPlans on the default shard. */
export interface ShowPlan {
  readonly kind: 'show';
  readonly name: string;
}

/** COPY table FROM STDIN: rows are routed one by one. */
export interface CopyFromPlan {
  readonly kind: 'copyFrom';
  readonly table: TableName;
  /** How rows are placed; for a broadcast table every row goes to every shard. */
  readonly rule: 'sharded' | 'broadcast' | 'unlisted';
  /** Column list as given (empty: all columns in table order, which then must be known to locate the key). */
  readonly columns: readonly string[];
  readonly format: 'text' | 'csv' | 'binary';
  readonly delimiter: string;
  readonly nullString: string;
  readonly header: boolean;
  readonly quote: string;
  readonly escape: string;
  /** The COPY statement sent to each shard. */
  readonly sql: string;
  readonly shards: readonly ShardName[];
}

/** COPY … TO STDOUT: concatenated output of the shards (one shard for broadcast and unlisted tables). */
export interface CopyToPlan {
  readonly kind: 'copyTo';
  readonly statements: readonly ShardStatement[];
}

/**
 * INSERT … SELECT whose rows must be moved between shards: the engine runs
 * `source` (routed and merged like any SELECT, reading inside the session's
 * transaction), takes each result row's key at `keyIndex`, and inserts the
 * rows on the shards their keys route to, in multi-row batches:
 * `insertSql` + `($1, …), ($k+1, …)` + `insertSuffix`, one parameter per
 * value. Outside a transaction block it runs in a global transaction of its
 * own (two-phase commit when two or more shards are written).
 */
export interface InsertSelectPlan {
  readonly kind: 'insertSelect';
  /** The sharded table written. */
  readonly table: TableName;
  /** The SELECT producing the rows; its statements take the client's parameters (`paramMap`). */
  readonly source: ShardsPlan;
  /** Target columns as written by the client; empty when the INSERT had no column list (the table's own order). */
  readonly columns: readonly string[];
  /** Position of the sharding key among the inserted values. */
  readonly keyIndex: number;
  /** Start of each batch's statement, up to and including `VALUES `. */
  readonly insertSql: string;
  /** Appended after the rows (an ON CONFLICT clause, without parameters), or ''. */
  readonly insertSuffix: string;
}

/**
 * An UPDATE or DELETE whose uncorrelated subqueries read rows the write's
 * shards do not hold (planner/subquery-write.ts): the engine runs each
 * subquery first as a SELECT of its own (merged or gathered like any SELECT,
 * inside the session's transaction), then plans `write` with the client's
 * parameters followed by one parameter per subquery, holding its result, and
 * runs it there. Outside a transaction block all of it runs in a global
 * transaction of its own (two-phase commit when two or more shards are written).
 */
export interface SubqueryWritePlan {
  readonly kind: 'subqueryWrite';
  readonly command: 'UPDATE' | 'DELETE';
  /** In order: their values follow the k client parameters, each taking one parameter (`columns` for 'rows' and 'assign'). */
  readonly subqueries: readonly WriteSubquery[];
  /**
   * The client's statement with each subquery replaced by a parameter
   * (`x = ANY($n)`, `x op ALL($n)`, `$n`) and its parameters renumbered:
   * its `$j` is entry `writeParams[j-1]` (0-based) of the client's
   * parameters followed by the subqueries' values.
   */
  readonly write: string;
  readonly writeParams: readonly number[];
}

/** One subquery a SubqueryWritePlan runs first. */
export interface WriteSubquery {
  /**
   * 'list': its rows become one array (`x op ANY|ALL ($n)`, the column's
   * array type; NULLs kept, so IN and NOT IN keep their NULL semantics);
   * 'scalar': its one value (`$n`, the column's type; NULL without rows,
   * PostgreSQL's 21000 with more than one);
   * 'exists': whether it has a row (`EXISTS (…)` → `$n`, boolean);
   * 'array': its rows as one array (`ARRAY(…)` → `$n`, the column's array type);
   * 'rows': one array per column (`columns` of them), the subquery replaced
   * by `SELECT * FROM ROWS FROM (pg_catalog.unnest($n), pg_catalog.unnest($n+1), …)`
   * (row `IN`, row `op ANY|ALL`);
   * 'assign': the same for `SET (a, b) = (SELECT …)`, with at most its
   * first two rows (PostgreSQL itself then assigns, NULLs without a row,
   * or raises 21000 for two).
   */
  readonly kind: 'list' | 'scalar' | 'exists' | 'array' | 'rows' | 'assign';
  /** The subquery planned as a statement of its own, with parameters renumbered (`paramMap`). */
  readonly plan: ShardsPlan | GatherPlan;
  /** The subquery's text, its `$k` being client parameter `paramMap[k-1]` (0-based). */
  readonly sql: string;
  readonly paramMap: readonly number[];
  /** 'rows' and 'assign': how many parameters (one array per column) it becomes; the others become one. */
  readonly columns?: number;
}

/**
 * A read-only SELECT that the streaming merge cannot answer (window
 * functions, set operations, expressions over aggregates, joins not on the
 * sharding keys, …), evaluated by PostgreSQL on a compute connection: each
 * table it reads is copied, from the client's own transaction on its shards,
 * into a temporary table of the same name and columns, and `finalSql` (the
 * client's statement with those table references pointing at `pg_temp`)
 * runs over the copies with the client's parameters (engine/final-step).
 */
export interface GatherPlan {
  readonly kind: 'gather';
  /** Why the statement could not be split for the streaming merge; raised as it is where no compute connection can be had (embedded shards). */
  readonly refusal: PgError;
  readonly tables: readonly GatherTable[];
  readonly finalSql: string;
}

/** One table a GatherPlan copies. */
export interface GatherTable {
  readonly table: TableName;
  /** The table as the statement names it (quoted), read on the shards; the engine checks it is a plain table there. */
  readonly source: string;
  /** Shards whose rows make up the table: every shard for a sharded table, the default shard for a broadcast or unlisted one. */
  readonly shards: readonly ShardName[];
  /** Run on each shard: `COPY (SELECT * FROM <table>) TO STDOUT`. */
  readonly copyOut: string;
  /** Run on the compute connection: `CREATE TEMP TABLE pg_temp.<name> (LIKE <table>) ON COMMIT DROP`. */
  readonly create: string;
  /** Run on the compute connection: `COPY pg_temp.<name> FROM STDIN`. */
  readonly copyIn: string;
  /**
   * Run on the compute connection once the copy is filled: `ANALYZE
   * pg_temp.<name>`, so PostgreSQL plans the statement over the copies with
   * their statistics (without them, a correlated subquery over a large copy
   * may be planned as a nested loop and take minutes). Statistics change
   * plans, never results.
   */
  readonly analyze: string;
  /**
   * Every name the statement's column references may resolve to, sorted, or
   * null when it may see columns it does not name (`*`, NATURAL, whole-row
   * references): the engine copies only the table's columns of these names
   * (`prunedCopy`), all of them when null.
   */
  readonly columns: readonly string[] | null;
  /** The name the statement refers to the table by (its alias, or its name), under which `filters` are written. */
  readonly refName: string;
  /** Conditions every row of the table must meet to count in the answer (gather.ts `pushableFilters`), applied while copying. */
  readonly filters: readonly GatherFilter[];
}

/** A condition on one gathered table's rows, and the column names it reads (applied only when all are the table's columns). */
export interface GatherFilter {
  readonly sql: string;
  readonly columns: readonly string[];
}

/** An empty query string (EmptyQueryResponse) or a statement ShardGate answers itself with just a tag (DISCARD ALL…). */
export interface EmptyPlan {
  readonly kind: 'empty';
  readonly command: string | null;
}

/**
 * SQL `PREPARE name [(types)] AS statement`: kept by the session, like a
 * protocol-level prepared statement; the statement is planned on each
 * EXECUTE with the values of its arguments (never sent to a shard as PREPARE).
 */
export interface PreparePlan {
  readonly kind: 'prepare';
  readonly name: string;
  /** Declared parameter types as SQL type names (`integer`, `numeric(10,2)`), in order; may be fewer than the parameters used. */
  readonly paramTypes: readonly string[];
  /** The prepared statement's own text (what follows AS), as the client wrote it. */
  readonly statement: string;
}

/** SQL `EXECUTE name [(args)]`: the arguments become the prepared statement's parameters. */
export interface ExecutePlan {
  readonly kind: 'execute';
  readonly name: string;
  readonly args: readonly ExecuteArg[];
}

/**
 * One EXECUTE argument: a constant whose text is the parameter's input
 * (`number` for a numeric literal, which only numeric parameter types take
 * as written), or any other expression, evaluated by PostgreSQL.
 */
export type ExecuteArg =
  | { readonly kind: 'constant'; readonly text: string | null; readonly number: boolean }
  | { readonly kind: 'expression'; readonly sql: string };

/** SQL `DEALLOCATE [PREPARE] name | ALL` (name null for ALL). */
export interface DeallocatePlan {
  readonly kind: 'deallocate';
  readonly name: string | null;
}

/**
 * SQL `DECLARE name … CURSOR … FOR query`: `query` is the query's own plan
 * (with the statement's parameters); the engine opens the cursor on the
 * shards that plan names and serves FETCH/MOVE/CLOSE from them.
 */
export interface DeclarePlan {
  readonly kind: 'declare';
  readonly name: string;
  readonly binary: boolean;
  /** SCROLL, NO SCROLL, or neither written. */
  readonly scroll: 'scroll' | 'noScroll' | 'default';
  readonly hold: boolean;
  readonly query: Plan;
}

/**
 * SQL `FETCH`/`MOVE`: PostgreSQL's direction and count (FORWARD/BACKWARD n,
 * ABSOLUTE/RELATIVE n); `count` null for ALL.
 */
export interface FetchPlan {
  readonly kind: 'fetch';
  readonly name: string;
  readonly move: boolean;
  readonly direction: 'forward' | 'backward' | 'absolute' | 'relative';
  readonly count: number | null;
}

/** SQL `CLOSE name | ALL` (name null for ALL). */
export interface ClosePlan {
  readonly kind: 'close';
  readonly name: string | null;
}

/** A statement that cannot be executed correctly: the error says why. Nothing runs. */
export interface RefusePlan {
  readonly kind: 'refuse';
  readonly error: PgError;
  /**
   * Set when the statement was refused only for want of this table's column
   * order (an INSERT without a column list into a sharded table): planning it
   * again with `RouteContext.columnsOf` answering for the table routes it.
   */
  readonly needsColumns?: TableName;
}
