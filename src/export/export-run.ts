import { mkdir, readdir, readFile, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendConnector } from '../backend/connector.js';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { Failpoints } from '../tx/failpoints.js';
import { readExtensions, readFunctions, readSequencePositions, readSequences, readTables, readViews } from './catalogue.js';
import { writeChunk, readVerified } from './chunk-file.js';
import { dropSlots, RELEASE_FILE } from './cut-holder.js';
import { HOLD_FILE, LEASE_FILE, MANIFEST_FILE, newCutId, qualifiedName, readHold, readManifest, writeJsonAtomic, type ExportChunk, type ExportManifest, type ExportSequence, type ExportShard, type ExportTable, type HoldRecord } from './manifest.js';
import { chunkCopySql, planChunks } from './plan.js';
import { withSnapshot } from './snapshot-session.js';

/** Options of `runExport`. */
export interface ExportOptions {
  readonly dir: string;
  /** Chunks exported at the same time. */
  readonly jobs: number;
  /** Rows per chunk (about). */
  readonly chunkRows: number;
  readonly allowNoPrimaryKey: boolean;
  /** Starts the holder process of a new cut (`shardgate export-hold`); resolves once it runs. */
  readonly startHolder: (cutId: string) => Promise<{ exited: Promise<string> }>;
  /** A line for people (progress, warnings). */
  readonly say: (line: string) => void;
  /** `export-chunk-done` (per shard) is hit after each chunk is recorded; default from SHARDGATE_FAILPOINTS. */
  readonly failpoints?: Failpoints;
}

/** What an export did. */
export interface ExportResult {
  readonly cutId: string;
  readonly resumed: boolean;
  readonly chunks: number;
  /** Chunks exported by this run (the others were kept from an earlier one, verified). */
  readonly exported: number;
  readonly rows: number;
  readonly ms: number;
}

/**
 * `shardgate export`: every table of the fleet at one cut into `dir`
 * (README.md in this folder). A rerun on the same folder resumes: chunks
 * already written and matching their checksum are kept, the others are read
 * again under the same cut's snapshots, which a holder process keeps open. If
 * those snapshots are gone the export refuses (exportCutLost), never taking
 * a new cut for the remaining chunks.
 */
export async function runExport(connector: BackendConnector, config: ShardGateConfig, opts: ExportOptions): Promise<ExportResult> {
  const started = performance.now();
  const dir = opts.dir;
  await mkdir(dir, { recursive: true });
  // Left behind only if this process dies: a lock of a dead process is taken over.
  const unlock = await lockFolder(dir);
  const existing = await readManifest(dir).catch((err: Error) => {
    throw sgError('exportFolder', { dir, reason: err.message });
  });
  const ctx = { dir, acquireTimeoutMs: config.pool.acquireTimeoutMs };

  let hold = await readHold(dir).catch(() => null);
  const resumed = hold !== null || existing !== null;
  const lease = join(dir, LEASE_FILE);
  const touch = (): Promise<void> => utimes(lease, new Date(), new Date()).catch(() => writeFile(lease, ''));
  await touch();
  const leaseTimer = setInterval(() => void touch(), 1000);
  try {
    if (existing?.complete === true) return await verifyComplete(existing, dir, started);
    if (hold === null) {
      if (existing !== null) throw sgError('exportCutLost', { dir, shard: Object.keys(existing.shards)[0] ?? '?', reason: `${HOLD_FILE} is missing` });
      // A lease and a holder's log are what a cut that could not be taken leaves; a rerun may start afresh.
      const other = (await readdir(dir)).filter((f) => f !== LEASE_FILE && f !== LOCK_FILE && f !== 'hold.log');
      if (other.length > 0) throw sgError('exportFolder', { dir, reason: `it holds ${other.slice(0, 3).join(', ')}, and no export of ShardGate` });
      // Refuse before any cut, slot or file exists (checked again under the snapshot, where it counts).
      refuseNoPrimaryKey(await readTablesNow(connector, config), opts);
      hold = await startCut(dir, opts);
      opts.say(`shardgate export: cut ${hold.cutId} taken (${Math.round(performance.now() - started)} ms)`);
    }
    // Every shard's snapshot must still be the cut's: checked before any chunk is read, and again by every chunk.
    await checkCut(connector, config, hold, existing, ctx);
    const manifest = existing ?? (await newManifest(connector, config, hold, opts, ctx));
    if (existing === null) {
      await writeJsonAtomic(dir, MANIFEST_FILE, manifest);
      opts.say(`shardgate export: ${manifest.tables.length} tables in ${manifest.chunks.length} chunks planned (${Math.round(performance.now() - started)} ms)`);
    }
    const { exported, rows } = await exportChunks(connector, manifest, hold, opts, ctx);
    const finished: ExportManifest = { ...manifest, complete: true };
    await writeJsonAtomic(dir, MANIFEST_FILE, finished);
    await waitHolderGone(hold.pid);
    return { cutId: manifest.cutId, resumed, chunks: manifest.chunks.length, exported, rows, ms: performance.now() - started };
  } catch (err) {
    // A lost cut is given up for good: the holder (if alive) ends instead of waiting for its lease.
    const code = (err as { code?: string }).code;
    if (code === '72000' || code === '55000') {
      if (hold !== null) await writeFile(join(dir, RELEASE_FILE), '').catch(() => undefined);
      // Nothing can continue from the slots of a cut given up, and a slot nobody reads keeps WAL until the disk fills.
      const slots = cdcSlotsOf(hold?.shards ?? existing?.shards ?? {});
      if (slots.size > 0) {
        await dropSlots(connector, slots);
        opts.say(`shardgate export: dropped the replication slots of the lost cut: ${[...slots.values()].map((s) => s.slot).join(', ')}`);
      }
    }
    throw err;
  } finally {
    clearInterval(leaseTimer);
    await unlock();
  }
}

/** The `--cdc` slots of a cut's shards (none when the export ran without it). */
function cdcSlotsOf(shards: Readonly<Record<string, ExportShard>>): Map<string, { slot: string }> {
  const out = new Map<string, { slot: string }>();
  for (const [shard, s] of Object.entries(shards)) if (s.slot !== null) out.set(shard, { slot: s.slot });
  return out;
}

/** Held by the process exporting into a folder: two exports writing one manifest would lose chunks. */
const LOCK_FILE = 'export.lock';

/**
 * Takes the folder's lock (a file created exclusively, holding our pid);
 * a lock whose process is gone (killed) is taken over. Resolves with the
 * function that gives it back.
 */
async function lockFolder(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, String(process.pid), { flag: 'wx' });
      return () => unlink(path).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await readFile(path, 'utf8').catch(() => ''));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw sgError('exportFolder', { dir, reason: `another export (process ${pid}) is writing into it` });
      }
      // Its owner died (a killed export): the lock is stale.
      await unlink(path).catch(() => undefined);
    }
  }
  throw sgError('exportFolder', { dir, reason: `its ${LOCK_FILE} cannot be taken` });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Starts the holder of a new cut and waits for its hold.json. */
async function startCut(dir: string, opts: ExportOptions): Promise<HoldRecord> {
  const cutId = newCutId();
  const holder = await opts.startHolder(cutId);
  let failed: string | null = null;
  void holder.exited.then((why) => (failed = why));
  for (;;) {
    const hold = await readHold(dir).catch(() => null);
    if (hold !== null && hold.cutId === cutId) return hold;
    if (failed !== null) throw await holderError(dir, failed);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Why the holder could not take the cut: its own error as it printed it in
 * hold.log (`shardgate: export-hold: ERROR <SQLSTATE>: …`), with that SQLSTATE.
 */
async function holderError(dir: string, exited: string): Promise<Error> {
  const log = await readFile(join(dir, 'hold.log'), 'utf8').catch(() => '');
  const lines = log.split('\n');
  const at = lines.findLastIndex((l) => l.includes(': ERROR '));
  const m = at < 0 ? null : /: ERROR ([0-9A-Z]{5}): (.*)$/.exec(lines[at]!);
  if (m === null) return new Error(`the cut could not be taken: ${exited}`);
  const hint = lines[at + 1]?.startsWith('HINT: ') === true ? lines[at + 1]!.slice(6) : undefined;
  return new PgError({ severity: 'ERROR', code: m[1]!, message: m[2]!, ...(hint !== undefined ? { hint } : {}) });
}

/** Refuses unless every shard's held snapshot is importable and is the one the manifest recorded. */
async function checkCut(connector: BackendConnector, config: ShardGateConfig, hold: HoldRecord, existing: ExportManifest | null, ctx: { dir: string; acquireTimeoutMs: number }): Promise<void> {
  for (const spec of config.shards) {
    const held = hold.shards[spec.name];
    if (held === undefined) throw sgError('exportFolder', { dir: ctx.dir, reason: `its cut does not cover shard ${spec.name}; the configuration names other shards than the export's` });
    const recorded = existing?.shards[spec.name];
    if (recorded !== undefined && (recorded.snapshotId !== held.snapshotId || existing?.cutId !== hold.cutId)) {
      throw sgError('exportCutLost', { dir: ctx.dir, shard: spec.name, reason: `${HOLD_FILE} holds another cut than ${MANIFEST_FILE}` });
    }
    await withSnapshot(connector, spec.name, held, ctx, async () => undefined);
  }
  if (Object.keys(hold.shards).length !== config.shards.length) throw sgError('exportFolder', { dir: ctx.dir, reason: 'its cut covers shards that the configuration does not name' });
}

/** Reads the tables at the cut and plans every chunk; refuses a table without a primary key unless allowed. */
async function newManifest(connector: BackendConnector, config: ShardGateConfig, hold: HoldRecord, opts: ExportOptions, ctx: { dir: string; acquireTimeoutMs: number }): Promise<ExportManifest> {
  const { tables, extensions, views, functions, others, definitions } = await withSnapshot(connector, config.defaultShard, hold.shards[config.defaultShard]!, ctx, async (conn) => ({
    tables: await readTables(conn, config),
    extensions: await readExtensions(conn),
    views: await readViews(conn),
    ...(await readFunctions(conn)),
    definitions: await readSequences(conn),
  }));
  refuseNoPrimaryKey(tables, opts);
  const sequences = await sequencesAtCut(connector, config, hold, ctx, definitions);
  for (const what of others) opts.say(`shardgate export: WARNING: ${what} is not carried; create it on the target yourself`);
  for (const t of tables) {
    if (t.primaryKey.length === 0) opts.say(`shardgate export: WARNING: table ${qualifiedName(t)} has no primary key: exported as one chunk per shard, and an import skips it only by its chunk records, never row by row`);
    for (const what of t.notCarried) opts.say(`shardgate export: WARNING: table ${qualifiedName(t)}: ${what} is not carried; create it on the target yourself`);
  }
  // Each (table, shard) is planned on its own connection, `jobs` at a time; the plan keeps table and shard order.
  const parts = tables.flatMap((t, i) => t.sources.map((shard) => ({ t, i, shard })));
  const planned: ExportChunk[][] = [];
  let next = 0;
  const planner = async (): Promise<void> => {
    while (next < parts.length) {
      const k = next++;
      const { t, i, shard } = parts[k]!;
      planned[k] = await withSnapshot(connector, shard, hold.shards[shard]!, ctx, (conn) => planChunks(conn, t, i, shard, opts.chunkRows));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.jobs, parts.length)) }, planner));
  const chunks = planned.flat();
  return { format: 'shardgate-export/1', cutId: hold.cutId, complete: false, createdAt: new Date().toISOString(), shards: hold.shards, extensions, functions, sequences, tables, views, notCarried: others, chunks };
}

/**
 * The sequences with their position merged over the source shards: each
 * shard has its own state of a sequence (the proxy creates one per shard, and
 * every shard's nextval hands out its own values), and an import may move a
 * row to any target shard, so the first value a restored sequence returns is
 * the greatest next value of any source shard (the least for a descending
 * one): no value used anywhere before the cut is handed out again.
 */
async function sequencesAtCut(
  connector: BackendConnector,
  config: ShardGateConfig,
  hold: HoldRecord,
  ctx: { dir: string; acquireTimeoutMs: number },
  definitions: readonly Omit<ExportSequence, 'next'>[],
): Promise<ExportSequence[]> {
  if (definitions.length === 0) return [];
  const positions = await Promise.all(config.shards.map((s) => withSnapshot(connector, s.name, hold.shards[s.name]!, ctx, (conn) => readSequencePositions(conn))));
  return definitions.map((d) => {
    const descending = BigInt(d.increment) < 0n;
    let next: bigint | null = null;
    for (const p of positions) {
      const v = p.get(`${d.schema}.${d.name}`);
      if (v !== undefined && (next === null || (descending ? v < next : v > next))) next = v;
    }
    return { ...d, next: next === null ? null : next.toString() };
  });
}

/** Throws exportNoPrimaryKey for the first table without a primary key, unless they are allowed. */
function refuseNoPrimaryKey(tables: readonly ExportTable[], opts: ExportOptions): void {
  const keyless = tables.find((t) => t.primaryKey.length === 0);
  if (keyless !== undefined && !opts.allowNoPrimaryKey) throw sgError('exportNoPrimaryKey', { table: qualifiedName(keyless) });
}

/** The tables as they are now (outside any cut), for checks before the cut is taken. */
async function readTablesNow(connector: BackendConnector, config: ShardGateConfig): Promise<ExportTable[]> {
  const conn = await connector.acquire(config.defaultShard, config.pool.acquireTimeoutMs);
  try {
    const tables = await readTables(conn, config);
    conn.release();
    return tables;
  } catch (err) {
    conn.release(true);
    throw err;
  }
}

/** Exports every chunk not done yet (or whose file no longer matches), `jobs` at a time, recording each in the manifest as it finishes. */
async function exportChunks(
  connector: BackendConnector,
  manifest: ExportManifest,
  hold: HoldRecord,
  opts: ExportOptions,
  ctx: { dir: string; acquireTimeoutMs: number },
): Promise<{ exported: number; rows: number }> {
  const chunks = manifest.chunks;
  const failpoints = opts.failpoints ?? Failpoints.fromEnv();
  const todo: number[] = [];
  for (const [i, c] of chunks.entries()) {
    if (c.done && c.sha256 !== null && (await readVerified(ctx.dir, c.file, c.sha256)).ok) continue;
    if (c.done) opts.say(`shardgate export: chunk ${c.id} (${c.file}) does not match its checksum; exporting it again`);
    chunks[i] = { ...c, done: false, rows: null, sha256: null };
    todo.push(i);
  }
  const tables = new Map(manifest.tables.map((t) => [qualifiedName(t), t]));
  let doneCount = chunks.length - todo.length;
  let rows = chunks.reduce((n, c) => n + (c.done ? (c.rows ?? 0) : 0), 0);
  const started = performance.now();
  let exportedRows = 0;
  let lastSaid = 0;
  const progress = (force: boolean): void => {
    const now = performance.now();
    if (!force && now - lastSaid < 1000) return;
    lastSaid = now;
    const rate = exportedRows / Math.max((now - started) / 1000, 0.001);
    opts.say(`shardgate export: ${doneCount}/${chunks.length} chunks, ${rows} rows (${Math.round(rate)} rows/s)`);
  };
  // Manifest writes one at a time, in the order chunks finish.
  let writing = Promise.resolve();
  const record = (): Promise<void> => (writing = writing.then(() => writeJsonAtomic(ctx.dir, MANIFEST_FILE, manifest)));
  let next = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop && next < todo.length) {
      const i = todo[next++]!;
      const c = chunks[i]!;
      const t = tables.get(c.table)!;
      const written = await withSnapshot(connector, c.shard, hold.shards[c.shard]!, ctx, async (conn) => {
        // A table without a key is read in heap order: from its first page, not wherever another scan is.
        if (t.primaryKey.length === 0) await conn.exec('SET LOCAL synchronize_seqscans = off');
        return writeChunk(conn, chunkCopySql(t, c), ctx.dir, c.file);
      }).catch((err: unknown) => {
        // The other workers finish the chunk they are on (recorded, kept by a resume) and take no more.
        stop = true;
        throw err;
      });
      chunks[i] = { ...c, done: true, rows: written.rows, sha256: written.sha256 };
      doneCount++;
      rows += written.rows;
      exportedRows += written.rows;
      await record();
      // If we die here the chunk is recorded done and its file complete: a resume keeps it.
      await failpoints.hit('export-chunk-done', c.shard);
      progress(false);
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(opts.jobs, todo.length)) }, worker));
  await writing;
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  progress(true);
  return { exported: todo.length, rows };
}

/** A complete export run again: every chunk is checked against its checksum, nothing is read from the shards. */
async function verifyComplete(m: ExportManifest, dir: string, started: number): Promise<ExportResult> {
  for (const c of m.chunks) {
    const check = await readVerified(dir, c.file, c.sha256 ?? '');
    if (!check.ok) throw sgError('importChecksum', { file: join(dir, c.file), reason: check.reason });
  }
  return { cutId: m.cutId, resumed: true, chunks: m.chunks.length, exported: 0, rows: m.chunks.reduce((n, c) => n + (c.rows ?? 0), 0), ms: performance.now() - started };
}

/** Waits (briefly) for the holder to see the finished manifest and end its transactions. */
async function waitHolderGone(pid: number): Promise<void> {
  for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
}
