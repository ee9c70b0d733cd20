import type { BenchOptions } from './bench-options.js';
import type { BenchCluster } from './pg-cluster.js';
import { commandLatency } from './pgbench-output.js';
import { pgbenchThreads, runPgbench, type PgbenchTarget } from './pgbench.js';
import type { Cell, ResultRow, ResultTable } from './result-table.js';
import { rotate, shortReason, type BenchLog } from './select-only.js';
import { mean, percentile } from './stats.js';
import { runTwoPhaseClient } from './two-phase-client.js';

/** A side of the TPC-B-like comparison run by pgbench; `shards` set for ShardGate, whose 2PC decisions are counted there. */
export interface PgbenchTpcbSide {
  readonly name: string;
  readonly target: PgbenchTarget;
  /** The shards behind a proxy (database `database`), or null for a plain server. */
  readonly shards: readonly BenchCluster[] | null;
  readonly database: string;
  /** The proxy process, whose CPU time per transaction is measured; absent for a plain server. */
  readonly proxyPid?: () => number | null;
}

/**
 * The side run by the hand-written two-phase client (src/bench/two-phase-client.ts)
 * over the same shards as ShardGate, without the proxy.
 */
export interface HandWrittenTpcbSide {
  readonly name: string;
  readonly shardUrls: readonly string[];
}

export type TpcbSide = PgbenchTpcbSide | HandWrittenTpcbSide;

/** A shard's clock, as text PostgreSQL reads back as timestamptz. */
async function shardClock(shard: BenchCluster, database: string): Promise<string> {
  const rows = await shard.query<{ t: string }>('SELECT clock_timestamp()::text AS t', [], database);
  return rows[0]!.t;
}

/**
 * Commit decisions written on the shards since their clocks read `since`:
 * one row in shardgate.tx_decision on the anchor per two-phase commit. Rows
 * younger than a minute are never collected, so counting right after a
 * short run sees all of them.
 */
export async function countDecisions(shards: readonly BenchCluster[], database: string, since: readonly string[]): Promise<number> {
  const counts = await Promise.all(
    shards.map(async (shard, i) => {
      const rows = await shard.query<{ n: string }>(
        "SELECT count(*) AS n FROM shardgate.tx_decision WHERE outcome = 'commit' AND gid LIKE 'sg\\_%' AND created_at >= $1::timestamptz",
        [since[i]],
        database,
      );
      return Number(rows[0]!.n);
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

interface TpcbSamples {
  tps: number[];
  latencyAvg: number[];
  p50: number[];
  p95: number[];
  p99: number[];
  endAvg: number[];
  twoPhaseShare: number[];
  proxyCpu: number[];
}

/** Adds a run's per-transaction latency percentiles to the side's samples (nothing for a run that logged none). */
function addPercentiles(s: TpcbSamples, latenciesMs: readonly number[]): void {
  if (latenciesMs.length === 0) return;
  s.p50.push(percentile(latenciesMs, 50));
  s.p95.push(percentile(latenciesMs, 95));
  s.p99.push(percentile(latenciesMs, 99));
}

const METRICS: readonly { key: keyof TpcbSamples; id: string; label: string; unit: string }[] = [
  { key: 'tps', id: 'tps', label: 'transactions per second', unit: 'tps' },
  { key: 'latencyAvg', id: 'latency-avg', label: 'transaction latency, average', unit: 'ms' },
  { key: 'p50', id: 'latency-p50', label: 'transaction latency p50', unit: 'ms' },
  { key: 'p95', id: 'latency-p95', label: 'transaction latency p95', unit: 'ms' },
  { key: 'p99', id: 'latency-p99', label: 'transaction latency p99', unit: 'ms' },
  { key: 'endAvg', id: 'commit-avg', label: 'END (commit) latency, average', unit: 'ms' },
  { key: 'twoPhaseShare', id: 'two-phase-share', label: 'transactions that used 2PC', unit: '%' },
  { key: 'proxyCpu', id: 'proxy-cpu', label: 'proxy CPU time per transaction (user + system)', unit: 'µs' },
];

/**
 * pgbench's TPC-B-like script on each side, sides alternating over rounds,
 * with --report-per-command (END latency) and -l (per-transaction latency
 * percentiles). On a side with shards, the share of transactions that used
 * two-phase commit is the commit decisions written during the run divided
 * by the transactions pgbench processed.
 */
export async function runTpcb(sides: readonly TpcbSide[], opts: BenchOptions, cores: number, log: BenchLog): Promise<ResultTable> {
  const samples = new Map<string, TpcbSamples>(
    sides.map((s) => [s.name, { tps: [], latencyAvg: [], p50: [], p95: [], p99: [], endAvg: [], twoPhaseShare: [], proxyCpu: [] }]),
  );
  const failures = new Map<string, string>();
  const clients = opts.tpcbClients;
  for (let round = 0; round < opts.tpcbRounds; round++) {
    for (const side of rotate(sides, round)) {
      if (failures.has(side.name)) continue;
      const s = samples.get(side.name)!;
      try {
        if ('shardUrls' in side) {
          const run = await runTwoPhaseClient({ shardUrls: side.shardUrls, clients, durationS: opts.tpcbDurationS, scale: opts.scale });
          s.tps.push(run.tps);
          if (run.latenciesMs.length > 0) s.latencyAvg.push(mean(run.latenciesMs));
          addPercentiles(s, run.latenciesMs);
          s.endAvg.push(run.commitAvgMs);
          s.twoPhaseShare.push(run.twoPhasePercent);
          s.proxyCpu.push(run.cpuUsPerTransaction);
          log(`tpcb round ${round + 1}/${opts.tpcbRounds} ${side.name}: ${run.tps.toFixed(0)} tps`);
          continue;
        }
        const since = side.shards === null ? [] : await Promise.all(side.shards.map((c) => shardClock(c, side.database)));
        const args = ['-n', '-T', String(opts.tpcbDurationS), '-c', String(clients), '-j', String(pgbenchThreads(clients, cores)), '--report-per-command'];
        const run = await runPgbench(side.target, { args, transactionLog: true, cpuPid: side.proxyPid?.() ?? null });
        if (run.cpuUsPerTransaction !== null) s.proxyCpu.push(run.cpuUsPerTransaction);
        s.tps.push(run.summary.tps);
        if (run.summary.latencyAverageMs !== null) s.latencyAvg.push(run.summary.latencyAverageMs);
        addPercentiles(s, run.latenciesMs);
        const end = commandLatency(run.summary, /^(END|COMMIT)\b/i);
        if (end !== null) s.endAvg.push(end);
        if (side.shards !== null && run.summary.transactions > 0) {
          const decisions = await countDecisions(side.shards, side.database, since);
          s.twoPhaseShare.push((100 * decisions) / run.summary.transactions);
        } else if (side.shards === null) {
          s.twoPhaseShare.push(0);
        }
        log(`tpcb round ${round + 1}/${opts.tpcbRounds} ${side.name}: ${run.summary.tps.toFixed(0)} tps`);
      } catch (err) {
        failures.set(side.name, shortReason(err));
        log(`tpcb ${side.name} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
  const rows: ResultRow[] = METRICS.map((m) => {
    const cells: Record<string, Cell> = {};
    for (const side of sides) {
      const got = samples.get(side.name)![m.key];
      const failed = failures.get(side.name);
      const reason = failed !== undefined ? `failed: ${failed}` : m.key === 'proxyCpu' && !('shardUrls' in side) && side.proxyPid === undefined ? 'no proxy' : 'not measured';
      cells[side.name] = got.length > 0 ? { kind: 'samples', samples: got } : { kind: 'missing', reason };
    }
    return { id: m.id, label: m.label, unit: m.unit, cells };
  });
  return {
    id: 'tpcb',
    title: `pgbench TPC-B-like, scale ${opts.scale}, ${clients} clients, ${opts.tpcbDurationS}-s runs × ${opts.tpcbRounds} round${opts.tpcbRounds === 1 ? '' : 's'}`,
    columns: sides.map((s) => s.name),
    baseline: sides[0]?.name ?? null,
    rows,
    notes: [
      'The four pgbench tables sharded by aid, tid, bid and aid: most transactions write to several shards and commit with 2PC.',
      ...(sides.some((s) => 'shardUrls' in s)
        ? [
            'hand-written-2pc: a Node.js client (src/bench/two-phase-client.ts) sending the same statements straight to the shard owning each key, BEGIN in the same write as a shard\'s first statement, and committing with ShardGate\'s commit protocol and statements (PREPAREs in parallel, gate + decision row + COMMIT on the anchor, COMMIT PREPAREDs in parallel) with the anchor an application would pick, the first written shard (ShardGate picks the writer first written last); its CPU row is that client process\'s own CPU per transaction, the coordination cost without a proxy.',
          ]
        : []),
      '2PC share: commit decision rows written to shardgate.tx_decision during the run ÷ transactions pgbench processed.',
      'Latency percentiles come from pgbench -l (whole transaction, commit included); the END latency is the average pgbench --report-per-command gives.',
      ...(opts.scale < 16 ? [`At scale ${opts.scale} there are only ${opts.scale} branch rows, so ${clients} clients mostly queue on their row locks.`] : []),
    ],
  };
}
