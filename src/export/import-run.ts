import { join } from 'node:path';
import { sgError } from '../errors/catalogue.js';
import type { Queryable, ShardGate } from '../library/shard-gate.js';
import { PgError } from '../errors/index.js';
import { quoteIdent } from '../tx/gid.js';
import { chunkBytes, readVerified } from './chunk-file.js';
import { parseCsv } from './csv.js';
import { qualifiedName, readManifest, type ExportChunk, type ExportTable } from './manifest.js';
import { tableSql } from './plan.js';
import { initParser, parseSql } from '../sql/parser.js';

/** Where an import records the chunks it loaded, in the target (on its default shard). */
const DONE_TABLE = 'shardgate_import.chunks';

/** Parameters per INSERT: PostgreSQL takes at most 65535; fewer keep each statement small. */
const PARAMS_PER_INSERT = 30_000;

/** Options of `runImport`. */
export interface ImportOptions {
  readonly dir: string;
  readonly jobs: number;
  readonly say: (line: string) => void;
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
 * `CREATE TABLE IF NOT EXISTS` for a table as the export read it: columns,
 * types, defaults, NOT NULL, primary key, CHECK, UNIQUE and EXCLUDE
 * constraints. The manifest is a file anyone could edit, so the statement is
 * parsed first and must be exactly one CREATE TABLE of that table (a default
 * or constraint text cannot smuggle in a statement of its own).
 */
export function createTableSql(t: ExportTable): string {
  const cols = t.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.default !== null ? ` DEFAULT ${c.default}` : ''}${c.notNull ? ' NOT NULL' : ''}`);
  const pk = t.primaryKey.length > 0 ? [`PRIMARY KEY (${t.primaryKey.map(quoteIdent).join(', ')})`] : [];
  const constraints = t.constraints.map((c) => `CONSTRAINT ${quoteIdent(c.name)} ${c.definition}`);
  const sql = `CREATE TABLE IF NOT EXISTS ${tableSql(t)} (${[...cols, ...pk, ...constraints].join(', ')})`;
  requireOneStatement(t, sql, 'CreateStmt');
  return sql;
}

/**
 * The table's other indexes as `CREATE [UNIQUE] INDEX IF NOT EXISTS`, run
 * once its rows are in (building an index once is cheaper than keeping it
 * up to date row by row). Each is checked as createTableSql's statement is.
 */
export function createIndexSql(t: ExportTable): string[] {
  return t.indexes.map((def) => {
    const sql = def.replace(/^CREATE (UNIQUE )?INDEX /, (_m, unique: string | undefined) => `CREATE ${unique ?? ''}INDEX IF NOT EXISTS `);
    requireOneStatement(t, sql, 'IndexStmt');
    return sql;
  });
}

/** Throws (runImport makes it importManifest) unless `sql` parses as exactly one statement of `kind` on table `t`. */
function requireOneStatement(t: ExportTable, sql: string, kind: 'CreateStmt' | 'IndexStmt'): void {
  let ok = false;
  try {
    const stmts = parseSql(sql);
    const node = stmts.length === 1 ? (stmts[0]!.stmt as Record<string, { relation?: { relname?: string; schemaname?: string }; if_not_exists?: boolean }>)[kind] : undefined;
    ok = node !== undefined && node.if_not_exists === true && node.relation?.relname === t.name && (node.relation.schemaname ?? 'public') === t.schema;
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`table ${qualifiedName(t)}: its ${kind === 'CreateStmt' ? 'columns or constraints' : 'index definitions'} do not form one ${kind === 'CreateStmt' ? 'CREATE TABLE' : 'CREATE INDEX'} of the table: ${sql}`);
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

  for (const schema of new Set(manifest.tables.map((t) => t.schema))) if (schema !== 'public') await gate.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  await initParser();
  // Every statement is built and checked before the first one runs.
  let creates: { table: string; indexes: string[] }[];
  try {
    creates = manifest.tables.map((t) => ({ table: createTableSql(t), indexes: createIndexSql(t) }));
  } catch (err) {
    throw sgError('importManifest', { dir: opts.dir, reason: (err as Error).message });
  }
  for (const ext of manifest.extensions) await gate.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(ext)}`);
  for (const c of creates) await gate.query(c.table);
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
  for (const c of creates) for (const index of c.indexes) await gate.query(index);
  opts.say(`shardgate import: ${manifest.chunks.length}/${manifest.chunks.length} chunks, ${rows} rows loaded by this run`);
  return { cutId: manifest.cutId, chunks: manifest.chunks.length, loaded, rows, ms: performance.now() - started };
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
