import type { ShardGateConfig } from '../config/types.js';
import type { ShardCursor } from '../engine/shard-cursor.js';
import type { ExportTable } from './manifest.js';

/** Schemas that hold ShardGate's own bookkeeping, never exported. */
export const OWN_SCHEMAS = ['shardgate', 'shardgate_import'] as const;

const TABLES_SQL = `SELECT n.nspname, c.relname, c.oid::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
    AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> ALL ($1::text[])
  ORDER BY 1, 2`;
const COLUMNS_SQL = `SELECT attname, format_type(atttypid, atttypmod), attnotnull::text
  FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
  ORDER BY attnum`;
const PRIMARY_KEY_SQL = `SELECT a.attname
  FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord`;

/**
 * Every table of the fleet, read on the default shard (the home of every
 * table: sharded tables exist on each shard, unlisted ones only there) under
 * the cut's snapshot: its columns (generated ones left out, as COPY of a
 * query would compute them), its primary key, and the shards its rows are on
 * (every shard when the configuration shards it by a key, else the default
 * shard: a broadcast table's copies are equal, so one is read).
 */
export async function readTables(conn: ShardCursor, config: ShardGateConfig): Promise<ExportTable[]> {
  const tables = await conn.rows(TABLES_SQL, [`{${OWN_SCHEMAS.join(',')}}`]);
  const out: ExportTable[] = [];
  for (const [schema, name, oid] of tables) {
    const columns = (await conn.rows(COLUMNS_SQL, [oid!])).map((r) => ({ name: r[0]!, type: r[1]!, notNull: r[2] === 'true' }));
    const primaryKey = (await conn.rows(PRIMARY_KEY_SQL, [oid!])).map((r) => r[0]!);
    const rule = config.tables.get((schema === 'public' ? name! : `${schema}.${name}`) as never) ?? config.tables.get(name! as never);
    const sharded = rule !== undefined && rule.kind !== 'broadcast';
    out.push({ schema: schema!, name: name!, columns, primaryKey, sources: sharded ? config.shards.map((s) => s.name) : [config.defaultShard] });
  }
  return out;
}
