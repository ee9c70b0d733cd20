import { join } from 'node:path';
import { sgError } from '../errors/catalogue.js';
import type { Queryable, ShardGate } from '../library/shard-gate.js';
import { PgError } from '../errors/index.js';
import { quoteIdent } from '../tx/gid.js';
import { chunkBytes, readVerified } from './chunk-file.js';
import { parseCsv } from './csv.js';
import { qualifiedName, readManifest, type ExportChunk, type ExportManifest, type ExportTable } from './manifest.js';
import { tableSql } from './plan.js';
import { initParser } from '../sql/parser.js';
import type { ShardGateConfig } from '../config/types.js';
import {
  addForeignKeySql, alterSequenceSql, checkForeignKeys, checkViews, createFunctionSql, createIndexSql, createSequenceSql, createTableSql, createTriggerSql,
  createViewSql, foreignKeyUnenforceable, ownedBySql, restartSequenceSql, ruleOf, serialSequences,
} from './definitions.js';

/** Where an import records the chunks it loaded, in the target (on its default shard). */
const DONE_TABLE = 'shardgate_import.chunks';

/** Parameters per INSERT: PostgreSQL takes at most 65535; fewer keep each statement small. */
const PARAMS_PER_INSERT = 30_000;

/** Options of `runImport`. */
export interface ImportOptions {
  readonly dir: string;
  readonly jobs: number;
  /** The target's configuration (the one `gate` was opened with): its rules decide which foreign keys and views can be placed. */
  readonly config: ShardGateConfig;
  /** Load without the foreign keys the target cannot enforce (each named in a warning) instead of refusing. */
  readonly skipUnenforceableForeignKeys?: boolean;
  readonly say: (line: string) => void;
}

/** Every statement an import runs besides the rows, built and checked from the manifest before the first one runs. */
interface SchemaPlan {
  readonly functions: string[];
  /** Functions over a table's row type, created once the tables are. */
  readonly rowFunctions: string[];
  /** Sequences created on their own (every shard), before the tables whose defaults draw from them. */
  readonly sequences: string[];
  readonly tables: { table: string; indexes: string[] }[];
  /** After the tables: options of the sequences serial columns made, and OWNED BY of those created on their own. */
  readonly sequenceOptions: string[];
  /** After the rows: each sequence's restart, recorded once per cut. */
  readonly restarts: { id: string; sql: string }[];
  readonly foreignKeys: { table: ExportTable; name: string; sql: string }[];
  readonly views: string[];
  readonly triggers: { table: ExportTable; name: string; sql: string }[];
}

/**
 * Builds and checks every definition of the manifest (definitions.ts), and
 * decides what the target's rules can hold: a foreign key they cannot
 * enforce is refused (importForeignKey) or, when asked, left out with a
 * warning; a view they would refuse is refused here, before any row moves.
 */
function planSchema(manifest: ExportManifest, opts: ImportOptions): SchemaPlan {
  const serial = serialSequences(manifest.tables, manifest.sequences);
  const serialColumns = (t: ExportTable): Set<string> => new Set([...serial.values()].filter((s) => s.table === qualifiedName(t)).map((s) => s.column));
  const own = manifest.sequences.filter((s) => !serial.has(qualifiedName(s)));
  const skipped = checkForeignKeys(opts.config, manifest.tables, opts.skipUnenforceableForeignKeys === true);
  for (const why of skipped) opts.say(`shardgate import: WARNING: foreign key ${why}: left out as asked (--skip-unenforceable-foreign-keys); the target does not check it`);
  const views = manifest.views.map((view) => ({ view, sql: createViewSql(view) }));
  checkViews(opts.config, views);
  return {
    functions: manifest.functions.filter((f) => !f.afterTables).map(createFunctionSql),
    rowFunctions: manifest.functions.filter((f) => f.afterTables).map(createFunctionSql),
    sequences: own.map(createSequenceSql),
    tables: manifest.tables.map((t) => ({ table: createTableSql(t, serialColumns(t)), indexes: createIndexSql(t) })),
    sequenceOptions: [
      ...manifest.sequences.filter((s) => serial.has(qualifiedName(s))).map(alterSequenceSql),
      // OWNED BY runs on every shard: only where the owning table is on every shard too (the sequence then lives with it as the proxy would place it).
      ...own.filter((s) => s.ownedBy !== null && ruleOf(opts.config, { schema: s.ownedBy.schema, name: s.ownedBy.table }) !== null).map((s) => ownedBySql(s)!),
    ],
    restarts: manifest.sequences.flatMap((s) => {
      const sql = restartSequenceSql(s);
      return sql === null ? [] : [{ id: `sequence ${qualifiedName(s)}`, sql }];
    }),
    foreignKeys: manifest.tables.flatMap((t) => t.foreignKeys.filter((fk) => foreignKeyUnenforceable(opts.config, t, fk) === null).map((fk) => ({ table: t, name: fk.name, sql: addForeignKeySql(t, fk) }))),
    views: views.map((v) => v.sql),
    triggers: manifest.tables.flatMap((t) => t.triggers.map((tg) => ({ table: t, name: tg.name, sql: createTriggerSql(t, tg) }))),
  };
}

/** What an import did. */
export interface ImportResult {
  readonly cutId: string;
  readonly chunks: number;
  /** Chunks loaded by this run (the others were loaded by an earlier one). */
  readonly loaded: number;
  readonly rows: number;
  readonly ms: number;
}

/**
 * `shardgate import DIR`: loads a complete export through ShardGate's engine
 * (`gate`), so the target's own rules place every row, whatever its shard
 * count. Each chunk is checked against the manifest's checksum and row count
 * before anything of it is sent, then loaded in one transaction together with
 * its row in shardgate_import.chunks: a chunk is loaded wholly or not at all,
 * and a rerun skips exactly the chunks recorded there (README.md, "Import").
 * Rows go in with COPY; a chunk meeting keys the target already has is
 * loaded with INSERT … ON CONFLICT DO NOTHING instead (tables with a key).
 */
export async function runImport(gate: ShardGate, opts: ImportOptions): Promise<ImportResult> {
  const started = performance.now();
  const manifest = await readManifest(opts.dir).catch((err: Error) => {
    throw sgError('importManifest', { dir: opts.dir, reason: err.message });
  });
  if (manifest === null) throw sgError('importManifest', { dir: opts.dir, reason: 'it has no manifest.json' });
  if (!manifest.complete) throw sgError('importManifest', { dir: opts.dir, reason: 'the export did not finish; resume it (shardgate export --out with the same folder) first' });

  await initParser();
  // Every statement is built and checked before the first one runs.
  let plan: SchemaPlan;
  try {
    plan = planSchema(manifest, opts);
  } catch (err) {
    if (err instanceof PgError) throw err;
    throw sgError('importManifest', { dir: opts.dir, reason: (err as Error).message });
  }
  const schemas = new Set([...manifest.tables, ...manifest.sequences, ...manifest.views, ...manifest.functions].map((o) => o.schema));
  for (const schema of schemas) if (schema !== 'public') await gate.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  for (const ext of manifest.extensions) await gate.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(ext)}`);
  // A function body may name tables created later (as pg_dump restores, bodies are checked when they run, not now).
  await gate.query('SET check_function_bodies = off');
  for (const sql of plan.functions) await gate.query(sql);
  for (const sql of plan.sequences) await gate.query(sql);
  for (const c of plan.tables) await gate.query(c.table);
  for (const sql of plan.rowFunctions) await gate.query(sql);
  await gate.query('RESET check_function_bodies');
  for (const sql of plan.sequenceOptions) await gate.query(sql);
  await gate.query('CREATE SCHEMA IF NOT EXISTS shardgate_import');
  await gate.query(`CREATE TABLE IF NOT EXISTS ${DONE_TABLE} (cut_id text NOT NULL, chunk text NOT NULL, rows bigint NOT NULL, PRIMARY KEY (cut_id, chunk))`);
  const done = new Set((await gate.query<{ chunk: string }>(`SELECT chunk FROM ${DONE_TABLE} WHERE cut_id = $1`, [manifest.cutId])).rows.map((r) => r.chunk));

  const tables = new Map(manifest.tables.map((t) => [qualifiedName(t), t]));
  const todo = manifest.chunks.filter((c) => !done.has(c.id));
  let rows = 0;
  let loaded = 0;
  let lastSaid = 0;
  let next = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop && next < todo.length) {
      const c = todo[next++]!;
      try {
        rows += await loadChunk(gate, manifest.cutId, tables.get(c.table)!, c, opts.dir);
      } catch (err) {
        stop = true;
        throw err;
      }
      loaded++;
      if (performance.now() - lastSaid > 1000) {
        lastSaid = performance.now();
        opts.say(`shardgate import: ${done.size + loaded}/${manifest.chunks.length} chunks, ${rows} rows`);
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(opts.jobs, todo.length)) }, worker));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  for (const c of plan.tables) for (const index of c.indexes) await gate.query(index);
  await finishSchema(gate, manifest.cutId, plan);
  opts.say(`shardgate import: ${manifest.chunks.length}/${manifest.chunks.length} chunks, ${rows} rows loaded by this run`);
  return { cutId: manifest.cutId, chunks: manifest.chunks.length, loaded, rows, ms: performance.now() - started };
}

/**
 * What comes after the rows, each step safe to run again: sequence restarts
 * (each in one transaction with its record, so it happens once per cut and a
 * rerun never moves a sequence back below values the target handed out
 * since), foreign keys (checked against every row once, cheaper than row by
 * row, and only now that both tables are complete), views (materialized ones
 * filled from the imported rows), and triggers last (the rows were loaded
 * as they were at the source, not passed through triggers again).
 */
async function finishSchema(gate: ShardGate, cutId: string, plan: SchemaPlan): Promise<void> {
  const done = new Set((await gate.query<{ chunk: string }>(`SELECT chunk FROM ${DONE_TABLE} WHERE cut_id = $1`, [cutId])).rows.map((r) => r.chunk));
  for (const r of plan.restarts) {
    if (done.has(r.id)) continue;
    await gate.transaction(async (tx) => {
      await tx.query(r.sql);
      await recordChunk(tx, cutId, r.id, 0);
    });
  }
  // The default shard has every table of the target (sharded and broadcast ones are on every shard): what exists there exists wherever the table is.
  const existing = await gate.query<{ rel: string; name: string }>(
    `SELECT n.nspname || '.' || c.relname AS rel, k.conname AS name FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'f'
     UNION ALL SELECT n.nspname || '.' || c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal`,
  );
  const has = new Set(existing.rows.map((r) => `${r.rel} ${r.name}`));
  for (const fk of plan.foreignKeys) if (!has.has(`${qualifiedName(fk.table)} ${fk.name}`)) await gate.query(fk.sql);
  for (const sql of plan.views) await gate.query(sql);
  for (const tg of plan.triggers) if (!has.has(`${qualifiedName(tg.table)} ${tg.name}`)) await gate.query(tg.sql);
}

/**
 * Verifies one chunk file, then loads it and records it in one transaction;
 * returns its row count. The rows go in with COPY (routed row by row by the
 * engine); when the target already holds some of their keys (23505), that
 * transaction rolls back and the chunk is loaded again with INSERT … ON
 * CONFLICT DO NOTHING, so loading stays idempotent on the primary key.
 */
async function loadChunk(gate: ShardGate, cutId: string, t: ExportTable, c: ExportChunk, dir: string): Promise<number> {
  const file = join(dir, c.file);
  const check = await readVerified(dir, c.file, c.sha256 ?? '');
  if (!check.ok) throw sgError('importChecksum', { file, reason: check.reason });
  let csv: Buffer;
  try {
    csv = await chunkBytes(check.data);
  } catch (err) {
    throw sgError('importChecksum', { file, reason: (err as Error).message });
  }
  const columns = t.columns.map((col) => quoteIdent(col.name)).join(', ');
  try {
    return await gate.transaction(async (tx) => {
      const copied = await tx.copyFrom(`COPY ${tableSql(t)} (${columns}) FROM STDIN WITH (FORMAT csv)`, csv);
      // Rolls the chunk back: its rows are not what the manifest counted.
      if (copied !== c.rows) throw sgError('importChecksum', { file, reason: `${copied} rows, the manifest says ${c.rows}` });
      await recordChunk(tx, cutId, c.id, copied);
      return copied;
    });
  } catch (err) {
    if (!(err instanceof PgError) || err.code !== '23505' || t.primaryKey.length === 0) throw err;
  }
  return insertChunk(gate, cutId, t, c, file, csv);
}

/** Loads a verified chunk with multi-row INSERT … ON CONFLICT DO NOTHING (rows the target has are skipped). */
async function insertChunk(gate: ShardGate, cutId: string, t: ExportTable, c: ExportChunk, file: string, csv: Buffer): Promise<number> {
  let records: (string | null)[][];
  try {
    records = parseCsv(csv.toString('utf8'));
  } catch (err) {
    throw sgError('importChecksum', { file, reason: (err as Error).message });
  }
  if (records.length !== c.rows) throw sgError('importChecksum', { file, reason: `${records.length} rows, the manifest says ${c.rows}` });
  const width = t.columns.length;
  const bad = records.findIndex((r) => r.length !== width);
  if (bad >= 0) throw sgError('importChecksum', { file, reason: `row ${bad + 1} has ${records[bad]!.length} fields, the table ${width} columns` });

  const head = `INSERT INTO ${tableSql(t)} (${t.columns.map((col) => quoteIdent(col.name)).join(', ')}) VALUES `;
  const perInsert = Math.max(1, Math.floor(PARAMS_PER_INSERT / Math.max(width, 1)));
  await gate.transaction(async (tx) => {
    for (let at = 0; at < records.length; at += perInsert) {
      const batch = records.slice(at, at + perInsert);
      const values = batch.map((_, r) => `(${Array.from({ length: width }, (_c, k) => `$${r * width + k + 1}`).join(', ')})`).join(', ');
      await tx.query(`${head}${values} ON CONFLICT DO NOTHING`, batch.flat());
    }
    await recordChunk(tx, cutId, c.id, records.length);
  });
  return records.length;
}

/** The chunk's row in shardgate_import.chunks, in the transaction of its rows: recorded exactly when they are committed. */
async function recordChunk(tx: Queryable, cutId: string, chunk: string, rows: number): Promise<void> {
  await tx.query(`INSERT INTO ${DONE_TABLE} (cut_id, chunk, rows) VALUES ($1, $2, $3)`, [cutId, chunk, String(rows)]);
}
