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
const COLUMNS_SQL = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  ORDER BY a.attnum`;
/** CHECK, UNIQUE and EXCLUDE constraints (the primary key is carried as such; foreign keys are not carried). */
const CONSTRAINTS_SQL = `SELECT conname, pg_get_constraintdef(oid), contype::text
  FROM pg_constraint WHERE conrelid = $1::oid AND contype IN ('c', 'u', 'x', 'f') ORDER BY conname`;
/** Indexes that no constraint owns (those come with their constraint). */
const INDEXES_SQL = `SELECT pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  WHERE i.indrelid = $1::oid AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
  ORDER BY c.relname`;
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
    const skipped: string[] = [];
    const columns = (await conn.rows(COLUMNS_SQL, [oid!])).map((r) => {
      const expr = r[3] ?? null;
      // A sequence is state of its own, and each shard has its own: a default drawing from one is not carried.
      const fromSequence = expr !== null && /\bnextval\(/i.test(expr);
      if (fromSequence) skipped.push(`the default of column ${r[0]} (${expr})`);
      return { name: r[0]!, type: r[1]!, notNull: r[2] === 'true', default: fromSequence ? null : expr };
    });
    const primaryKey = (await conn.rows(PRIMARY_KEY_SQL, [oid!])).map((r) => r[0]!);
    const constraints: { name: string; definition: string }[] = [];
    for (const [conname, definition, contype] of await conn.rows(CONSTRAINTS_SQL, [oid!])) {
      if (contype === 'f') skipped.push(`the foreign key ${conname} (${definition})`);
      else constraints.push({ name: conname!, definition: definition! });
    }
    const indexes = (await conn.rows(INDEXES_SQL, [oid!])).map((r) => r[0]!);
    const rule = config.tables.get((schema === 'public' ? name! : `${schema}.${name}`) as never) ?? config.tables.get(name! as never);
    const sharded = rule !== undefined && rule.kind !== 'broadcast';
    out.push({ schema: schema!, name: name!, columns, primaryKey, constraints, indexes, notCarried: skipped, sources: sharded ? config.shards.map((s) => s.name) : [config.defaultShard] });
  }
  return out;
}

/** Extensions of the database (plpgsql is always there), by name: an import creates them first, since columns, defaults and indexes may need them. */
export async function readExtensions(conn: ShardCursor): Promise<string[]> {
  return (await conn.rows("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1")).map((r) => r[0]!);
}
