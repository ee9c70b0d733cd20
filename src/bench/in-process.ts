import { parseSync } from 'libpg-query';
import { parseConfig } from '../config/load.js';
import { mergeStreams } from '../engine/merge/merge-streams.js';
import { TEXT_AS_BYTES } from '../engine/values.js';
import { initParser, Planner } from '../planner/planner.js';
import type { MergeSpec } from '../planner/plan.js';
import type { FieldDescription, RawRow } from '../protocol/fields.js';
import type { BenchOptions } from './bench-options.js';
import type { Cell, ResultRow, ResultTable } from './result-table.js';
import { PGBENCH_TABLE_RULES } from './shardgate-process.js';
import type { BenchLog } from './select-only.js';

/** Nanoseconds per call of `fn` over `iterations` calls (after a tenth, at least `minWarmup`, as warm-up), as µs. */
function microsPerCall(iterations: number, fn: (i: number) => unknown, minWarmup = 1): number {
  const warm = Math.max(minWarmup, Math.floor(iterations / 10));
  for (let i = 0; i < warm; i++) fn(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(warm + i);
  return Number(process.hrtime.bigint() - t0) / 1000 / iterations;
}

/** A configuration of 4 shards with the pgbench rules; the planner never connects, so the URLs are never used. */
export function planningConfig(): ReturnType<typeof parseConfig> {
  return parseConfig({
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    shards: Object.fromEntries([0, 1, 2, 3].map((i) => [`s${i}`, `postgres://postgres@127.0.0.1:${5500 + i}/app`])),
    tables: PGBENCH_TABLE_RULES,
  });
}

const POINT_SELECT = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';

/**
 * Parse + route cost per statement: a cache hit (the same parameterized text
 * again) beside a Map lookup of the text; a miss of a known shape (a new
 * literal each time, so the text was never seen but differs from seen ones
 * only in its constant: planned from the shape cache) and a new shape (a new
 * column alias as well, so the text is parsed and analysed), each beside
 * libpg-query's parse of the same texts alone. Every plan is checked to route
 * to exactly one shard.
 */
export async function measurePlanning(
  iterations: number,
): Promise<{ hit: number; hitBaseline: number; miss: number; missBaseline: number; newShape: number; newShapeBaseline: number }> {
  await initParser();
  const planner = new Planner(planningConfig());
  const ctx = { hintShard: null };
  const check = planner.plan(POINT_SELECT, ['42'], ctx);
  if (check.kind !== 'shards' || check.statements.length !== 1) throw new Error(`the point select did not route to one shard: ${JSON.stringify(check).slice(0, 300)}`);
  const params = Array.from({ length: 1024 }, (_, i) => [String(i + 1)] as const);
  let sink = 0;
  const hit = microsPerCall(iterations, (i) => planner.plan(POINT_SELECT, params[i & 1023]!, ctx));
  const cache = new Map([[POINT_SELECT, check]]);
  const hitBaseline = microsPerCall(iterations, () => (sink += cache.get(POINT_SELECT) === undefined ? 1 : 0));
  // A miss of a known shape costs a few µs: timed over half the hit's calls, so one garbage collection does not dominate the window.
  const shapeIterations = Math.max(100, Math.floor(iterations / 2));
  const missIterations = Math.max(100, Math.floor(iterations / 10));
  // The miss paths run code the hit never did (the shape scanner, the parser's WASM) and route with other
  // value kinds: measured from a cold start they take several thousand calls to reach their steady cost.
  const missWarmup = 10_000;
  const oneShard = (plan: ReturnType<Planner['plan']>): number => {
    if (plan.kind !== 'shards' || plan.statements.length !== 1) throw new Error(`a literal point select did not route to one shard: ${JSON.stringify(plan).slice(0, 300)}`);
    return 1;
  };
  // Literal values make every text new. Offsets keep the warm-up's texts apart from the timed ones.
  const miss = microsPerCall(shapeIterations, (i) => (sink += oneShard(planner.plan(`SELECT abalance FROM pgbench_accounts WHERE aid = ${1_000_000 + i}`, [], ctx))), missWarmup);
  const missBaseline = microsPerCall(shapeIterations, (i) => parseSync(`SELECT abalance FROM pgbench_accounts WHERE aid = ${5_000_000 + i}`), missWarmup);
  // A new alias makes every text a new statement shape too: parsed and analysed.
  const newShape = microsPerCall(missIterations, (i) => (sink += oneShard(planner.plan(`SELECT abalance AS b${i} FROM pgbench_accounts WHERE aid = ${1_000_000 + i}`, [], ctx))), missWarmup);
  const newShapeBaseline = microsPerCall(missIterations, (i) => parseSync(`SELECT abalance AS c${i} FROM pgbench_accounts WHERE aid = ${5_000_000 + i}`), missWarmup);
  if (sink < 0) throw new Error('unreachable');
  return { hit, hitBaseline, miss, missBaseline, newShape, newShapeBaseline };
}

const INT8_TEXT: FieldDescription = { name: 'id', tableOid: 0, columnAttr: 0, typeOid: 20, typeSize: 8, typeModifier: -1, format: 0 };
const TEXT_COL: FieldDescription = { name: 'payload', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 };

/** `streams` sorted streams of int8 ids (stream k holds k, k+streams, …) with a short text column, in batches of 1000 rows. */
export function sortedStreams(streams: number, rowsPerStream: number): RawRow[][][] {
  return Array.from({ length: streams }, (_, k) => {
    const batches: RawRow[][] = [];
    for (let start = 0; start < rowsPerStream; start += 1000) {
      const batch: RawRow[] = [];
      for (let j = start; j < Math.min(rowsPerStream, start + 1000); j++) {
        const id = j * streams + k;
        batch.push([Buffer.from(String(id)), Buffer.from(`row-${id}`)]);
      }
      batches.push(batch);
    }
    return batches;
  });
}

async function* replay(batches: readonly RawRow[][]): AsyncGenerator<readonly RawRow[]> {
  for (const b of batches) yield b;
}

/** The floor a merge is compared with: read the streams one after another, handing every row on in new batches of 1000. */
async function* concatenateRows(streams: readonly RawRow[][][]): AsyncGenerator<readonly RawRow[]> {
  let out: RawRow[] = [];
  for (const s of streams) {
    for await (const batch of replay(s)) {
      for (const row of batch) {
        out.push(row);
        if (out.length === 1000) {
          yield out;
          out = [];
        }
      }
    }
  }
  if (out.length > 0) yield out;
}

async function rowsPerSecond(run: () => AsyncIterable<readonly RawRow[]>, expected: number): Promise<number> {
  const t0 = performance.now();
  let rows = 0;
  for await (const batch of run()) rows += batch.length;
  const s = (performance.now() - t0) / 1000;
  if (rows !== expected) throw new Error(`merge returned ${rows} rows, expected ${expected}`);
  return rows / s;
}

/**
 * Rows per second of mergeStreams over 4 in-memory sorted streams: ORDER BY
 * (k-way merge) and no ORDER BY, beside a plain loop that concatenates the
 * same streams and hands every row on in new batches. Best of `passes` runs each.
 */
export async function measureMerge(rowsPerStream: number, passes = 3): Promise<{ ordered: number; unordered: number; concatenation: number }> {
  const streams = sortedStreams(4, rowsPerStream);
  const total = 4 * rowsPerStream;
  const fields = [INT8_TEXT, TEXT_COL];
  const base: MergeSpec = { visibleColumns: 2, aggregate: null, distinct: false, orderBy: [], offset: null, limit: null };
  const ordered: MergeSpec = { ...base, orderBy: [{ column: 0, descending: false, nullsFirst: false }] };
  const best = { ordered: 0, unordered: 0, concatenation: 0 };
  for (let p = 0; p < passes; p++) {
    best.concatenation = Math.max(best.concatenation, await rowsPerSecond(() => concatenateRows(streams), total));
    best.ordered = Math.max(best.ordered, await rowsPerSecond(() => mergeStreams(streams.map(replay), fields, ordered, [], { text: TEXT_AS_BYTES }), total));
    best.unordered = Math.max(best.unordered, await rowsPerSecond(() => mergeStreams(streams.map(replay), fields, base, [], { text: TEXT_AS_BYTES }), total));
  }
  return best;
}

function one(v: number): Cell {
  return { kind: 'samples', samples: [v] };
}

/** The in-process figures as a table: ShardGate's code beside a baseline doing the least the same job needs. */
export async function runInProcess(opts: BenchOptions, log: BenchLog): Promise<ResultTable> {
  const plan = await measurePlanning(opts.planIterations);
  log(
    `in-process plan: hit ${plan.hit.toFixed(2)} µs, miss ${plan.miss.toFixed(1)} µs (parse alone ${plan.missBaseline.toFixed(1)} µs), ` +
      `new shape ${plan.newShape.toFixed(1)} µs (parse alone ${plan.newShapeBaseline.toFixed(1)} µs)`,
  );
  const merge = await measureMerge(opts.mergeRowsPerStream);
  log(`in-process merge: ordered ${(merge.ordered / 1e6).toFixed(2)} M rows/s, concatenation ${(merge.concatenation / 1e6).toFixed(2)} M rows/s`);
  const rows: ResultRow[] = [
    { id: 'plan-hit', label: 'parse + route, cache hit', unit: 'µs', cells: { baseline: one(plan.hitBaseline), shardgate: one(plan.hit) }, note: 'baseline: a Map lookup of the SQL text' },
    {
      id: 'plan-miss',
      label: 'parse + route, cache miss',
      unit: 'µs',
      cells: { baseline: one(plan.missBaseline), shardgate: one(plan.miss) },
      note: 'a new literal each time (planned from the shape cache); baseline: libpg-query parseSync alone',
    },
    {
      id: 'plan-new-shape',
      label: 'parse + route, new statement shape',
      unit: 'µs',
      cells: { baseline: one(plan.newShapeBaseline), shardgate: one(plan.newShape) },
      note: 'a new column alias each time (parsed and analysed); baseline: libpg-query parseSync alone',
    },
    {
      id: 'merge-ordered',
      label: 'k-way ORDER BY merge of 4 streams',
      unit: 'rows/s',
      cells: { baseline: one(merge.concatenation), shardgate: one(merge.ordered) },
      note: 'baseline: concatenating the 4 streams row by row',
    },
    {
      id: 'merge-unordered',
      label: 'merge of 4 streams without ORDER BY',
      unit: 'rows/s',
      cells: { baseline: one(merge.concatenation), shardgate: one(merge.unordered) },
      note: 'baseline: concatenating the 4 streams row by row',
    },
  ];
  return {
    id: 'in-process',
    title: 'In-process: planner and merge, no network',
    columns: ['baseline', 'shardgate'],
    baseline: 'baseline',
    rows,
    notes: [
      `Planner: \`${POINT_SELECT}\` with 4 shards and the pgbench rules; ${opts.planIterations.toLocaleString('en-US')} calls for the hit, half as many for the miss (the literal text \`… WHERE aid = <n>\`, a new value each time) and a tenth for the new shape (\`SELECT abalance AS b<n> …\`, a new alias each time).`,
      `Merge: ${opts.mergeRowsPerStream.toLocaleString('en-US')} rows per stream (int8 key and a short text, text format), batches of 1000; best of 3 passes.`,
    ],
  };
}
