import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip, gunzip } from 'node:zlib';
import type { ShardCursor } from '../engine/shard-cursor.js';

const gunzipAsync = promisify(gunzip);

/** sha256 of `data`, hex. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** CopyData bytes handed over per await while a chunk is read (many rows each). */
const COPY_BATCH_BYTES = 256 * 1024;
/** Compressed bytes per write to the chunk file. */
const GZIP_CHUNK_BYTES = 256 * 1024;

/**
 * Runs `copySql` (COPY … TO STDOUT) and writes its output gzip-compressed to
 * `dir/file`, as it comes: the shard's rows arrive in large batches, are
 * compressed and written while the next ones are read, with backpressure (the
 * shard's socket is paused while the compressor or the disk is behind), so
 * memory stays a few batches whatever the chunk's size. Deflate's output
 * depends only on the bytes and the level, never on how they were fed to it
 * (no flush before the end), so the same rows give the same file (and
 * checksum) every time, the same as compressing the chunk in one call. The
 * file is written to a temporary name, flushed and renamed, so it either is
 * absent or is the whole chunk.
 */
export async function writeChunk(conn: ShardCursor, copySql: string, dir: string, file: string): Promise<{ rows: number; sha256: string; bytes: number }> {
  const path = join(dir, file);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const hash = createHash('sha256');
  let bytes = 0;
  let tag = '';
  const out = conn.copyOut(copySql, { batchBytes: COPY_BATCH_BYTES });
  const fh = await open(tmp, 'w');
  let written = false;
  try {
    await pipeline(
      async function* copyData() {
        for (let step = await out.next(); ; step = await out.next()) {
          if (step.done === true) {
            tag = step.value;
            return;
          }
          yield step.value;
        }
      },
      createGzip({ level: 1, chunkSize: GZIP_CHUNK_BYTES }),
      async (compressed: AsyncIterable<Buffer>) => {
        for await (const piece of compressed) {
          hash.update(piece);
          bytes += piece.length;
          await fh.write(piece);
        }
      },
    );
    await fh.sync();
    written = true;
  } finally {
    // Ends the COPY if the pipeline stopped early (a failed write): the connection is then ready again.
    await out.return('').catch(() => undefined);
    await fh.close();
    if (!written) await unlink(tmp).catch(() => undefined);
  }
  await rename(tmp, path);
  return { rows: Number(/(\d+)$/.exec(tag)?.[1] ?? '0'), sha256: hash.digest('hex'), bytes };
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
