import pg from 'pg';
import type { BenchOptions } from './bench-options.js';
import { freePort, startBenchClusters, type BenchCluster } from './pg-cluster.js';
import { initPgbench, pgbenchThreads, runPgbench, type PgbenchTarget } from './pgbench.js';
import { commandLatency } from './pgbench-output.js';
import { roundRows, type Cell, type ResultTable } from './result-table.js';
import { shortReason, type BenchLog } from './select-only.js';
import { PGBENCH_TABLE_RULES, PROXY_DATABASE, PROXY_USER, proxyConfig, startShardGate, type ShardGateProcess } from './shardgate-process.js';
import { percentile } from './stats.js';

const SIDES = ['tpcb', 'tpcb+consistent-reader', 'tpcb+plain-reader'] as const;
type Side = (typeof SIDES)[number];

/** The reader starts a transaction this often, as the figure asks. */
const READER_INTERVAL_MS = 100;

const SHARDS = 4;

/**
 * Two sums pgbench's script keeps equal: every transaction adds its delta to
 * one branch and one teller, which live on different shards (branches by bid,
 * tellers by tid), so a two-phase commit seen on one and not the other makes
 * them differ. The small tables keep the reader cheap: what the figures
 * show is the cut, not a scan of the accounts. Plain sums, which the proxy
 * combines as it streams.
 */
const SUMS_SQL = ['SELECT sum(bbalance) AS s FROM pgbench_branches', 'SELECT sum(tbalance) AS s FROM pgbench_tellers'];

/** One side's figures in one round. */
interface Round {
  tps: number;
  endAvgMs?: number;
  p99Ms?: number;
  /** Client-side time of the reader's first statement (the cut, the snapshots and `SELECT 1`). */
  cutMs?: number[];
  /** Gate hold per cut from the proxy's histogram: sum ÷ count. */
  holdAvgMs?: number;
  /** Commit decisions that waited for a cut, per cut. */
  delayedPerCut?: number;
  readerTransactions?: number;
  wrongSums?: number;
}

/** The proxy's cut figures from its /metrics: gate hold sum and count, commits delayed. */
async function gateHold(adminPort: number): Promise<{ sum: number; count: number; delayed: number }> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const read = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    sum: read('shardgate_cut_gate_hold_seconds_sum'),
    count: read('shardgate_cut_gate_hold_seconds_count'),
    delayed: read('shardgate_cut_delayed_commits_total'),
  };
}

/**
 * A client of the proxy that every READER_INTERVAL_MS reads pgbench's four
 * sums in one transaction: at one cut (REPEATABLE READ READ ONLY) or shard by
 * shard (READ COMMITTED, the default). Counts transactions whose sums differ:
 * a transaction seen half-committed across shards.
 */
function startReader(target: PgbenchTarget, consistent: boolean): { stop(): Promise<{ cutMs: number[]; transactions: number; wrong: number }> } {
  const client = new pg.Client({ host: '127.0.0.1', port: target.port, user: target.user, password: target.password, database: target.database });
  const cutMs: number[] = [];
  let transactions = 0;
  let wrong = 0;
  let stopping = false;
  const loop = (async () => {
    await client.connect();
    while (!stopping) {
      const next = performance.now() + READER_INTERVAL_MS;
      await client.query(consistent ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
      const t0 = performance.now();
      await client.query('SELECT 1');
      if (consistent) cutMs.push(performance.now() - t0);
      const sums: string[] = [];
      for (const sql of SUMS_SQL) sums.push((await client.query<{ s: string | null }>(sql)).rows[0]!.s ?? '0');
      await client.query('COMMIT');
      transactions++;
      if (sums.some((s) => s !== sums[0])) wrong++;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    async stop() {
      stopping = true;
      try {
        await loop;
      } finally {
        await client.end().catch(() => undefined);
      }
      return { cutMs, transactions, wrong };
    },
  };
}

/**
 * Consistent reads under TPC-B-like load over four shards through the proxy:
 * pgbench alone, with a reader at one cut every 100 ms, and with the same
 * reader without a cut. Rows: pgbench's rate and commit latency (the baseline
 * is the run without a reader: a cut holds the commit gate, and commits that
 * reach their decision meanwhile wait), the reader's cut time (client side:
 * the first statement of its transaction, which takes the cut; an upper
 * bound of the gate hold), the proxy's own gate-hold figure, and the
 * reader's wrong sums (0 at one cut; the plain reader shows why it exists).
 */
export async function runConsistentReadBench(opts: BenchOptions, cores: number, log: BenchLog): Promise<ResultTable> {
  const clusters: BenchCluster[] = await startBenchClusters(SHARDS, { databases: [PROXY_DATABASE] });
  const adminPort = await freePort();
  let proxy: ShardGateProcess;
  try {
    const config = proxyConfig(clusters.map((c) => c.url(PROXY_DATABASE)), PGBENCH_TABLE_RULES, { maxPerShard: opts.poolSize });
    proxy = await startShardGate({ ...config, admin: `127.0.0.1:${adminPort}` });
  } catch (err) {
    await Promise.all(clusters.map((c) => c.destroy()));
    throw err;
  }
  const rounds = new Map<Side, Round[]>(SIDES.map((s) => [s, []]));
  const problems = new Map<Side, string>();
  const clients = opts.tpcbClients;
  try {
    const target: PgbenchTarget = { port: proxy.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE };
    await initPgbench(target, opts.scale);
    const args = ['-n', '-c', String(clients), '-j', String(pgbenchThreads(clients, cores)), '-T', String(opts.tpcbDurationS), '--report-per-command'];
    for (let round = 0; round < opts.tpcbRounds; round++) {
      for (const side of SIDES) {
        if (problems.has(side)) continue;
        try {
          const reader = side === 'tpcb' ? null : startReader(target, side === 'tpcb+consistent-reader');
          const hold0 = await gateHold(adminPort);
          const run = await runPgbench(target, { args, transactionLog: true });
          const read = reader === null ? null : await reader.stop();
          const hold1 = await gateHold(adminPort);
          const cuts = hold1.count - hold0.count;
          const end = commandLatency(run.summary, /^(END|COMMIT)\b/i);
          rounds.get(side)!.push({
            tps: run.summary.tps,
            ...(end === null ? {} : { endAvgMs: end }),
            ...(run.latenciesMs.length > 0 ? { p99Ms: percentile(run.latenciesMs, 99) } : {}),
            ...(read === null ? {} : { readerTransactions: read.transactions, wrongSums: read.wrong }),
            ...(read !== null && read.cutMs.length > 0 ? { cutMs: read.cutMs } : {}),
            ...(cuts > 0 ? { holdAvgMs: ((hold1.sum - hold0.sum) * 1000) / cuts, delayedPerCut: (hold1.delayed - hold0.delayed) / cuts } : {}),
          });
          log(
            `consistent-read ${side} round ${round + 1}: ${run.summary.tps.toFixed(0)} tps` +
              (read === null ? '' : `, ${read.transactions} reads, ${read.wrong} with unequal sums, ${cuts} cuts`),
          );
        } catch (err) {
          problems.set(side, shortReason(err));
          log(`consistent-read ${side} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
      }
    }
  } finally {
    await proxy.stop().catch(() => undefined);
    await Promise.all(clusters.map((c) => c.destroy()));
  }

  const { cell, row } = roundRows(rounds, problems, SIDES);
  // Counts are summed over the rounds: one bad read in any round must show.
  const total = (side: Side, pick: (r: Round) => number | undefined): Cell => {
    const c = cell(side, pick);
    return c.kind === 'missing' ? c : { kind: 'samples', samples: [c.samples.reduce((a, b) => a + b, 0)] };
  };
  const consistent: Side[] = ['tpcb+consistent-reader'];
  const readers: Side[] = ['tpcb+consistent-reader', 'tpcb+plain-reader'];
  return {
    id: 'consistent-read',
    title: `Consistent reads under TPC-B-like load (${SHARDS} shards through the proxy, scale ${opts.scale}, ${clients} clients, a reader every ${READER_INTERVAL_MS} ms)`,
    columns: [...SIDES],
    baseline: 'tpcb',
    rows: [
      row('tps', 'TPC-B-like rate', 'tps', (r) => r.tps),
      row('commit-avg', 'END (commit) latency, average', 'ms', (r) => r.endAvgMs),
      row('latency-p99', 'transaction latency p99', 'ms', (r) => r.p99Ms),
      row('cut-p50', "reader's cut (first statement), median", 'ms', (r) => (r.cutMs === undefined ? undefined : percentile(r.cutMs, 50)), consistent),
      row('cut-p99', "reader's cut (first statement), p99", 'ms', (r) => (r.cutMs === undefined ? undefined : percentile(r.cutMs, 99)), consistent),
      row('gate-hold-avg', 'commit gate held per cut (proxy histogram), average', 'ms', (r) => r.holdAvgMs, consistent),
      row('delayed', 'commits that waited for a cut, per cut (proxy counter)', 'count', (r) => r.delayedPerCut, consistent),
      row('reads', 'reader transactions, all rounds', 'count', (r) => r.readerTransactions, readers, total),
      row('wrong-sums', 'reader transactions whose branch and teller sums differ, all rounds', 'count', (r) => r.wrongSums, readers, total),
    ],
    notes: [
      "The reader's cut is timed by the client around its first statement (`SELECT 1`), which takes the cut: it covers the gates being taken on every shard, the snapshots and the round trips, so it bounds from above how long a commit can wait for the cut.",
      'The gate hold is what the proxy measures from asking for the first gate to releasing the last (`shardgate_cut_gate_hold_seconds`).',
      'The plain reader runs the same sums at READ COMMITTED, shard by shard: its unequal sums are two-phase commits seen on one shard and not yet on another.',
    ],
  };
}
