import type { ShardName } from '../../config/names.js';
import { copyIndex, prunedCopy } from '../../planner/gather.js';
import type { GatherPlan, GatherTable } from '../../planner/plan.js';
import type { ClientStatement, ExecEvent } from '../session-api.js';
import type { ShardCursor } from '../shard-cursor.js';

/** The relation's kind and its columns in catalog order, one row per column (none for a missing relation or one without columns). */
const COLUMNS_SQL =
  'SELECT c.relkind, a.attname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid' +
  ' WHERE c.oid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum';

/** The columns of the relation's primary key, in key order (none without one). */
const PRIMARY_KEY_SQL =
  'SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)' +
  ' WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisprimary ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)';

/** What running a GatherPlan needs from the session. */
export interface GatherContext {
  /** The shard's connection in the statement's transaction (the client's snapshot and own writes). */
  readonly connection: (shard: ShardName) => Promise<ShardCursor>;
  /** Connections with a statement in flight, for cancel(). */
  readonly running: Set<ShardCursor>;
  /** A compute connection outside the client's transaction, with the session's settings applied. */
  readonly compute: () => Promise<ShardCursor>;
}

/**
 * Runs a GatherPlan: on a compute connection, `BEGIN`, then for each table
 * a temporary copy (`CREATE TEMP TABLE pg_temp.t (LIKE t)`: same columns,
 * types and collations) filled by streaming `COPY (SELECT * FROM t) TO
 * STDOUT` of each of its shards, read on the client's own connections, into
 * `COPY pg_temp.t FROM STDIN` (each write waits until the compute connection
 * takes more; nothing is held in the proxy beyond one COPY message); then the
 * client's statement over the copies, with the client's parameters and
 * result formats, whose events are the answer. Always ROLLBACK afterwards:
 * the copies never outlive the statement.
 */
export async function* runGather(plan: GatherPlan, stmt: ClientStatement, ctx: GatherContext): AsyncGenerator<ExecEvent, void, undefined> {
  const compute = await ctx.compute();
  let clean = false;
  try {
    await compute.exec('BEGIN');
    for (const table of plan.tables) {
      const first = await ctx.connection(table.shards[0]!);
      const rows = await first.rows(COLUMNS_SQL, [table.source]);
      // A view or a function-backed relation would be read on one shard only: only plain tables are copied.
      const kind = rows[0]?.[0];
      if (kind !== 'r' && kind !== 'p') throw plan.refusal;
      const copy = copyStatements(table, rows.map((r) => String(r[1])));
      await compute.exec(copy.create);
      const sink = await compute.copyIn(copy.copyIn);
      try {
        for (const shard of table.shards) {
          const conn = await ctx.connection(shard);
          ctx.running.add(conn);
          try {
            const out = conn.copyOut(copy.copyOut);
            for (let r = await out.next(); r.done !== true; r = await out.next()) await sink.write(r.value);
          } finally {
            ctx.running.delete(conn);
          }
        }
      } catch (e) {
        await sink.fail('reading a shard failed');
        throw e;
      }
      await sink.end();
      const key = (await first.rows(PRIMARY_KEY_SQL, [table.source])).map((r) => String(r[0]));
      if (key.length > 0 && key.every((c) => copy.columns.includes(c))) await compute.exec(copyIndex(table, key));
      await compute.exec(table.analyze);
    }
    ctx.running.add(compute);
    try {
      yield* compute.query({
        sql: plan.finalSql,
        params: stmt.params ?? [],
        paramFormats: stmt.paramFormats ?? [],
        paramTypes: stmt.paramTypes ?? [],
        ...(stmt.resultFormats ? { resultFormats: stmt.resultFormats } : {}),
        cache: false,
      });
    } finally {
      ctx.running.delete(compute);
    }
    await compute.exec('ROLLBACK');
    clean = compute.txStatus === 'I';
  } finally {
    if (!clean) await compute.exec('ROLLBACK').catch(() => undefined);
    compute.release(!clean);
  }
}

/**
 * The copy of a table: only the columns whose names the statement
 * references (in catalog order), the whole table when it may see columns it
 * does not name; only the rows that meet the table's filters whose columns
 * are all the table's (a name that is not may be another table's column).
 * A statement naming none of a table's columns (`count(*)`) still copies
 * one, so every row is a line of COPY data.
 */
function copyStatements(
  table: GatherTable,
  tableColumns: readonly string[],
): Pick<GatherTable, 'create' | 'copyOut' | 'copyIn'> & { readonly columns: readonly string[] } {
  const own = new Set(tableColumns);
  const filters = table.filters.filter((f) => f.columns.every((c) => own.has(c)));
  const wanted = table.columns === null ? own : new Set(table.columns);
  const kept = tableColumns.filter((c) => wanted.has(c));
  if (kept.length === tableColumns.length && filters.length === 0) return { ...table, columns: tableColumns };
  const copied = kept.length > 0 ? kept : tableColumns.slice(0, 1);
  return { ...prunedCopy(table, copied, filters), columns: copied };
}
