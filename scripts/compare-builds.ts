/**
 * Proxy CPU per transaction of this build beside another built checkout and
 * PgBouncer, over one PostgreSQL server, in interleaved rounds (each round
 * starts with a different side; medians printed): `pgbench -S` simple and
 * prepared with 16 clients, and a read of 5000 rows per transaction with 4
 * clients, where what the proxy does per row dominates.
 *
 *   npm run build   # here and in DIR
 *   npx tsx scripts/compare-builds.ts DIR [rounds] [seconds]
 *
 * Both proxies serve the same shard with the benchmark's configuration
 * (src/bench/shardgate-process.ts); tables come from `pgbench -i -s 2`
 * through this build's proxy.
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchClusters } from '../src/bench/pg-cluster.js';
import { initPgbench, runPgbench, type PgbenchTarget } from '../src/bench/pgbench.js';
import { startPgBouncer } from '../src/bench/pgbouncer-process.js';
import { PGBENCH_TABLE_RULES, PROXY_DATABASE, PROXY_USER, proxyConfig, startShardGate, type ShardGateProcess } from '../src/bench/shardgate-process.js';
import { rotate } from '../src/bench/select-only.js';

const [other, roundsArg, secondsArg] = process.argv.slice(2);
if (other === undefined) {
  process.stderr.write('usage: npx tsx scripts/compare-builds.ts DIR [rounds] [seconds]\n');
  process.exit(1);
}
const rounds = Number(roundsArg ?? 5);
const seconds = String(secondsArg ?? 3);

interface Side {
  readonly name: string;
  readonly target: PgbenchTarget;
  readonly pid: () => number | null;
  /** PgBouncer 1.18 runs no -M prepared in transaction pooling. */
  readonly prepared: boolean;
}

const [cluster] = await startBenchClusters(1, { databases: ['app'] });
const stops: (() => Promise<void>)[] = [() => cluster!.destroy()];
try {
  const config = proxyConfig([cluster!.url('app')], PGBENCH_TABLE_RULES, { maxPerShard: 20 });
  const proxies = { here: await startShardGate(config), other: await startShardGate(config, { root: other }) };
  stops.push(() => proxies.here.stop(), () => proxies.other.stop());
  const bouncer = await startPgBouncer({ serverPort: cluster!.port, database: 'app', poolSize: 20, maxClients: 500, preparedStatements: false });
  stops.push(() => bouncer.stop());
  const viaProxy = (p: ShardGateProcess): PgbenchTarget => ({ port: p.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE });
  await initPgbench(viaProxy(proxies.here), 2);
  const script = join(tmpdir(), `shardgate-compare-${process.pid}.sql`);
  await writeFile(script, 'SELECT * FROM pgbench_accounts WHERE aid <= 5000;\n');
  const sides: Side[] = [
    { name: 'pgbouncer', target: { port: bouncer.port, user: 'postgres', database: 'app' }, pid: () => bouncer.serverPid(), prepared: false },
    { name: 'this build', target: viaProxy(proxies.here), pid: () => proxies.here.pid, prepared: true },
    { name: other, target: viaProxy(proxies.other), pid: () => proxies.other.pid, prepared: true },
  ];
  const workloads = [
    { name: '-S simple, 16 clients', prepared: false, args: ['-S', '-M', 'simple', '-c', '16', '-j', '2'] },
    { name: '-S prepared, 16 clients', prepared: true, args: ['-S', '-M', 'prepared', '-c', '16', '-j', '2'] },
    { name: '5000-row read, 4 clients', prepared: false, args: ['-f', script, '-M', 'simple', '-c', '4', '-j', '2'] },
  ];
  const samples = new Map<string, { tps: number[]; cpu: number[] }>();
  for (let round = 0; round < rounds; round++) {
    for (const w of workloads) {
      for (const side of rotate(sides, round)) {
        if (w.prepared && !side.prepared) continue;
        const run = await runPgbench(side.target, { args: ['-n', '-T', seconds, ...w.args], cpuPid: side.pid() });
        const key = `${w.name}|${side.name}`;
        const got = samples.get(key) ?? { tps: [], cpu: [] };
        got.tps.push(run.summary.tps);
        if (run.cpuUsPerTransaction !== null) got.cpu.push(run.cpuUsPerTransaction);
        samples.set(key, got);
        process.stderr.write(`round ${round + 1}/${rounds} ${key}: ${run.summary.tps.toFixed(0)} tps, ${run.cpuUsPerTransaction?.toFixed(1) ?? '?'} µs\n`);
      }
    }
  }
  const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  process.stdout.write(`| workload | ${sides.map((s) => s.name).join(' | ')} |\n| --- |${sides.map(() => ' --- |').join('')}\n`);
  for (const w of workloads) {
    const cells = sides.map((s) => {
      const got = samples.get(`${w.name}|${s.name}`);
      return got === undefined ? 'n/a' : `${median(got.tps).toFixed(0)} tps, ${median(got.cpu).toFixed(1)} µs`;
    });
    process.stdout.write(`| ${w.name} | ${cells.join(' | ')} |\n`);
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
}
