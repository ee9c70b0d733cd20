/**
 * Parse + route cost of the planner on analysis-cache misses and hits, beside
 * libpg-query's parseSync alone, in interleaved batches (median of the CPU
 * time per call reported). A "miss" is a new text of a known shape (a new
 * literal, as `pgbench -M simple` sends): from a shape's third text on, the
 * planner plans it from the shape cache without parsing (src/planner/README.md,
 * "Cache"); the benchmark's in-process section also times new shapes.
 *
 *   npx tsx scripts/profile-planner.ts [batches] [--compare DIR] [--loop SHAPE]
 *
 * `--compare DIR` also times the Planner of another source tree (DIR/src) in
 * the same process, interleaved with this one. `--loop SHAPE` only runs misses
 * of one shape (or `mix`) for a while, for `node --cpu-prof`.
 *
 * tsx compiles with esbuild's keepNames, which gives functions a `name`
 * property of their own (dictionary-mode closures): figures here run somewhat
 * above those of the tsc build (`npm run build`, which the bench measures).
 */
import { pathToFileURL } from 'node:url';
import { parseSync } from 'libpg-query';
import { parseConfig } from '../src/config/load.js';
import { initParser, Planner } from '../src/planner/planner.js';

type PlannerLike = { plan(sql: string, params: readonly (string | null | undefined)[], ctx: { hintShard: null }): unknown };
type PlannerCtor = new (config: ReturnType<typeof parseConfig>) => PlannerLike;

const config = parseConfig({
  database: 'app',
  auth: { users: [{ name: 'app', password: 'app' }] },
  shards: Object.fromEntries([0, 1, 2, 3].map((i) => [`s${i}`, `postgres://postgres@127.0.0.1:${5500 + i}/app`])),
  tables: { pgbench_accounts: { key: 'aid' }, pgbench_tellers: { key: 'tid' }, pgbench_branches: { key: 'bid' }, pgbench_history: { key: 'aid' } },
});

/** Statement shapes; `n` makes every text new (a text-cache miss, served by the shape cache), as `pgbench -M simple` does. */
const SHAPES: Record<string, (n: number) => string> = {
  point: (n) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${n};`,
  updAcc: (n) => `UPDATE pgbench_accounts SET abalance = abalance + ${n % 5000} WHERE aid = ${n};`,
  updTel: (n) => `UPDATE pgbench_tellers SET tbalance = tbalance + ${n % 5000} WHERE tid = ${n % 160};`,
  updBr: (n) => `UPDATE pgbench_branches SET bbalance = bbalance + ${n % 5000} WHERE bid = ${n % 16};`,
  insHist: (n) => `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${n % 160}, ${n % 16}, ${n}, ${n % 5000}, CURRENT_TIMESTAMP);`,
  crossOrder: (n) => `SELECT aid, abalance FROM pgbench_accounts WHERE abalance > ${n} ORDER BY abalance DESC, aid LIMIT 10`,
  crossAgg: (n) => `SELECT bid, count(*), sum(abalance), avg(abalance) FROM pgbench_accounts WHERE aid < ${n} GROUP BY bid ORDER BY bid LIMIT 5`,
};
const MIX = ['point', 'updAcc', 'point', 'updTel', 'updBr', 'insHist', 'crossOrder', 'point', 'crossAgg'];

let counter = 10_000_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/**
 * µs per call of `fn` over `n` calls: this process's CPU time, not wall time,
 * so that other work on a shared machine does not count.
 */
function time(n: number, fn: () => unknown): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / n;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const batches = Number(args.find((a) => /^\d+$/.test(a)) ?? 9);
  const cmpIdx = args.indexOf('--compare');
  const loopIdx = args.indexOf('--loop');
  await initParser();
  const planners: { name: string; ctor: PlannerCtor }[] = [{ name: 'now', ctor: Planner as unknown as PlannerCtor }];
  if (cmpIdx >= 0) {
    const dir = args[cmpIdx + 1] as string;
    const mod = (await import(pathToFileURL(`${dir}/src/planner/planner.ts`).href)) as { Planner: PlannerCtor; initParser: () => Promise<void> };
    await mod.initParser();
    planners.unshift({ name: 'before', ctor: mod.Planner });
  }
  const ctx = { hintShard: null };

  if (loopIdx >= 0) {
    const shape = args[loopIdx + 1] ?? 'mix';
    const names = shape === 'mix' ? MIX : [shape];
    const p = new Planner(config);
    const t0 = Date.now();
    let k = 0;
    while (Date.now() - t0 < 8000) {
      for (let i = 0; i < 1000; i++) p.plan((SHAPES[names[k++ % names.length] as string] as (n: number) => string)(counter++), [], ctx);
    }
    console.log(`looped ${k} misses`);
    return;
  }

  const shapes = [...Object.keys(SHAPES), 'mix'];
  const textFor = (shape: string, i: number): string => {
    const name = shape === 'mix' ? (MIX[i % MIX.length] as string) : shape;
    return (SHAPES[name] as (n: number) => string)(counter++);
  };
  const instances = planners.map((p) => ({ name: p.name, planner: new p.ctor(config) }));
  // Warm every path.
  for (const shape of shapes) for (let i = 0; i < 300; i++) {
    const sql = textFor(shape, i);
    parseSync(sql);
    for (const x of instances) x.planner.plan(textFor(shape, i), [], ctx);
  }
  const N = 500;
  const samples: Record<string, number[]> = {};
  const add = (k: string, v: number): void => {
    (samples[k] ??= []).push(v);
  };
  for (let b = 0; b < batches; b++) {
    for (const shape of shapes) {
      let j = 0;
      add(`${shape}|parseSync`, time(N, () => parseSync(textFor(shape, j++))));
      for (const x of instances) {
        j = 0;
        add(`${shape}|${x.name} miss`, time(N, () => x.planner.plan(textFor(shape, j++), [], ctx)));
      }
    }
    const hitSql = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
    const params = Array.from({ length: 1024 }, (_, i) => [String(i + 1)]);
    for (const x of instances) {
      let j = 0;
      add(`hit|${x.name} hit`, time(20_000, () => x.planner.plan(hitSql, params[j++ & 1023] as string[], ctx)));
    }
  }
  // Ratios are taken per batch (the planner against parseSync timed just before it), then the median:
  // load from other processes drifts slowly, so neighbouring timings share it.
  const rows: string[] = [];
  for (const shape of shapes) {
    const base = samples[`${shape}|parseSync`] as number[];
    const cells = instances.map((x) => {
      const m = samples[`${shape}|${x.name} miss`] as number[];
      const ratio = median(m.map((v, i) => v / (base[i] as number)));
      return `${x.name} ${median(m).toFixed(1)} µs (${ratio.toFixed(2)}×)`;
    });
    rows.push(`${shape.padEnd(11)} parseSync ${median(base).toFixed(1)} µs | ${cells.join(' | ')}`);
  }
  rows.push(`hit         ${instances.map((x) => `${x.name} ${median(samples[`hit|${x.name} hit`] as number[]).toFixed(2)} µs`).join(' | ')}`);
  console.log(rows.join('\n'));
}

await main();
