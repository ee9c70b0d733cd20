import type { Node, RangeVar } from 'libpg-query';
import type { ShardGateConfig, TableRule } from '../config/types.js';
import { sgError } from '../errors/catalogue.js';
import { sameShape } from '../planner/relations.js';
import { findRangeVars } from '../sql/ast.js';
import { parseSql } from '../sql/parser.js';
import { quoteIdent } from '../tx/gid.js';
import { qualifiedName, type ExportFunction, type ExportSequence, type ExportTable, type ExportView } from './manifest.js';
import { tableSql } from './plan.js';

/**
 * Statements an import builds from a manifest, each checked with
 * PostgreSQL's grammar before anything runs: exactly one statement of the
 * expected kind naming that object, so an edited definition cannot smuggle in
 * a statement of its own (README.md, "Import"). Builders throw an Error whose
 * message names the object; runImport reports it as importManifest (22023).
 */

/** `schema.name` of an object, quoted. */
function objectSql(o: { readonly schema: string; readonly name: string }): string {
  return `${quoteIdent(o.schema)}.${quoteIdent(o.name)}`;
}

/** The one statement `sql` parses to, as `{ kind: fields }`, or null when it is not exactly one statement of `kind`. */
function oneStatement(sql: string, kind: string): Record<string, unknown> | null {
  try {
    const stmts = parseSql(sql);
    if (stmts.length !== 1) return null;
    const node = (stmts[0]!.stmt as unknown as Record<string, Record<string, unknown> | undefined>)[kind];
    return node ?? null;
  } catch {
    return null;
  }
}

function names(rv: RangeVar | undefined, o: { readonly schema: string; readonly name: string }): boolean {
  return rv !== undefined && rv.relname === o.name && (rv.schemaname ?? 'public') === o.schema;
}

function refuse(what: string, sql: string): never {
  throw new Error(`${what}: its definition does not form the one statement expected: ${sql}`);
}

/** Where the configuration places a table: its rule (null: unlisted, on the default shard), looked up as catalogue.ts does. */
export function ruleOf(config: ShardGateConfig, t: { readonly schema: string; readonly name: string }): TableRule | null {
  return config.tables.get((t.schema === 'public' ? t.name : `${t.schema}.${t.name}`) as never) ?? config.tables.get(t.name as never) ?? null;
}

/** The type serial gives a column of this type (a sequence owned by a serial column is re-created by declaring the column serial again). */
const SERIAL_OF: Readonly<Record<string, string>> = { smallint: 'smallserial', integer: 'serial', bigint: 'bigserial' };

/**
 * The sequences the tables' own CREATE TABLE re-creates, as serial columns
 * do through the proxy (the sequence appears wherever the table is: every
 * shard for a sharded or broadcast table, the default shard for an unlisted
 * one): a sequence owned by its column, named as serial names it
 * (`table_column_seq`, same schema), with the column's integer type, NOT
 * NULL and a default drawing from it. Keyed by `schema.name` of the sequence.
 */
export function serialSequences(tables: readonly ExportTable[], sequences: readonly ExportSequence[]): Map<string, { table: string; column: string }> {
  const out = new Map<string, { table: string; column: string }>();
  for (const s of sequences) {
    const o = s.ownedBy;
    if (o === null || o.schema !== s.schema || s.name !== `${o.table}_${o.column}_seq` || Buffer.byteLength(s.name) > 63) continue;
    const t = tables.find((x) => x.schema === o.schema && x.name === o.table);
    const c = t?.columns.find((x) => x.name === o.column);
    if (t === undefined || c === undefined || SERIAL_OF[c.type] === undefined || !c.notNull) continue;
    if (c.default !== `nextval('${s.name}'::regclass)` && c.default !== `nextval('${s.schema}.${s.name}'::regclass)`) continue;
    out.set(`${s.schema}.${s.name}`, { table: qualifiedName(t), column: c.name });
  }
  return out;
}

/**
 * `CREATE TABLE IF NOT EXISTS` for a table as the export read it: columns,
 * types, defaults, NOT NULL, primary key, CHECK, UNIQUE and EXCLUDE
 * constraints; a column in `serial` is declared serial (its sequence comes
 * with it). Checked to be exactly one CREATE TABLE of that table.
 */
export function createTableSql(t: ExportTable, serial: ReadonlySet<string> = new Set()): string {
  const cols = t.columns.map((c) =>
    serial.has(c.name) ? `${quoteIdent(c.name)} ${SERIAL_OF[c.type]!}` : `${quoteIdent(c.name)} ${c.type}${c.default !== null ? ` DEFAULT ${c.default}` : ''}${c.notNull ? ' NOT NULL' : ''}`,
  );
  const pk = t.primaryKey.length > 0 ? [`PRIMARY KEY (${t.primaryKey.map(quoteIdent).join(', ')})`] : [];
  const constraints = t.constraints.map((c) => `CONSTRAINT ${quoteIdent(c.name)} ${c.definition}`);
  const sql = `CREATE TABLE IF NOT EXISTS ${tableSql(t)} (${[...cols, ...pk, ...constraints].join(', ')})`;
  const node = oneStatement(sql, 'CreateStmt');
  if (node === null || node.if_not_exists !== true || !names(node.relation as RangeVar, t)) {
    throw new Error(`table ${qualifiedName(t)}: its columns or constraints do not form one CREATE TABLE of the table: ${sql}`);
  }
  return sql;
}

/** The table's other indexes as `CREATE [UNIQUE] INDEX IF NOT EXISTS`, each checked to be one CREATE INDEX on the table. */
export function createIndexSql(t: ExportTable): string[] {
  return t.indexes.map((def) => {
    const sql = def.replace(/^CREATE (UNIQUE )?INDEX /, (_m, unique: string | undefined) => `CREATE ${unique ?? ''}INDEX IF NOT EXISTS `);
    const node = oneStatement(sql, 'IndexStmt');
    if (node === null || node.if_not_exists !== true || !names(node.relation as RangeVar, t)) {
      throw new Error(`table ${qualifiedName(t)}: its index definitions do not form one CREATE INDEX of the table: ${sql}`);
    }
    return sql;
  });
}

/** The sequence's options (type, increment, bounds, start, cache, cycle), as CREATE/ALTER SEQUENCE take them; every value was checked as an integer. */
function sequenceOptions(s: ExportSequence): string {
  return `AS ${s.type} INCREMENT BY ${s.increment} MINVALUE ${s.min} MAXVALUE ${s.max} START WITH ${s.start} CACHE ${s.cache} ${s.cycle ? 'CYCLE' : 'NO CYCLE'}`;
}

/** `CREATE SEQUENCE IF NOT EXISTS` with the source's options: run through the engine, it creates the sequence on every shard, as the proxy does. */
export function createSequenceSql(s: ExportSequence): string {
  const sql = `CREATE SEQUENCE IF NOT EXISTS ${objectSql(s)} ${sequenceOptions(s)}`;
  const node = oneStatement(sql, 'CreateSeqStmt');
  if (node === null || !names(node.sequence as RangeVar, s)) refuse(`sequence ${qualifiedName(s)}`, sql);
  return sql;
}

/** `ALTER SEQUENCE IF EXISTS` giving a sequence made by a serial column the source's options (on the shards that have it). */
export function alterSequenceSql(s: ExportSequence): string {
  const sql = `ALTER SEQUENCE IF EXISTS ${objectSql(s)} ${sequenceOptions(s)}`;
  const node = oneStatement(sql, 'AlterSeqStmt');
  if (node === null || !names(node.sequence as RangeVar, s)) refuse(`sequence ${qualifiedName(s)}`, sql);
  return sql;
}

/** `ALTER SEQUENCE IF EXISTS … OWNED BY table.column`, for a sequence created on its own that a column owned in the source. */
export function ownedBySql(s: ExportSequence): string | null {
  if (s.ownedBy === null) return null;
  const sql = `ALTER SEQUENCE IF EXISTS ${objectSql(s)} OWNED BY ${quoteIdent(s.ownedBy.schema)}.${quoteIdent(s.ownedBy.table)}.${quoteIdent(s.ownedBy.column)}`;
  const node = oneStatement(sql, 'AlterSeqStmt');
  if (node === null || !names(node.sequence as RangeVar, s)) refuse(`sequence ${qualifiedName(s)}`, sql);
  return sql;
}

/** `ALTER SEQUENCE IF EXISTS … RESTART WITH next`: the first value nextval returns on every target shard is past every value used at the source. */
export function restartSequenceSql(s: ExportSequence): string | null {
  if (s.next === null) return null;
  const sql = `ALTER SEQUENCE IF EXISTS ${objectSql(s)} RESTART WITH ${s.next}`;
  const node = oneStatement(sql, 'AlterSeqStmt');
  if (node === null || !names(node.sequence as RangeVar, s)) refuse(`sequence ${qualifiedName(s)}`, sql);
  return sql;
}

/** The function as pg_get_functiondef wrote it (CREATE OR REPLACE, so a rerun replaces it with itself), checked to be one CREATE FUNCTION/PROCEDURE of that name. */
export function createFunctionSql(f: ExportFunction): string {
  const node = oneStatement(f.definition, 'CreateFunctionStmt');
  const parts = ((node?.funcname as Node[] | undefined) ?? []).map((n) => ('String' in n ? n.String.sval : undefined));
  const ok = node !== null && node.replace === true && parts[parts.length - 1] === f.name && (parts.length === 1 ? 'public' : parts[parts.length - 2]) === f.schema;
  if (!ok) refuse(`function ${qualifiedName(f)}`, f.definition);
  return f.definition;
}

/**
 * A view as `CREATE OR REPLACE VIEW … AS` its SELECT, a materialized view as
 * `CREATE MATERIALIZED VIEW IF NOT EXISTS … AS` its SELECT (filled from the
 * imported rows); each checked to be that one statement, naming that view.
 */
export function createViewSql(v: ExportView): string {
  const body = v.definition.trim().replace(/;$/, '');
  if (v.materialized) {
    const sql = `CREATE MATERIALIZED VIEW IF NOT EXISTS ${objectSql(v)} AS ${body}`;
    const node = oneStatement(sql, 'CreateTableAsStmt');
    const into = node?.into as { rel?: RangeVar } | undefined;
    if (node === null || node.objtype !== 'OBJECT_MATVIEW' || node.if_not_exists !== true || !names(into?.rel, v)) refuse(`materialized view ${qualifiedName(v)}`, sql);
    return sql;
  }
  const sql = `CREATE OR REPLACE VIEW ${objectSql(v)} AS ${body}`;
  const node = oneStatement(sql, 'ViewStmt');
  if (node === null || node.replace !== true || !names(node.view as RangeVar, v)) refuse(`view ${qualifiedName(v)}`, sql);
  return sql;
}

/** `ALTER TABLE … ADD CONSTRAINT name FOREIGN KEY …`, checked to be one such command on the table, referencing the table the manifest names. */
export function addForeignKeySql(t: ExportTable, fk: ExportTable['foreignKeys'][number]): string {
  const sql = `ALTER TABLE ${tableSql(t)} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.definition}`;
  const node = oneStatement(sql, 'AlterTableStmt');
  const cmds = (node?.cmds as Node[] | undefined) ?? [];
  const cmd = cmds.length === 1 && 'AlterTableCmd' in cmds[0]! ? cmds[0].AlterTableCmd : undefined;
  const c = cmd?.subtype === 'AT_AddConstraint' && cmd.def !== undefined && 'Constraint' in cmd.def ? cmd.def.Constraint : undefined;
  const ok = node !== null && names(node.relation as RangeVar, t) && c?.contype === 'CONSTR_FOREIGN' && c.conname === fk.name && names(c.pktable, fk.references);
  if (!ok) refuse(`foreign key ${fk.name} of table ${qualifiedName(t)}`, sql);
  return sql;
}

/** The trigger as pg_get_triggerdef wrote it, checked to be one CREATE TRIGGER of that name on the table. */
export function createTriggerSql(t: ExportTable, tg: ExportTable['triggers'][number]): string {
  const node = oneStatement(tg.definition, 'CreateTrigStmt');
  if (node === null || node.trigname !== tg.name || !names(node.relation as RangeVar, t)) refuse(`trigger ${tg.name} of table ${qualifiedName(t)}`, tg.definition);
  return tg.definition;
}

/**
 * Why the target's rules cannot enforce a foreign key, or null when they
 * can. Each shard checks a foreign key among its own rows only, so it holds
 * for the whole table exactly when every referenced row a child row needs is
 * on the child row's shard: the referenced table is broadcast (a full copy
 * everywhere) and the child is sharded or broadcast; both are unlisted (one
 * shard); or both are sharded the same way (sameShape) and the key column of
 * the child is matched to the key column of the referenced table. Tables
 * placed differently (one unlisted, one not) are what the DDL router refuses.
 */
export function foreignKeyUnenforceable(config: ShardGateConfig, t: ExportTable, fk: ExportTable['foreignKeys'][number]): string | null {
  const child = ruleOf(config, t);
  const parent = ruleOf(config, fk.references);
  const where = (r: TableRule | null): string => (r === null ? 'unlisted (on the default shard only)' : r.kind === 'broadcast' ? 'broadcast' : `sharded by ${r.key}`);
  const placed = `${qualifiedName(t)} is ${where(child)} and ${qualifiedName(fk.references)} ${where(parent)} on the target`;
  if (child === null && parent === null) return null;
  if (child === null || parent === null) return `${placed}, and the target does not run one statement on tables placed that differently`;
  if (parent.kind === 'broadcast') return null;
  if (child.kind === 'broadcast') return `${placed}: a full copy on every shard cannot refer to rows spread over the shards`;
  if (!sameShape(child, parent)) return `${placed} with different rules, so equal keys can land on different shards`;
  const at = fk.columns.indexOf(child.key);
  if (at < 0 || fk.referencedColumns[at] !== parent.key) return `${placed}, and the foreign key does not match ${child.key} to ${parent.key}, so a row and the row it refers to can be on different shards`;
  return null;
}

/**
 * Why the target's DDL router would refuse the view, or null (ddl-router.ts:
 * a view over sharded tables must itself be listed as sharded, a
 * materialized view over sharded tables is refused, and a statement naming
 * tables placed on every shard and tables of the default shard only is
 * refused; the view's own name counts). Checked before anything runs, so an
 * import does not load every row and then stop at a view.
 */
export function viewUnplaceable(config: ShardGateConfig, v: ExportView, sql: string): string | null {
  const stmts = parseSql(sql);
  const over = findRangeVars(stmts[0]!.stmt).filter((rv) => !names(rv, v) && rv.schemaname !== 'pg_catalog' && rv.schemaname !== 'information_schema');
  const placed = (o: { readonly schema: string; readonly name: string }): string => {
    const r = ruleOf(config, o);
    return r === null ? 'unlisted' : r.kind === 'broadcast' ? 'broadcast' : 'sharded';
  };
  const tables = over.map((rv) => ({ name: rv.relname ?? '', placement: placed({ schema: rv.schemaname ?? 'public', name: rv.relname ?? '' }) }));
  const own = placed(v);
  const sharded = tables.find((t) => t.placement === 'sharded');
  if (sharded !== undefined && v.materialized) return `it reads the sharded table ${sharded.name}, and a materialized view over sharded tables has no place on the target`;
  if (sharded !== undefined && own !== 'sharded') return `it reads the sharded table ${sharded.name}, and a view over sharded tables must itself be listed in the target's \`tables:\` with the same sharding key`;
  const all = [{ name: v.name, placement: own }, ...tables];
  if (all.some((t) => t.placement === 'unlisted') && all.some((t) => t.placement !== 'unlisted')) {
    return `the target places it and the tables it reads differently (${all.map((t) => `${t.name}: ${t.placement}`).join(', ')})`;
  }
  return null;
}

/** Throws importForeignKey for the first foreign key the target cannot enforce, unless `skip`: then returns those left out, for the warning. */
export function checkForeignKeys(config: ShardGateConfig, tables: readonly ExportTable[], skip: boolean): Set<string> {
  const skipped = new Set<string>();
  for (const t of tables) {
    for (const fk of t.foreignKeys) {
      const why = foreignKeyUnenforceable(config, t, fk);
      if (why === null) continue;
      if (!skip) throw sgError('importForeignKey', { name: fk.name, table: qualifiedName(t), reason: why });
      skipped.add(`${qualifiedName(t)}.${fk.name}: ${why}`);
    }
  }
  return skipped;
}

/** Throws importUnplaceable for the first view the target's rules would refuse. */
export function checkViews(config: ShardGateConfig, views: readonly { view: ExportView; sql: string }[]): void {
  for (const { view, sql } of views) {
    const why = viewUnplaceable(config, view, sql);
    if (why !== null) {
      throw sgError('importUnplaceable', { what: `the ${view.materialized ? 'materialized view' : 'view'} ${qualifiedName(view)}`, reason: why, hint: "List the view in the target's `tables:` as the tables it reads are (sharded with the same key, or broadcast), or leave it and them unlisted." });
    }
  }
}
