import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { stringify } from 'yaml';
import type { BenchOptions } from './bench-options.js';
import { sampleRss } from './memory.js';
import { startBenchClusters, type BenchCluster } from './pg-cluster.js';
import { initPgbench, pgbenchThreads, runPgbench, type PgbenchTarget } from './pgbench.js';
import { processCpuMs } from './process-cpu.js';
import { roundRows, type ResultTable } from './result-table.js';
import { shortReason, type BenchLog } from './select-only.js';
import { PGBENCH_TABLE_RULES, PROXY_DATABASE, PROXY_USER, proxyConfig, REPO_ROOT, startShardGate } from './shardgate-process.js';
import { percentile } from './stats.js';

const SIDES = ['tpcb', 'tpcb+cdc', 'tpcb+cdc-slow-sink'] as const;
type Side = (typeof SIDES)[number];

/** The slow sink takes this long per event: slower than TPC-B's rate, so the stream must push back. */
const SLOW_SINK_MS_PER_EVENT = 5;

/** Sides of the large-transaction run: the sink's speed, and whether held changes spill. */
const BIG_SIDES = ['fast-sink-no-spill', 'fast-sink-spill', 'slow-sink-no-spill', 'slow-sink-spill'] as const;
type BigSide = (typeof BIG_SIDES)[number];
/** The table the large transactions write (sharded on id through the proxy). */
const BIG_TABLE = 'bench_cdc_big';
/** --memory-limit of the spilling sides, and of the others (never reached). */
const SPILL_LIMIT = '8MiB';
const NO_SPILL_LIMIT = '1TiB';
/** The slow sink reads request bodies at this rate: far below what the stream could deliver. */
const SLOW_SINK_BYTES_PER_S = 4 * 1024 * 1024;

/** One side's figures in one round. */
interface Round {
  tps: number;
  eventsPerS?: number;
  lagP50Ms?: number;
  lagP99Ms?: number;
  cpuUsPerEvent?: number;
  rssMb?: number;
}

/** A `shardgate cdc` child counting events and their end-to-end lag (receive time − commit time). */
function startCdc(configFile: string, args: readonly string[]): { child: ChildProcess; streaming: Promise<void>; lagsMs: number[]; times: number[] } {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/shardgate.js'), 'cdc', '--config', configFile, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SHARDGATE_LOG_LEVEL: 'info' },
  });
  const lagsMs: number[] = [];
  const times: number[] = [];
  let logs = '';
  const streaming = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      logs = (logs + d.toString()).slice(-16_384);
      if (logs.includes('change data capture streaming')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`shardgate cdc exited (${code}):\n${logs}`)));
  });
  streaming.catch(() => undefined);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const now = Date.now();
    const at = /"commitTime":"([^"]+)"/.exec(line)?.[1];
    if (at !== undefined) lagsMs.push(now - Date.parse(at));
    times.push(now);
  });
  return { child, streaming, lagsMs, times };
}

/** A webhook counting events, reading each body at SLOW_SINK_BYTES_PER_S: a sink that pushes back by the byte. */
async function throttledWebhook(): Promise<{ url: string; close(): void; events: () => number }> {
  let events = 0;
  const server = createServer((req, res) => {
    let took = 0;
    const t0 = Date.now();
    let tail = '';
    req.on('data', (d: Buffer) => {
      took += d.length;
      // Count the events by their "kind" key (the rows here have no column of that name).
      const text = tail + d.toString('latin1');
      events += text.split('"kind":"').length - 1;
      tail = text.slice(-7);
      const ahead = took / SLOW_SINK_BYTES_PER_S - (Date.now() - t0) / 1000;
      if (ahead > 0) {
        req.pause();
        setTimeout(() => req.resume(), ahead * 1000);
      }
    });
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close(), events: () => events };
}

/** A webhook that takes SLOW_SINK_MS_PER_EVENT per event before answering 204. */
async function slowWebhook(): Promise<{ url: string; close(): void; lagsMs: number[]; times: number[] }> {
  const lagsMs: number[] = [];
  const times: number[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const events = JSON.parse(body) as { commitTime: string }[];
      setTimeout(() => {
        const now = Date.now();
        for (const e of events) {
          lagsMs.push(now - Date.parse(e.commitTime));
          times.push(now);
        }
        res.writeHead(204).end();
      }, events.length * SLOW_SINK_MS_PER_EVENT);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close(), lagsMs, times };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/**
 * Change data capture under TPC-B-like load over three shards: pgbench through
 * the proxy alone, then with `shardgate cdc` streaming to stdout (read and
 * timed here), then with a sink slower than the load. Rows: pgbench's rate
 * (the baseline is the run without CDC), events/s delivered, end-to-end lag
 * (commit on the shard to the line read here), CDC CPU per event, and the
 * CDC process's peak memory, which must stay bounded with the slow sink.
 */
export async function runCdcBench(opts: BenchOptions, cores: number, log: BenchLog): Promise<ResultTable[]> {
  const clusters: BenchCluster[] = await startBenchClusters(3, {
    databases: [PROXY_DATABASE],
    settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 20 },
  });
  const dir = await mkdtemp(join(tmpdir(), 'shardgate-bench-cdc-'));
  const config = proxyConfig(clusters.map((c) => c.url(PROXY_DATABASE)), { ...PGBENCH_TABLE_RULES, [BIG_TABLE]: { key: 'k' } }, { maxPerShard: opts.poolSize });
  const configFile = join(dir, 'shardgate.yaml');
  await writeFile(configFile, stringify(config));
  const proxy = await startShardGate(config).catch(async (err: unknown) => {
    await Promise.all(clusters.map((c) => c.destroy()));
    throw err;
  });
  const webhook = await slowWebhook();
  const rounds = new Map<Side, Round[]>(SIDES.map((s) => [s, []]));
  const problems = new Map<Side, string>();
  const bigRounds = new Map<BigSide, BigRound[]>(BIG_SIDES.map((s) => [s, []]));
  const bigProblems = new Map<BigSide, string>();
  const big = bigWorkload(opts);
  try {
    const target: PgbenchTarget = { port: proxy.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE };
    await initPgbench(target, opts.scale);
    const clients = Math.min(opts.tpcbClients, 8);
    const args = ['-n', '-c', String(clients), '-j', String(pgbenchThreads(clients, cores)), '-T', String(opts.tpcbDurationS)];
    let slotNo = 0;
    for (let round = 0; round < opts.tpcbRounds; round++) {
      for (const side of SIDES) {
        if (problems.has(side)) continue;
        try {
          if (side === 'tpcb') {
            rounds.get(side)!.push({ tps: (await runPgbench(target, { args })).summary.tps });
            continue;
          }
          // Fresh slots per run: an earlier run's backlog must not count.
          const slotPrefix = `bench${slotNo++}_`;
          const sinkArgs = side === 'tpcb+cdc' ? [] : ['--sink', 'webhook', '--webhook-url', webhook.url];
          const cdc = startCdc(configFile, ['--slot-prefix', slotPrefix, ...sinkArgs]);
          await cdc.streaming;
          const rss = sampleRss(cdc.child.pid!);
          const cpu0 = processCpuMs(cdc.child.pid!);
          const run = await runPgbench(target, { args });
          const transactions = run.summary.transactions;
          if (side === 'tpcb+cdc') {
            // Let the stream catch up: every transaction is one event.
            for (let i = 0; cdc.times.length < transactions && i < 600; i++) await new Promise((r) => setTimeout(r, 100));
          }
          const cpu1 = processCpuMs(cdc.child.pid!);
          const peakKb = await rss.stop();
          const seen = side === 'tpcb+cdc' ? cdc : webhook;
          const events = seen.times.length;
          const spanS = events > 1 ? (seen.times.at(-1)! - seen.times[0]!) / 1000 : 0;
          rounds.get(side)!.push({
            tps: run.summary.tps,
            ...(spanS > 0 ? { eventsPerS: events / spanS } : {}),
            ...(seen.lagsMs.length > 0 ? { lagP50Ms: percentile(seen.lagsMs, 50), lagP99Ms: percentile(seen.lagsMs, 99) } : {}),
            ...(cpu0 !== null && cpu1 !== null && events > 0 ? { cpuUsPerEvent: ((cpu1 - cpu0) * 1000) / events } : {}),
            rssMb: peakKb / 1024,
          });
          log(`cdc ${side} round ${round + 1}: ${run.summary.tps.toFixed(0)} tps, ${events} of ${transactions} events, peak RSS ${(peakKb / 1024).toFixed(0)} MB`);
          cdc.child.kill('SIGKILL');
          await exited(cdc.child);
          webhook.lagsMs.length = 0;
          webhook.times.length = 0;
          await Promise.all(
            clusters.map((c, i) => c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [`${slotPrefix}s${i}`], PROXY_DATABASE)),
          );
        } catch (err) {
          problems.set(side, shortReason(err));
          log(`cdc ${side} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
      }
    }
    await runBigTransactions(proxy.url, configFile, clusters, big, bigRounds, bigProblems, log);
  } finally {
    webhook.close();
    await proxy.stop().catch(() => undefined);
    await Promise.all(clusters.map((c) => c.destroy()));
    await rm(dir, { recursive: true, force: true });
  }

  const { row } = roundRows(rounds, problems, SIDES);
  const streaming: Side[] = ['tpcb+cdc', 'tpcb+cdc-slow-sink'];
  return [{
    id: 'cdc',
    title: 'Change data capture under TPC-B-like load (3 shards, through the proxy)',
    columns: [...SIDES],
    baseline: 'tpcb',
    rows: [
      row('tps', `TPC-B-like, ${Math.min(opts.tpcbClients, 8)} clients`, 'tps', (r) => r.tps),
      row('events', 'events delivered', 'events/s', (r) => r.eventsPerS, streaming),
      row('lag-p50', 'end-to-end lag, median', 'ms', (r) => r.lagP50Ms, streaming),
      row('lag-p99', 'end-to-end lag, p99', 'ms', (r) => r.lagP99Ms, streaming),
      row('cpu', 'CDC process CPU per event', 'µs', (r) => r.cpuUsPerEvent, streaming),
      row('rss', 'CDC process peak RSS', 'MB', (r) => r.rssMb, streaming),
    ],
    notes: [
      'Lag is from the commit time a shard reports to the moment this process read the event line (stdout sink), or the webhook batch was sent (slow sink).',
      `The slow sink is a webhook answering after ${SLOW_SINK_MS_PER_EVENT} ms per event, slower than the load: its lag grows, and its memory must not (the stream stops being read at 5000 unacknowledged events).`,
    ],
  }, bigTable(big, bigRounds, bigProblems)];
}

/** The large-transaction run's shape. */
interface BigWorkload {
  readonly transactions: number;
  readonly rows: number;
  readonly padBytes: number;
}

function bigWorkload(opts: BenchOptions): BigWorkload {
  return opts.quick ? { transactions: 8, rows: 50_000, padBytes: 200 } : { transactions: 16, rows: 100_000, padBytes: 200 };
}

/** One large-transaction side's figures in one round. */
interface BigRound {
  rssMb: number;
  deliverS: number;
  eventsPerS: number;
}

/**
 * Large cross-shard transactions (`INSERT … SELECT generate_series` through
 * the proxy, so every one has a big part on each shard), written as fast as
 * the servers take them, while `shardgate cdc` streams them to a fast sink
 * (stdout, read here) or a slow one (a webhook reading bodies at
 * SLOW_SINK_BYTES_PER_S), with held changes spilling past SPILL_LIMIT or
 * never. Figure: the CDC process's peak RSS until every event was delivered.
 */
async function runBigTransactions(
  proxyUrl: string,
  configFile: string,
  clusters: readonly BenchCluster[],
  w: BigWorkload,
  rounds: Map<BigSide, BigRound[]>,
  problems: Map<BigSide, string>,
  log: BenchLog,
): Promise<void> {
  const app = new pg.Client({ connectionString: proxyUrl });
  await app.connect();
  const spillRoot = await mkdtemp(join(tmpdir(), 'shardgate-bench-cdc-spill-'));
  const webhook = await throttledWebhook();
  try {
    await app.query(`CREATE TABLE ${BIG_TABLE} (k int PRIMARY KEY, pad text NOT NULL)`);
    let slotNo = 0;
    for (const side of BIG_SIDES) {
      try {
        await app.query(`TRUNCATE ${BIG_TABLE}`);
        const slotPrefix = `benchbig${slotNo++}_`;
        const slow = side.startsWith('slow');
        const args = [
          '--slot-prefix', slotPrefix,
          '--memory-limit', side.endsWith('no-spill') ? NO_SPILL_LIMIT : SPILL_LIMIT,
          '--spill-dir', join(spillRoot, side),
          ...(slow ? ['--sink', 'webhook', '--webhook-url', webhook.url] : []),
        ];
        const cdc = startCdc(configFile, args);
        await cdc.streaming;
        const before = slow ? webhook.events() : cdc.times.length;
        const delivered = (): number => (slow ? webhook.events() : cdc.times.length) - before;
        const rss = sampleRss(cdc.child.pid!);
        const t0 = Date.now();
        for (let t = 0; t < w.transactions; t++) {
          await app.query(`INSERT INTO ${BIG_TABLE} SELECT g, repeat('x', $3) FROM generate_series($1::int, $2::int) g`, [t * w.rows + 1, (t + 1) * w.rows, w.padBytes]);
        }
        for (let i = 0; delivered() < w.transactions && i < 3000; i++) await new Promise((r) => setTimeout(r, 100));
        const deliverS = (Date.now() - t0) / 1000;
        const peakKb = await rss.stop();
        cdc.child.kill('SIGKILL');
        await exited(cdc.child);
        await Promise.all(
          clusters.map((c, i) => c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [`${slotPrefix}s${i}`], PROXY_DATABASE)),
        );
        if (delivered() < w.transactions) throw new Error(`only ${delivered()} of ${w.transactions} events delivered in ${deliverS.toFixed(0)} s`);
        rounds.get(side)!.push({ rssMb: peakKb / 1024, deliverS, eventsPerS: w.transactions / deliverS });
        log(`cdc large transactions ${side}: peak RSS ${(peakKb / 1024).toFixed(0)} MB, ${w.transactions} events in ${deliverS.toFixed(1)} s`);
      } catch (err) {
        problems.set(side, shortReason(err));
        log(`cdc large transactions ${side} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  } finally {
    webhook.close();
    await app.end().catch(() => undefined);
    await rm(spillRoot, { recursive: true, force: true });
  }
}

function bigTable(w: BigWorkload, rounds: ReadonlyMap<BigSide, readonly BigRound[]>, problems: ReadonlyMap<BigSide, string>): ResultTable {
  const { row } = roundRows(rounds, problems, BIG_SIDES);
  return {
    id: 'cdc-large-transactions',
    title: `Change data capture of large transactions (${w.transactions} × ${w.rows.toLocaleString('en-US')} rows over 3 shards, through the proxy)`,
    columns: [...BIG_SIDES],
    baseline: 'fast-sink-no-spill',
    rows: [
      row('rss', 'CDC process peak RSS', 'MB', (r) => r.rssMb),
      row('deliver', 'writes until the last event was delivered', 's', (r) => r.deliverS),
    ],
    notes: [
      `Each transaction is one INSERT … SELECT of ${w.rows.toLocaleString('en-US')} rows of ${w.padBytes}-byte text through the proxy: one event of about ${Math.round((w.rows * (w.padBytes + 60)) / 1e6)} MB of JSON with a part on every shard.`,
      `Fast sink: stdout, read by this process. Slow sink: a webhook reading request bodies at ${SLOW_SINK_BYTES_PER_S / 1024 / 1024} MB/s. Spill: --memory-limit ${SPILL_LIMIT}; no spill: --memory-limit ${NO_SPILL_LIMIT}, everything held in memory.`,
      'Peak RSS is VmRSS polled every 50 ms from the moment the process streams until the last event arrived.',
    ],
  };
}
