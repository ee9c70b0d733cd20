import type { ShardCursor } from '../engine/shard-cursor.js';
import { quoteIdent, quoteLiteral } from '../tx/gid.js';
import { qualifiedName, type ExportChunk, type ExportTable } from './manifest.js';

/** `schema.table`, quoted. */
export function tableSql(t: ExportTable): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

function keyColumns(t: ExportTable): { names: string; types: string[] } {
  const types = t.primaryKey.map((k) => t.columns.find((c) => c.name === k)?.type ?? 'text');
  return { names: t.primaryKey.map(quoteIdent).join(', '), types };
}

/** `ROW('v1'::type1, …)`: a key bound as a typed row, for comparison with `ROW(k1, …)`. */
function keyRow(t: ExportTable, values: readonly string[]): string {
  const { types } = keyColumns(t);
  return `ROW(${values.map((v, i) => `${quoteLiteral(v)}::${types[i]}`).join(', ')})`;
}

/**
 * Splits a table's rows on one shard into key ranges of about `chunkRows`
 * rows each, under the snapshot the connection is in: every `chunkRows`-th
 * key (in key order) ends a chunk, and the last chunk is open-ended, so the
 * ranges cover every key exactly once whatever the data (README.md, "Chunk
 * boundaries"). A table without a primary key is one chunk.
 */
export async function planChunks(conn: ShardCursor, t: ExportTable, tableIndex: number, shard: string, chunkRows: number): Promise<ExportChunk[]> {
  const chunk = (n: number, after: string[] | null, upTo: string[] | null): ExportChunk => ({
    id: `${qualifiedName(t)}@${shard}#${n}`,
    table: qualifiedName(t),
    shard,
    after,
    upTo,
    file: `chunks/t${tableIndex}-${encodeURIComponent(shard)}-${n}.csv.gz`,
    done: false,
    rows: null,
    sha256: null,
  });
  if (t.primaryKey.length === 0) return [chunk(0, null, null)];
  const { names } = keyColumns(t);
  const asText = t.primaryKey.map((k) => `${quoteIdent(k)}::text`).join(', ');
  const bounds = await conn.rows(
    `SELECT ${asText} FROM (SELECT ${names}, row_number() OVER (ORDER BY ${names}) AS sg_n FROM ${tableSql(t)}) AS s WHERE sg_n % ${Math.trunc(chunkRows)} = 0 ORDER BY sg_n`,
  );
  const out: ExportChunk[] = [];
  let after: string[] | null = null;
  for (const b of bounds) {
    const upTo = b.map((v) => v ?? '');
    out.push(chunk(out.length, after, upTo));
    after = upTo;
  }
  out.push(chunk(out.length, after, null));
  return out;
}

/**
 * The COPY statement of one chunk: its key range in key order (so the bytes
 * are the same every time it is read under the same snapshot), CSV.
 */
export function chunkCopySql(t: ExportTable, c: ExportChunk): string {
  const cols = t.columns.map((col) => quoteIdent(col.name)).join(', ');
  if (t.primaryKey.length === 0) return `COPY (SELECT ${cols} FROM ${tableSql(t)}) TO STDOUT WITH (FORMAT csv)`;
  const { names } = keyColumns(t);
  const conds = [
    ...(c.after !== null ? [`ROW(${names}) > ${keyRow(t, c.after)}`] : []),
    ...(c.upTo !== null ? [`ROW(${names}) <= ${keyRow(t, c.upTo)}`] : []),
  ];
  const where = conds.length > 0 ? ` WHERE ${conds.join(' AND ')}` : '';
  return `COPY (SELECT ${cols} FROM ${tableSql(t)}${where} ORDER BY ${names}) TO STDOUT WITH (FORMAT csv)`;
}
