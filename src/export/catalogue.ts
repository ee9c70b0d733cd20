import type { ShardGateConfig } from '../config/types.js';
import type { ShardCursor } from '../engine/shard-cursor.js';
import { quoteIdent, quoteLiteral } from '../tx/gid.js';
import type { ExportFunction, ExportSequence, ExportTable, ExportView } from './manifest.js';

/** Schemas that hold ShardGate's own bookkeeping, never exported. */
export const OWN_SCHEMAS = ['shardgate', 'shardgate_import'] as const;

/** The user's schemas: neither PostgreSQL's nor ShardGate's ($1 is OWN_SCHEMAS as an array). */
const USER_SCHEMA = `n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> ALL ($1::text[])`;
/** The object (of catalog `cls`, oid `oid`) belongs to an extension: CREATE EXTENSION makes it, so it is not carried on its own. */
const notInExtension = (cls: string, oid: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${cls}'::regclass AND e.objid = ${oid} AND e.deptype = 'e')`;

const TABLES_SQL = `SELECT n.nspname, c.relname, c.oid::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ${USER_SCHEMA}
  ORDER BY 1, 2`;

// Each query below reads one kind of definition for every table at once ($2: the tables' oids), so a
// catalogue of thousands of tables costs a handful of round trips, not several per table.
const COLUMNS_SQL = `SELECT a.attrelid::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  ORDER BY a.attrelid, a.attnum`;
const PRIMARY_KEY_SQL = `SELECT i.indrelid::text, a.attname
  FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indrelid = ANY ($1::oid[]) AND i.indisprimary ORDER BY i.indrelid, k.ord`;
/** CHECK, UNIQUE, EXCLUDE and FOREIGN KEY constraints (the primary key is carried as such); for a foreign key its columns and the table it references. */
const CONSTRAINTS_SQL = `SELECT k.conrelid::text, k.conname, pg_get_constraintdef(k.oid), k.contype::text, fn.nspname, fc.relname,
    to_json(ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(n, o) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o))::text,
    to_json(ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY AS u(n, o) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o))::text
  FROM pg_constraint k LEFT JOIN pg_class fc ON fc.oid = k.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
  WHERE k.conrelid = ANY ($1::oid[]) AND k.contype IN ('c', 'u', 'x', 'f') ORDER BY k.conrelid, k.conname`;
/** Indexes that no constraint owns (those come with their constraint). */
const INDEXES_SQL = `SELECT i.indrelid::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  WHERE i.indrelid = ANY ($1::oid[]) AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
  ORDER BY i.indrelid, c.relname`;
/** The user's triggers (foreign keys' own triggers are internal and come with the constraint). */
const TRIGGERS_SQL = `SELECT t.tgrelid::text, t.tgname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t WHERE t.tgrelid = ANY ($1::oid[]) AND NOT t.tgisinternal ORDER BY t.tgrelid, t.tgname`;

/**
 * Sequences with their options and, for one owned by a column (serial,
 * OWNED BY), that column. Identity sequences are left out: they belong to
 * their column's identity, which is not carried (a warning says so).
 */
const SEQUENCES_SQL = `SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart::text, s.seqincrement::text, s.seqmin::text, s.seqmax::text,
    s.seqcache::text, s.seqcycle::text, on_.nspname, oc.relname, oa.attname
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype = 'a'
  LEFT JOIN pg_class oc ON oc.oid = d.refobjid LEFT JOIN pg_namespace on_ ON on_.oid = oc.relnamespace
  LEFT JOIN pg_attribute oa ON oa.attrelid = d.refobjid AND oa.attnum = d.refobjsubid
  WHERE ${USER_SCHEMA} AND ${notInExtension('pg_class', 'c.oid')}
    AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_class'::regclass AND i.objid = c.oid AND i.deptype = 'i')
  ORDER BY 1, 2`;
/** Views and materialized views, in creation (oid) order, so one built on another comes after it. */
const VIEWS_SQL = `SELECT n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMA} AND ${notInExtension('pg_class', 'c.oid')}
  ORDER BY c.oid`;
/** Functions and procedures of the database (not of an extension); only SQL and PL/pgSQL ones are carried. */
const FUNCTIONS_SQL = `SELECT n.nspname, p.proname, l.lanname, p.prokind::text, CASE WHEN l.lanname IN ('sql', 'plpgsql') AND p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END,
    EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[] || p.prorettype || coalesce(p.proallargtypes, '{}')) AS a(t) JOIN pg_type ty ON ty.oid = a.t OR ty.typarray = a.t WHERE ty.typrelid <> 0)::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
  WHERE ${USER_SCHEMA} AND ${notInExtension('pg_proc', 'p.oid')}
  ORDER BY p.oid`;

/** Groups rows by their first column (a table's oid). */
function byOid(rows: readonly (string | null)[][]): Map<string, (string | null)[][]> {
  const out = new Map<string, (string | null)[][]>();
  for (const r of rows) {
    const list = out.get(r[0]!) ?? [];
    list.push(r);
    out.set(r[0]!, list);
  }
  return out;
}

/**
 * Every table of the fleet, read on the default shard (the home of every
 * table: sharded tables exist on each shard, unlisted ones only there) under
 * the cut's snapshot: its columns (generated ones left out, as COPY of a
 * query would compute them), defaults (those drawing from a sequence
 * included: the sequence is carried too), primary key, CHECK, UNIQUE,
 * EXCLUDE and foreign-key constraints, other indexes and triggers, and the
 * shards its rows are on (every shard when the configuration shards it by a
 * key, else the default shard: a broadcast table's copies are equal, so one
 * is read). One query per kind of definition, whatever the number of tables.
 */
export async function readTables(conn: ShardCursor, config: ShardGateConfig): Promise<ExportTable[]> {
  const own = `{${OWN_SCHEMAS.join(',')}}`;
  const tables = await conn.rows(TABLES_SQL, [own]);
  const oids = `{${tables.map((t) => t[2]!).join(',')}}`;
  const [columns, keys, constraints, indexes, triggers] = [
    byOid(await conn.rows(COLUMNS_SQL, [oids])),
    byOid(await conn.rows(PRIMARY_KEY_SQL, [oids])),
    byOid(await conn.rows(CONSTRAINTS_SQL, [oids])),
    byOid(await conn.rows(INDEXES_SQL, [oids])),
    byOid(await conn.rows(TRIGGERS_SQL, [oids])),
  ];
  const out: ExportTable[] = [];
  for (const [schema, name, oid] of tables) {
    const skipped: string[] = [];
    const cols = (columns.get(oid!) ?? []).map((r) => {
      if (r[5] !== '') skipped.push(`the identity of column ${r[1]} (GENERATED ${r[5] === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY; its values are carried)`);
      return { name: r[1]!, type: r[2]!, notNull: r[3] === 'true', default: r[4] ?? null };
    });
    const checks: { name: string; definition: string }[] = [];
    const foreignKeys: ExportTable['foreignKeys'][number][] = [];
    for (const [, conname, definition, contype, refSchema, refName, cols1, cols2] of constraints.get(oid!) ?? []) {
      if (contype === 'f') {
        foreignKeys.push({ name: conname!, definition: definition!, columns: JSON.parse(cols1!) as string[], references: { schema: refSchema!, name: refName! }, referencedColumns: JSON.parse(cols2!) as string[] });
      } else checks.push({ name: conname!, definition: definition! });
    }
    const rule = config.tables.get((schema === 'public' ? name! : `${schema}.${name}`) as never) ?? config.tables.get(name! as never);
    const sharded = rule !== undefined && rule.kind !== 'broadcast';
    out.push({
      schema: schema!,
      name: name!,
      columns: cols,
      primaryKey: (keys.get(oid!) ?? []).map((r) => r[1]!),
      constraints: checks,
      foreignKeys,
      indexes: (indexes.get(oid!) ?? []).map((r) => r[1]!),
      triggers: (triggers.get(oid!) ?? []).map((r) => ({ name: r[1]!, definition: r[2]! })),
      notCarried: skipped,
      sources: sharded ? config.shards.map((s) => s.name) : [config.defaultShard],
    });
  }
  return out;
}

/** Extensions of the database (plpgsql is always there), by name: an import creates them first, since columns, defaults and indexes may need them. */
export async function readExtensions(conn: ShardCursor): Promise<string[]> {
  return (await conn.rows("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1")).map((r) => r[0]!);
}

/** Views and materialized views (their SELECT as pg_get_viewdef writes it), in creation order. */
export async function readViews(conn: ShardCursor): Promise<ExportView[]> {
  return (await conn.rows(VIEWS_SQL, [`{${OWN_SCHEMAS.join(',')}}`])).map((r) => ({ schema: r[0]!, name: r[1]!, materialized: r[2] === 'm', definition: r[3]! }));
}

/**
 * SQL and PL/pgSQL functions and procedures (pg_get_functiondef), in
 * creation order, each marked when its signature names a table's row type
 * (it can only be created once the tables are); `others` names those in other languages and aggregates,
 * which are not carried.
 */
export async function readFunctions(conn: ShardCursor): Promise<{ functions: ExportFunction[]; others: string[] }> {
  const functions: ExportFunction[] = [];
  const others: string[] = [];
  for (const [schema, name, language, kind, definition, rowType] of await conn.rows(FUNCTIONS_SQL, [`{${OWN_SCHEMAS.join(',')}}`])) {
    if (definition === null || definition === undefined) others.push(`the ${kind === 'a' ? 'aggregate' : kind === 'w' ? 'window function' : `${language} function`} ${schema}.${name}`);
    else functions.push({ schema: schema!, name: name!, definition, afterTables: rowType === 'true' });
  }
  return { functions, others };
}

/** A sequence's definition as the default shard has it (positions are read on every shard: readSequencePositions). */
export async function readSequences(conn: ShardCursor): Promise<Omit<ExportSequence, 'next'>[]> {
  return (await conn.rows(SEQUENCES_SQL, [`{${OWN_SCHEMAS.join(',')}}`])).map((r) => ({
    schema: r[0]!,
    name: r[1]!,
    type: r[2] as ExportSequence['type'],
    start: r[3]!,
    increment: r[4]!,
    min: r[5]!,
    max: r[6]!,
    cache: r[7]!,
    cycle: r[8] === 'true',
    ownedBy: r[9] === null || r[9] === undefined ? null : { schema: r[9], table: r[10]!, column: r[11]! },
  }));
}

/** Sequences read per statement when reading positions (each is one SELECT in a UNION ALL). */
const SEQUENCES_PER_QUERY = 500;

/**
 * Each sequence's position on one shard, as `schema.name` → the value its
 * next nextval would return there (for a sequence never used there, its
 * last_value as setval or START left it, since is_called is false). Sequence
 * state is not transactional in PostgreSQL: this reads the position now,
 * never lower than at the cut, which is what a restore needs (no value used
 * before the cut is handed out again).
 */
export async function readSequencePositions(conn: ShardCursor): Promise<Map<string, bigint>> {
  const list = await conn.rows(`SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND ${USER_SCHEMA} ORDER BY 1, 2`, [`{${OWN_SCHEMAS.join(',')}}`]);
  const out = new Map<string, bigint>();
  for (let at = 0; at < list.length; at += SEQUENCES_PER_QUERY) {
    const part = list.slice(at, at + SEQUENCES_PER_QUERY);
    const sql = part
      .map(([s, n]) => `SELECT ${quoteLiteral(`${s}.${n}`)}, last_value::text, is_called::text, (SELECT seqincrement::text FROM pg_sequence WHERE seqrelid = ${quoteLiteral(`${quoteIdent(s!)}.${quoteIdent(n!)}`)}::regclass) FROM ${quoteIdent(s!)}.${quoteIdent(n!)}`)
      .join(' UNION ALL ');
    for (const [name, last, called, increment] of await conn.rows(sql)) {
      out.set(name!, called === 'true' ? BigInt(last!) + BigInt(increment!) : BigInt(last!));
    }
  }
  return out;
}
