import type { MergeSpec } from '../planner/plan.js';
import { hasCombinedExpressions } from '../planner/plan.js';
import type { TextRules } from './values.js';
import type { ShardCursor } from './shard-cursor.js';

/**
 * One catalog read per shard: whether the database's default collation and
 * every collation a user column or domain carries order text as UTF-8
 * bytes (libc "C"/"POSIX", or a builtin code-point collation), and whether
 * they are all deterministic. OIDs below 16384 are the system catalogs'.
 */
const CENSUS_SQL = `WITH used AS (
  SELECT a.attcollation AS coll FROM pg_catalog.pg_attribute a
   WHERE a.attrelid >= 16384 AND a.attcollation NOT IN (0, 100) AND NOT a.attisdropped
  UNION
  SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid >= 16384 AND t.typcollation NOT IN (0, 100)
)
SELECT
  (SELECT (d.datlocprovider = 'c' AND d.datcollate IN ('C', 'POSIX')) OR d.datlocprovider = 'b'
     FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()),
  NOT EXISTS (SELECT 1 FROM used JOIN pg_catalog.pg_collation c ON c.oid = used.coll
               WHERE NOT (c.collprovider = 'b' OR (c.collprovider = 'c' AND c.collcollate IN ('C', 'POSIX')))),
  NOT EXISTS (SELECT 1 FROM used JOIN pg_catalog.pg_collation c ON c.oid = used.coll WHERE NOT c.collisdeterministic)`;

/** Whether merging by `spec` may compare values (ordering, grouping, DISTINCT, min/max, HAVING), so text rules matter. */
export function specComparesValues(spec: MergeSpec): boolean {
  const agg = spec.aggregate;
  // PostgreSQL compares everything on the final step (or, without a compute connection, the merge refuses the spec).
  if (hasCombinedExpressions(spec)) return false;
  if (spec.orderBy.length > 0 || spec.distinct) return true;
  if (agg === null) return false;
  return agg.groupBy.length > 0 || agg.having !== null || agg.columns.some((c) => c.kind === 'min' || c.kind === 'max');
}

/**
 * What the merge may assume about text on these shards, read from each
 * shard's catalog on the statement's own connections (so a transaction's
 * own uncommitted DDL counts): text orders as bytes only when every shard's
 * default collation and every user column's and domain's collation does,
 * and compares equal as bytes only when all of them are deterministic (a
 * database default always is). The shards must agree, or nothing is assumed.
 */
export async function shardTextRules(conns: readonly ShardCursor[]): Promise<TextRules> {
  const answers = await Promise.all(conns.map((c) => c.rows(CENSUS_SQL)));
  let order = true;
  let equality = true;
  for (const rows of answers) {
    const row = rows[0] ?? [];
    if (row[0] !== 't' || row[1] !== 't') order = false;
    if (row[2] !== 't') equality = false;
  }
  return { order, equality };
}
