import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { ShardCursor } from '../engine/shard-cursor.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** sha256 of `data`, hex. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Runs `copySql` (COPY … TO STDOUT) and writes its output gzip-compressed to
 * `dir/file`. The chunk is compressed in one call, so the same rows give the
 * same bytes (and checksum) every time; it is written to a temporary file,
 * flushed and renamed, so the file either is absent or is the whole chunk.
 * Memory per chunk is bounded by the chunk's size (`--chunk-rows`).
 */
export async function writeChunk(conn: ShardCursor, copySql: string, dir: string, file: string): Promise<{ rows: number; sha256: string; bytes: number }> {
  const parts: Buffer[] = [];
  const out = conn.copyOut(copySql);
  let step = await out.next();
  while (step.done !== true) {
    parts.push(step.value);
    step = await out.next();
  }
  const rows = Number(/(\d+)$/.exec(step.value)?.[1] ?? '0');
  const gz = await gzipAsync(Buffer.concat(parts), { level: 1 });
  const path = join(dir, file);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, gz, { flush: true });
  await rename(`${path}.tmp`, path);
  return { rows, sha256: sha256(gz), bytes: gz.length };
}

/** The chunk file's bytes when their sha256 is `expected`; else why not (missing, or another checksum). */
export async function readVerified(dir: string, file: string, expected: string): Promise<{ ok: true; data: Buffer } | { ok: false; reason: string }> {
  let data: Buffer;
  try {
    data = await readFile(join(dir, file));
  } catch (err) {
    return { ok: false, reason: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the file is missing' : (err as Error).message };
  }
  const actual = sha256(data);
  return actual === expected ? { ok: true, data } : { ok: false, reason: `sha256 ${actual}, the manifest says ${expected}` };
}

/** The CSV bytes of a verified chunk file. */
export async function chunkBytes(data: Buffer): Promise<Buffer> {
  return gunzipAsync(data);
}
