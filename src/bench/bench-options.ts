/** The comparisons of the benchmark, in the order they run. */
export const SECTIONS = ['select-only', 'tpcb', 'cross-shard', 'in-process', 'memory', 'cdc', 'consistent-read', 'export'] as const;
export type Section = (typeof SECTIONS)[number];

/** Everything that sets how long and how big a benchmark run is. */
export interface BenchOptions {
  readonly quick: boolean;
  /** pgbench scale of the select-only and TPC-B-like runs. */
  readonly scale: number;
  /** Seconds per pgbench run. */
  readonly durationS: number;
  /** Rounds of every select-only measurement; sides alternate within each round. */
  readonly rounds: number;
  readonly clientCounts: readonly number[];
  readonly queryModes: readonly ('simple' | 'prepared')[];
  readonly tpcbClients: number;
  readonly tpcbDurationS: number;
  readonly tpcbRounds: number;
  /** Rows of the table the cross-shard queries read. */
  readonly queryRows: number;
  /** Timed runs of each cross-shard query on each side. */
  readonly queryRuns: number;
  /** Statements timed per in-process figure (cache hit; a miss uses a tenth). */
  readonly planIterations: number;
  /** Rows per stream of the in-process merge (4 streams). */
  readonly mergeRowsPerStream: number;
  /** Rows of the big cross-shard result read slowly. */
  readonly streamRows: number;
  readonly idleClients: number;
  /** Backend connections per shard of the proxy, and PgBouncer's default_pool_size. */
  readonly poolSize: number;
  /** Sections to run; all by default. */
  readonly sections: ReadonlySet<Section>;
  /** Folder the .md and .json results go to. */
  readonly outDir: string;
  /**
   * Another checkout of ShardGate (built) whose proxy runs as the side
   * `shardgate-1-baseline` over the same shard as `shardgate-1`, for a
   * before/after comparison in one run; null: none.
   */
  readonly baseline: string | null;
}

/** The full run: under ten minutes on 2 cores. */
export function fullOptions(): BenchOptions {
  return {
    quick: false,
    scale: 16,
    durationS: 5,
    rounds: 2,
    clientCounts: [1, 16, 64],
    queryModes: ['simple', 'prepared'],
    tpcbClients: 16,
    tpcbDurationS: 10,
    tpcbRounds: 3,
    queryRows: 1_000_000,
    queryRuns: 30,
    planIterations: 200_000,
    mergeRowsPerStream: 250_000,
    streamRows: 5_000_000,
    idleClients: 1000,
    poolSize: 20,
    sections: new Set(SECTIONS),
    outDir: 'bench-results',
    baseline: null,
  };
}

/** `--quick`: about two minutes (scale 2, 5-s runs, fewer client counts, a 500k-row read). */
export function quickOptions(): BenchOptions {
  return {
    ...fullOptions(),
    quick: true,
    scale: 2,
    durationS: 5,
    rounds: 1,
    clientCounts: [1, 16],
    tpcbDurationS: 5,
    tpcbRounds: 1,
    queryRows: 200_000,
    queryRuns: 10,
    planIterations: 50_000,
    mergeRowsPerStream: 100_000,
    streamRows: 500_000,
  };
}

const USAGE = `usage: npm run bench -- [--quick] [--only SECTION[,SECTION…]] [--out DIR] [--clients N[,N…]] [--rounds N] [--baseline DIR]
  --quick        about two minutes: scale 2, 5-s runs, 1 and 16 clients, a 500k-row read
  --only LIST    run only these sections: ${SECTIONS.join(', ')}
  --out DIR      folder for <timestamp>.md and .json (default bench-results)
  --clients LIST select-only client counts (default 1,16,64; quick 1,16)
  --rounds N     select-only rounds (default 2; quick 1)
  --baseline DIR another built checkout of ShardGate, run as the side shardgate-1-baseline over the same shard`;

/** A positive integer argument, or an Error with the usage text. */
function positive(arg: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${arg} needs positive integers, got ${value}\n${USAGE}`);
  return n;
}

/** Reads the command line (arguments after the script). Throws an Error with the usage text on a bad argument. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions | 'help' {
  let opts = fullOptions();
  /** Set by options that refine whichever preset is chosen, in any order. */
  let refined: Partial<Pick<BenchOptions, 'clientCounts' | 'rounds' | 'baseline'>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    if (arg === '--quick') {
      opts = { ...quickOptions(), sections: opts.sections, outDir: opts.outDir };
    } else if (arg === '--only' || arg === '--out' || arg === '--clients' || arg === '--rounds' || arg === '--baseline') {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      if (arg === '--out') {
        opts = { ...opts, outDir: value };
        continue;
      }
      if (arg === '--clients') {
        refined = { ...refined, clientCounts: value.split(',').map((v) => positive(arg, v.trim())) };
        continue;
      }
      if (arg === '--rounds') {
        refined = { ...refined, rounds: positive(arg, value) };
        continue;
      }
      if (arg === '--baseline') {
        refined = { ...refined, baseline: value };
        continue;
      }
      const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (unknown.length > 0 || names.length === 0) throw new Error(`unknown section ${unknown.join(', ') || '(none)'}\n${USAGE}`);
      opts = { ...opts, sections: new Set(names as Section[]) };
    } else {
      throw new Error(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  return { ...opts, ...refined };
}

/** The usage text. */
export function benchUsage(): string {
  return USAGE;
}
