import type { TableName } from '../config/names.js';
import { sgError } from '../errors/index.js';
import type { ShardCursor } from './shard-cursor.js';

/** A table's column names in catalog order (dropped columns left out); the name is resolved through the session's search_path. */
const TABLE_COLUMNS_SQL =
  'SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum';

/**
 * Reads a table's columns in their catalog order on `conn` (which sees the
 * table as the caller's transaction does). Throws 42P01 when the table does
 * not exist there.
 */
export async function readTableColumns(conn: ShardCursor, table: TableName): Promise<readonly string[]> {
  const columns = (await conn.rows(TABLE_COLUMNS_SQL, [table])).map((r) => r[0] ?? '');
  if (columns.length === 0) throw sgError('undefinedTable', { table });
  return columns;
}

const MAX_TABLES = 1024;

/**
 * The column order of sharded tables, shared by an engine's sessions: what
 * the planner needs to route an INSERT without a column list. An entry is
 * forgotten whenever DDL naming its table runs through this engine (and
 * again when the transaction that ran it ends). DDL run past ShardGate
 * (directly on the shards, or through another instance) that reorders a
 * table's columns is not seen: such an INSERT would route by the old order.
 */
export class TableColumns {
  readonly #byTable = new Map<TableName, readonly string[]>();

  get(table: TableName): readonly string[] | undefined {
    return this.#byTable.get(table);
  }

  set(table: TableName, columns: readonly string[]): void {
    if (this.#byTable.size >= MAX_TABLES) this.#byTable.clear();
    this.#byTable.set(table, columns);
  }

  forget(tables: Iterable<TableName>): void {
    for (const t of tables) this.#byTable.delete(t);
  }
}
