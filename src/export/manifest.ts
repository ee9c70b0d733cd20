import { randomUUID } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** The manifest's file name inside an export folder. */
export const MANIFEST_FILE = 'manifest.json';
/** What the cut holder writes once every shard's snapshot is held (export-hold). */
export const HOLD_FILE = 'hold.json';
/** Touched by the exporting process while it works; the holder ends when it is left untouched too long. */
export const LEASE_FILE = 'lease';

/**
 * A column type as format_type() writes it (`integer`, `numeric(12,2)`,
 * `timestamp with time zone`, `text[]`, `"MyType"`): it is put into SQL as
 * written, so the manifest admits nothing else (no quotes, semicolons or comments).
 */
const TYPE_TEXT = /^(?!.*--)[A-Za-z_"][A-Za-z0-9_ .,()"[\]]*$/;
const columnSchema = z.object({
  name: z.string(),
  type: z.string().regex(TYPE_TEXT, 'not a type name as format_type() writes it'),
  notNull: z.boolean(),
  /** The default expression as pg_get_expr() writes it; checked by the parser before import runs it. */
  default: z.string().nullable().default(null),
});
const tableSchema = z.object({
  schema: z.string(),
  name: z.string(),
  columns: z.array(columnSchema),
  /** Primary-key columns in key order; empty for a table exported without one. */
  primaryKey: z.array(z.string()),
  /** CHECK, UNIQUE and EXCLUDE constraints, each as pg_get_constraintdef() writes it. */
  constraints: z.array(z.object({ name: z.string(), definition: z.string() })).default([]),
  /** Foreign keys (pg_get_constraintdef()), with their columns and the table they reference, so an import can tell whether the target can enforce them. */
  foreignKeys: z
    .array(z.object({ name: z.string(), definition: z.string(), columns: z.array(z.string()), references: z.object({ schema: z.string(), name: z.string() }), referencedColumns: z.array(z.string()) }))
    .default([]),
  /** CREATE INDEX statements (pg_get_indexdef()) of indexes no constraint owns. */
  indexes: z.array(z.string()).default([]),
  /** CREATE TRIGGER statements (pg_get_triggerdef()) of the user's triggers on the table. */
  triggers: z.array(z.object({ name: z.string(), definition: z.string() })).default([]),
  /** What the export saw but does not carry (identity of a column), for the warning. */
  notCarried: z.array(z.string()).default([]),
  /** Shards its rows were read from: every shard for a sharded table, the default shard otherwise. */
  sources: z.array(z.string()),
});
/** A bigint as text (sequence options and positions exceed a JSON number's exact range). */
const BIGINT_TEXT = /^-?[0-9]{1,19}$/;
const sequenceSchema = z.object({
  schema: z.string(),
  name: z.string(),
  type: z.enum(['smallint', 'integer', 'bigint']),
  start: z.string().regex(BIGINT_TEXT),
  increment: z.string().regex(BIGINT_TEXT),
  min: z.string().regex(BIGINT_TEXT),
  max: z.string().regex(BIGINT_TEXT),
  cache: z.string().regex(BIGINT_TEXT),
  cycle: z.boolean(),
  /** The column that owns it (serial, OWNED BY); null for a sequence of its own. */
  ownedBy: z.object({ schema: z.string(), table: z.string(), column: z.string() }).nullable(),
  /**
   * The value nextval must return first after an import: beyond every value
   * any source shard handed out (the greatest of the shards' next values, the
   * least for a descending sequence); null when no shard has the sequence.
   */
  next: z.string().regex(BIGINT_TEXT).nullable(),
});
const viewSchema = z.object({
  schema: z.string(),
  name: z.string(),
  materialized: z.boolean(),
  /** Its SELECT as pg_get_viewdef() writes it; checked by the parser before import runs it. */
  definition: z.string(),
});
const functionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  /** CREATE OR REPLACE FUNCTION/PROCEDURE as pg_get_functiondef() writes it. */
  definition: z.string(),
  /** Its arguments or result are a table's row type: created after the tables (the others before, for defaults and CHECKs that call them). */
  afterTables: z.boolean().default(false),
});
const chunkSchema = z.object({
  id: z.string(),
  table: z.string(),
  shard: z.string(),
  /** Exclusive lower and inclusive upper key bound, as text of the key columns; null: unbounded. */
  after: z.array(z.string()).nullable(),
  upTo: z.array(z.string()).nullable(),
  file: z.string(),
  done: z.boolean(),
  rows: z.number().nullable(),
  sha256: z.string().nullable(),
});
const shardSchema = z.object({
  lsn: z.string(),
  snapshot: z.string(),
  snapshotId: z.string(),
  slot: z.string().nullable(),
  publication: z.string().nullable(),
});
const manifestSchema = z.object({
  format: z.literal('shardgate-export/1'),
  cutId: z.string().min(1),
  complete: z.boolean(),
  createdAt: z.string(),
  shards: z.record(z.string(), shardSchema),
  /** Extensions the source database has (CREATE EXTENSION IF NOT EXISTS on import, before the tables). */
  extensions: z.array(z.string()).default([]),
  /** SQL and PL/pgSQL functions and procedures, in creation order. */
  functions: z.array(functionSchema).default([]),
  sequences: z.array(sequenceSchema).default([]),
  tables: z.array(tableSchema),
  /** Views and materialized views, in creation order. */
  views: z.array(viewSchema).default([]),
  /** Objects the export saw but does not carry (functions in other languages, aggregates), for the warning. */
  notCarried: z.array(z.string()).default([]),
  chunks: z.array(chunkSchema),
});

export type ExportManifest = z.infer<typeof manifestSchema>;
export type ExportTable = z.infer<typeof tableSchema>;
export type ExportChunk = z.infer<typeof chunkSchema>;
export type ExportSequence = z.infer<typeof sequenceSchema>;
export type ExportView = z.infer<typeof viewSchema>;
export type ExportFunction = z.infer<typeof functionSchema>;
export type ExportShard = z.infer<typeof shardSchema>;

const holdSchema = z.object({ cutId: z.string(), pid: z.number(), shards: z.record(z.string(), shardSchema) });
/** What the holder publishes: the cut's id and each shard's held snapshot. */
export type HoldRecord = z.infer<typeof holdSchema>;

/** A fresh cut id. */
export function newCutId(): string {
  return randomUUID();
}

/** The table's name as `schema.name`, the key chunks and manifests use. */
export function qualifiedName(t: { readonly schema: string; readonly name: string }): string {
  return `${t.schema}.${t.name}`;
}

/** Reads and validates `file`; null when it does not exist. Throws (message names the problem) when it is not one. */
async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is not a ShardGate export file (${parsed.error.issues.map((i) => `${i.path.join('.') || 'top'}: ${i.message}`).join('; ')})`);
  return parsed.data;
}

/** The manifest of the export in `dir`, or null when there is none. */
export function readManifest(dir: string): Promise<ExportManifest | null> {
  return readJson(join(dir, MANIFEST_FILE), manifestSchema);
}

/** The holder's record in `dir`, or null when there is none yet. */
export function readHold(dir: string): Promise<HoldRecord | null> {
  return readJson(join(dir, HOLD_FILE), holdSchema);
}

/**
 * Writes `value` as `dir/name` atomically (a temporary file renamed over it):
 * a crash leaves the old file or the new one, never half of one.
 */
export async function writeJsonAtomic(dir: string, name: string, value: unknown): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { flush: true });
  await rename(tmp, join(dir, name));
}
