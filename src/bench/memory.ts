import { readFile, writeFile } from 'node:fs/promises';
import type { BenchOptions } from './bench-options.js';
import type { BenchCluster } from './pg-cluster.js';
import { RawPgConnection } from './raw-pg-client.js';
import type { Cell, ResultRow, ResultTable } from './result-table.js';
import { shortReason, type BenchLog } from './select-only.js';
import { PROXY_DATABASE, PROXY_USER, type ShardGateProcess } from './shardgate-process.js';

/** The table of the big cross-shard read; placed with `algorithm: mod` on `id`. */
export const STREAM_TABLE = 'bench_stream';
export const STREAM_RULE = { key: 'id', algorithm: 'mod' } as const;

/** A field of /proc/<pid>/status in kB (VmRSS, VmHWM, …), or null when absent. */
export function parseStatusKb(status: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m === null ? null : Number(m[1]);
}

/** Reads one kB field of a process's /proc status; null when the process or field is gone. */
export async function statusKb(pid: number, field: string): Promise<number | null> {
  try {
    return parseStatusKb(await readFile(`/proc/${pid}/status`, 'utf8'), field);
  } catch {
    return null;
  }
}

/** Resets a process's peak resident size (VmHWM) to its current one; false when not permitted. */
export async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Polls VmRSS every `intervalMs` until stopped; `stop()` resolves with the highest value seen, in kB. */
export function sampleRss(pid: number, intervalMs = 50): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const kb = await statusKb(pid, 'VmRSS');
      if (kb !== null) peak = Math.max(peak, kb);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/**
 * Loads rows 1..`rows` of STREAM_TABLE (id bigint, v int) directly on the
 * shards, shard i holding the ids with id mod shards.length = i (where the
 * mod rule puts them).
 */
export async function loadStreamTable(shards: readonly BenchCluster[], database: string, rows: number): Promise<void> {
  const n = shards.length;
  await Promise.all(
    shards.map(async (shard, i) => {
      await shard.query(`DROP TABLE IF EXISTS ${STREAM_TABLE}`, [], database);
      await shard.query(`CREATE TABLE ${STREAM_TABLE} (id bigint NOT NULL, v int NOT NULL)`, [], database);
      await shard.query(
        `INSERT INTO ${STREAM_TABLE} SELECT g, (g % 1000)::int FROM generate_series($1::bigint, $2::bigint, $3::bigint) g`,
        [i === 0 ? n : i, rows, n],
        database,
      );
    }),
  );
}

const MB = 1024;

/** A point query on STREAM_TABLE: parsed, routed to one shard, one row. */
const FIRST_STATEMENT = `SELECT id, v FROM ${STREAM_TABLE} WHERE id = 1`;

function connectProxy(port: number): Promise<RawPgConnection> {
  return RawPgConnection.connect({ host: '127.0.0.1', port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE });
}

/** Opens `count` raw connections, `parallel` at a time; closes what it opened if one fails. */
async function openIdle(port: number, count: number, parallel = 50): Promise<RawPgConnection[]> {
  const open: RawPgConnection[] = [];
  try {
    for (let done = 0; done < count; done += parallel) {
      const batch = await Promise.all(Array.from({ length: Math.min(parallel, count - done) }, () => connectProxy(port)));
      open.push(...batch);
    }
    return open;
  } catch (err) {
    await Promise.all(open.map((c) => c.close()));
    throw err;
  }
}

/** Starts a fresh proxy over the shards; the caller gets it and must stop it. */
export type ProxyStarter = () => Promise<ShardGateProcess>;

function mb(kb: number): Cell {
  return { kind: 'samples', samples: [kb / MB] };
}

/**
 * Resident memory of the proxy (from /proc): at rest, after its first
 * statement (a one-time cost: the parser's code is compiled on first use),
 * with `idleClients` authenticated idle connections (the per-client figure
 * counts from after the first statement), and at its peak while one client
 * reads all `streamRows` rows of STREAM_TABLE slowly (pausing between reads
 * so the proxy must hold back) on a fresh proxy, whose first statement the
 * read is, so its growth includes that one-time cost. Each measurement gets a
 * fresh proxy so the other's garbage does not count.
 */
export async function runMemory(startProxy: ProxyStarter, opts: BenchOptions, log: BenchLog): Promise<ResultTable> {
  const column = 'shardgate-4';
  const cells = new Map<string, Cell>();
  const notes: string[] = [];

  let proxy = await startProxy();
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const atRest = await statusKb(proxy.pid, 'VmRSS');
    if (atRest !== null) cells.set('rss-at-rest', mb(atRest));
    // The first statement loads the SQL parser's code paths (WebAssembly compiled on first use): a one-time cost, shown on its own row.
    const first = await connectProxy(proxy.port);
    await first.readSlowly(FIRST_STATEMENT, { chunkBytes: Number.MAX_SAFE_INTEGER, pauseMs: 0 });
    await first.close();
    await new Promise((r) => setTimeout(r, 1000));
    const afterFirst = await statusKb(proxy.pid, 'VmRSS');
    if (afterFirst !== null && atRest !== null) cells.set('rss-first-statement', mb(afterFirst - atRest));
    const t0 = performance.now();
    const conns = await openIdle(proxy.port, opts.idleClients);
    const openMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    const withClients = await statusKb(proxy.pid, 'VmRSS');
    await Promise.all(conns.map((c) => c.close()));
    if (withClients !== null) cells.set('rss-idle-clients', mb(withClients));
    if (withClients !== null && afterFirst !== null) cells.set('rss-per-client', { kind: 'samples', samples: [(withClients - afterFirst) / opts.idleClients] });
    log(
      `memory: ${(atRest ?? 0) / MB} MB at rest, ${(afterFirst ?? 0) / MB} MB after the first statement, ${(withClients ?? 0) / MB} MB with ${opts.idleClients} idle clients (opened in ${openMs.toFixed(0)} ms)`,
    );
  } catch (err) {
    cells.set('rss-idle-clients', { kind: 'missing', reason: `failed: ${shortReason(err)}` });
    log(`memory: idle clients failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await proxy.stop();
  }

  proxy = await startProxy();
  try {
    const reader = await connectProxy(proxy.port);
    await new Promise((r) => setTimeout(r, 1000));
    const before = (await statusKb(proxy.pid, 'VmRSS')) ?? 0;
    const peakReset = await resetPeak(proxy.pid);
    const sampler = sampleRss(proxy.pid);
    // About 10 MB/s: far slower than 4 shards can send, so a proxy that does not hold back buffers the difference.
    const read = await reader.readSlowly(`SELECT id, v FROM ${STREAM_TABLE}`, { chunkBytes: 128 * 1024, pauseMs: 12 });
    const polled = await sampler.stop();
    const hwm = peakReset ? ((await statusKb(proxy.pid, 'VmHWM')) ?? 0) : 0;
    await reader.close();
    const peak = Math.max(polled, hwm);
    if (read.rows !== opts.streamRows) notes.push(`The slow read returned ${read.rows} rows, expected ${opts.streamRows}.`);
    cells.set('rss-read-before', mb(before));
    cells.set('rss-read-peak', mb(peak));
    cells.set('rss-read-added', mb(peak - before));
    notes.push(
      `Slow read: ${read.rows.toLocaleString('en-US')} rows, ${(read.bytes / 1e6).toFixed(0)} MB of wire data in ${(read.ms / 1000).toFixed(1)} s (pausing 12 ms after every 128 kB); peak from ${peakReset ? 'VmHWM after resetting it and ' : ''}VmRSS polled every 50 ms.`,
    );
    log(`memory: slow read of ${read.rows} rows in ${(read.ms / 1000).toFixed(1)} s, RSS ${before / MB} MB → peak ${peak / MB} MB`);
  } catch (err) {
    cells.set('rss-read-added', { kind: 'missing', reason: `failed: ${shortReason(err)}` });
    log(`memory: slow read failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await proxy.stop();
  }

  const labels: readonly [string, string, string][] = [
    ['rss-at-rest', 'resident, no clients', 'MB'],
    ['rss-first-statement', 'added by the first statement (parser code compiled)', 'MB'],
    ['rss-idle-clients', `resident with ${opts.idleClients} idle clients`, 'MB'],
    ['rss-per-client', 'added per idle client', 'kB'],
    ['rss-read-before', 'resident before the slow read (1 client)', 'MB'],
    ['rss-read-peak', `peak while reading ${opts.streamRows.toLocaleString('en-US')} rows slowly`, 'MB'],
    ['rss-read-added', 'added by the slow read', 'MB'],
  ];
  const rows: ResultRow[] = labels.map(([id, label, unit]) => ({
    id,
    label,
    unit,
    cells: { [column]: cells.get(id) ?? { kind: 'missing', reason: 'not measured' } },
  }));
  return {
    id: 'memory',
    title: 'Memory of the proxy process (4 shards)',
    columns: [column],
    baseline: null,
    rows,
    notes: [
      `A fresh proxy for each measurement; resident size (VmRSS) read from /proc/<pid>/status. Idle clients authenticate with SCRAM, then send nothing.`,
      `The big result: \`SELECT id, v FROM ${STREAM_TABLE}\` (no ORDER BY) over 4 shards, read by a raw-socket client.`,
      ...notes,
    ],
  };
}
