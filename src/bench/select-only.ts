import type { BenchOptions } from './bench-options.js';
import { pgbenchThreads, runPgbench, type PgbenchTarget } from './pgbench.js';
import type { Cell, ResultRow, ResultTable } from './result-table.js';

/** One system pgbench drives: where it listens, or why it cannot take part. */
export interface PgbenchSide {
  readonly name: string;
  /** Null when the side is unavailable (see `unavailable`). */
  readonly target: PgbenchTarget | null;
  /** Why the side has no figure for a query mode (or at all), or null when it can run it. */
  unavailable(mode: string): string | null;
  /** The process between client and server (a proxy), whose CPU time per transaction is measured; absent for direct. */
  readonly proxyPid?: () => number | null;
}

/** Select-only figures: transactions per second of every side, and the CPU time the proxies spent per transaction. */
export interface SelectOnlyTables {
  readonly tps: ResultTable;
  readonly proxyCpu: ResultTable;
}

/** Progress lines go here (stderr in the command). */
export type BenchLog = (line: string) => void;

/** Sides in a different order each round, so no side always runs first (warm caches, thermal drift). */
export function rotate<T>(items: readonly T[], round: number): T[] {
  if (items.length === 0) return [];
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Row id of a select-only workload, e.g. 'simple-c16'. */
export function selectOnlyRowId(mode: string, clients: number): string {
  return `${mode}-c${clients}`;
}

/** The first line of an error, for a table cell. */
export function shortReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 120);
}

/**
 * `pgbench -S` on every side for each client count and query mode, the sides
 * interleaved within each round. Each cell holds one tps sample per round; a
 * run that fails becomes a missing cell with its reason, and the others go on.
 */
export async function runSelectOnly(sides: readonly PgbenchSide[], opts: BenchOptions, cores: number, log: BenchLog): Promise<SelectOnlyTables> {
  const samples = new Map<string, Map<string, number[]>>();
  const cpuSamples = new Map<string, Map<string, number[]>>();
  const add = (into: Map<string, Map<string, number[]>>, rowId: string, side: string, value: number): void => {
    if (!into.has(rowId)) into.set(rowId, new Map());
    into.get(rowId)!.set(side, [...(into.get(rowId)!.get(side) ?? []), value]);
  };
  const failures = new Map<string, Map<string, string>>();
  const workloads = opts.clientCounts.flatMap((clients) => opts.queryModes.map((mode) => ({ clients, mode })));
  for (let round = 0; round < opts.rounds; round++) {
    for (const { clients, mode } of workloads) {
      const rowId = selectOnlyRowId(mode, clients);
      for (const side of rotate(sides, round)) {
        if (side.target === null || side.unavailable(mode) !== null) continue;
        if (failures.get(rowId)?.has(side.name)) continue;
        const args = ['-S', '-n', '-M', mode, '-T', String(opts.durationS), '-c', String(clients), '-j', String(pgbenchThreads(clients, cores))];
        try {
          const run = await runPgbench(side.target, { args, cpuPid: side.proxyPid?.() ?? null });
          const tps = run.summary.tps;
          add(samples, rowId, side.name, tps);
          const cpuUs = run.cpuUsPerTransaction;
          if (cpuUs !== null) add(cpuSamples, rowId, side.name, cpuUs);
          log(`select-only round ${round + 1}/${opts.rounds} -M ${mode} -c ${clients} ${side.name}: ${tps.toFixed(0)} tps${cpuUs === null ? '' : `, proxy CPU ${cpuUs.toFixed(1)} µs per transaction`}`);
        } catch (err) {
          if (!failures.has(rowId)) failures.set(rowId, new Map());
          failures.get(rowId)!.set(side.name, shortReason(err));
          log(`select-only -M ${mode} -c ${clients} ${side.name} failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
  }
  const label = (mode: string, clients: number): string => `-S ${mode}, ${clients} client${clients === 1 ? '' : 's'}`;
  const rows: ResultRow[] = workloads.map(({ clients, mode }) => {
    const rowId = selectOnlyRowId(mode, clients);
    const cells: Record<string, Cell> = {};
    for (const side of sides) {
      const reason = side.target === null ? side.unavailable(mode) ?? 'unavailable' : side.unavailable(mode);
      const failed = failures.get(rowId)?.get(side.name);
      const got = samples.get(rowId)?.get(side.name);
      if (got !== undefined && got.length > 0) cells[side.name] = { kind: 'samples', samples: got };
      else cells[side.name] = { kind: 'missing', reason: reason ?? (failed !== undefined ? `failed: ${failed}` : 'not run') };
    }
    return { id: rowId, label: label(mode, clients), unit: 'tps', cells };
  });
  const proxies = sides.filter((s) => s.proxyPid !== undefined);
  const cpuRows: ResultRow[] = workloads.map(({ clients, mode }) => {
    const rowId = selectOnlyRowId(mode, clients);
    const cells: Record<string, Cell> = {};
    for (const side of proxies) {
      const got = cpuSamples.get(rowId)?.get(side.name);
      cells[side.name] = got !== undefined && got.length > 0 ? { kind: 'samples', samples: got } : { kind: 'missing', reason: 'not measured' };
    }
    return { id: rowId, label: label(mode, clients), unit: 'µs', cells };
  });
  const proxyCpu: ResultTable = {
    id: 'select-only-proxy-cpu',
    title: 'CPU time of the proxy process per select-only transaction (user + system, from /proc)',
    columns: proxies.map((s) => s.name),
    baseline: proxies[0]?.name ?? null,
    rows: cpuRows,
    notes: [
      'Microseconds of CPU the proxy process used per transaction during each run (median of rounds); ratios against the first proxy.',
      'On a machine where every core is busy, throughput through a proxy is bounded by this cost plus what the client and the server spend per transaction.',
    ],
  };
  const tps: ResultTable = {
    id: 'select-only',
    title: `pgbench -S (select-only), scale ${opts.scale}, ${opts.durationS}-s runs × ${opts.rounds} round${opts.rounds === 1 ? '' : 's'}`,
    columns: sides.map((s) => s.name),
    baseline: sides[0]?.name ?? null,
    rows,
    notes: [
      'Transactions per second (median of rounds; ± is half the spread between rounds); ratios against direct PostgreSQL.',
      `PgBouncer runs in transaction pooling with default_pool_size ${opts.poolSize}; ShardGate with pool.maxPerShard ${opts.poolSize}.`,
      'pgbench runs with -n (no vacuum) on every side; tables initialised with `pgbench -i` directly for direct/PgBouncer and through the proxy for ShardGate.',
    ],
  };
  return { tps, proxyCpu };
}
