import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseCsv } from '../../src/export/csv.js';
import { readManifest, type ExportManifest } from '../../src/export/manifest.js';

const BIN = join(resolve(import.meta.dirname, '../..'), 'bin/shardgate.js');

/** A `shardgate …` child process; `done` resolves with its exit status and output. */
export interface ShardgateRun {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
  /** stderr so far. */
  stderr(): string;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Spawns `node bin/shardgate.js ...args` (needs a built dist/). */
export function shardgate(args: readonly string[], env: NodeJS.ProcessEnv = {}): ShardgateRun {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((r) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      r({ code, signal, stdout, stderr });
    }),
  );
  return { child, done, stderr: () => stderr };
}

/** Every table's rows in an export folder (from its chunk files), keyed by `schema.table`, with the manifest. */
export async function readExport(dir: string): Promise<{ manifest: ExportManifest; rows: Map<string, (string | null)[][]> }> {
  const manifest = (await readManifest(dir))!;
  const rows = new Map<string, (string | null)[][]>();
  for (const t of manifest.tables) rows.set(`${t.schema}.${t.name}`, []);
  for (const c of manifest.chunks) rows.get(c.table)!.push(...parseCsv(gunzipSync(await readFile(join(dir, c.file))).toString('utf8')));
  return { manifest, rows };
}

/** Rows as sorted JSON lines, for comparing tables regardless of order and placement. */
export function sortedLines(rows: readonly (readonly (string | null)[])[]): string[] {
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** A table's rows on one server, read with COPY … CSV through psql (the representation an export holds). */
export async function serverRows(url: string, table: string): Promise<(string | null)[][]> {
  const { runCommand } = await import('./cluster.js');
  const r = await runCommand('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `COPY (SELECT * FROM ${table}) TO STDOUT WITH (FORMAT csv)`, url], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`psql: ${r.stderr}`);
  return parseCsv(r.stdout);
}
