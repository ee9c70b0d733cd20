import { availableParallelism } from 'node:os';
import type { BenchOptions } from './bench-options.js';
import { CROSS_SHARD_QUERIES, LINEITEM_RULE, LINEITEM_TABLE, loadOrders, ORDERS_RULE, ORDERS_TABLE, runCrossShardQueries } from './cross-shard-queries.js';
import { runInProcess } from './in-process.js';
import { loadStreamTable, runMemory, STREAM_RULE, STREAM_TABLE } from './memory.js';
import { startBenchClusters, type BenchCluster } from './pg-cluster.js';
import { initPgbench, type PgbenchTarget } from './pgbench.js';
import {
  PGBENCH_TABLE_RULES,
  PROXY_DATABASE,
  PROXY_USER,
  proxyConfig,
  startShardGate,
  type ShardGateProcess,
} from './shardgate-process.js';
import { PGBOUNCER_INSTALL_HINT, pgbouncerPath, pgbouncerVersion, startPgBouncer, supportsPreparedStatements, type PgBouncerProcess } from './pgbouncer-process.js';
import { machineInfo, type BenchReport } from './report.js';
import type { ResultTable } from './result-table.js';
import { startNodeRelay } from './node-relay.js';
import { runSelectOnly, shortReason, type BenchLog, type PgbenchSide } from './select-only.js';
import { evaluateTargets } from './targets.js';
import { makeBenchCertificate } from './tls-certificate.js';
import { runTpcb } from './tpcb.js';
import { runCdcBench } from './cdc.js';
import { runConsistentReadBench } from './consistent-read.js';
import { runExportBench } from './export.js';

const DATABASE = 'app';

/** Every table rule the 4-shard proxy needs: pgbench's, and the tables of the query and memory comparisons. */
const SHARDED_RULES = { ...PGBENCH_TABLE_RULES, [ORDERS_TABLE]: ORDERS_RULE, [LINEITEM_TABLE]: LINEITEM_RULE, [STREAM_TABLE]: STREAM_RULE };

function proxyTarget(p: ShardGateProcess): PgbenchTarget {
  return { port: p.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE };
}

/**
 * Runs the selected comparisons in one process: starts its own PostgreSQL
 * clusters (one plain server, one shard for ShardGate-1, four for
 * ShardGate-4), PgBouncer when installed, and the proxies; stops all of them
 * before returning, also on failure. A side or section that fails is
 * recorded under `problems` and the rest still runs.
 */
export async function runBench(opts: BenchOptions, log: BenchLog): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const cores = availableParallelism();
  const has = (s: string): boolean => opts.sections.has(s as never);
  const needPgbench = has('select-only') || has('tpcb');
  const needServers = needPgbench || has('cross-shard') || has('memory');
  const problems: string[] = [];
  const tables: ResultTable[] = [];
  const stops: (() => Promise<void>)[] = [];
  let pgVersion: string | null = null;

  const section = async (name: string, fn: () => Promise<void>): Promise<void> => {
    const t0 = performance.now();
    log(`── ${name}`);
    try {
      await fn();
    } catch (err) {
      problems.push(`${name}: ${shortReason(err)}`);
      log(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    log(`── ${name} took ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  };

  try {
    const st: {
      direct: BenchCluster | null;
      one: BenchCluster[];
      four: BenchCluster[];
      sg1: ShardGateProcess | null;
      sg1Baseline: ShardGateProcess | null;
      sg1BaselineProblem: string | null;
      sg4: ShardGateProcess | null;
      sg1Problem: string | null;
      sg4Problem: string | null;
      bouncer: PgBouncerProcess | null;
      bouncerProblem: string | null;
      bouncerPrepared: boolean;
      tlsProblem: string | null;
    } = { direct: null, one: [], four: [], sg1: null, sg1Baseline: null, sg1BaselineProblem: opts.baseline === null ? 'no --baseline given' : null, sg4: null, sg1Problem: null, sg4Problem: null, bouncer: null, bouncerProblem: null, bouncerPrepared: false, tlsProblem: null };

    if (needServers) {
      await section('start servers', async () => {
        const all = await startBenchClusters(1 + (has('select-only') ? 1 : 0) + 4, { databases: [DATABASE] });
        stops.push(() => Promise.all(all.map((c) => c.destroy())).then(() => undefined));
        st.direct = all[0]!;
        st.one = has('select-only') ? [all[1]!] : [];
        st.four = all.slice(all.length - 4);
        pgVersion = await st.direct.version();
        log(`PostgreSQL ${pgVersion}: ${all.length} clusters on ports ${all.map((c) => c.port).join(', ')}`);
        const start = async (shards: BenchCluster[], rules: Record<string, unknown>, extra: Record<string, unknown> = {}, root?: string): Promise<ShardGateProcess> => {
          const p = await startShardGate({ ...proxyConfig(shards.map((c) => c.url(DATABASE)), rules, { maxPerShard: opts.poolSize }), ...extra }, root === undefined ? {} : { root });
          stops.push(() => p.stop());
          return p;
        };
        if (st.one.length > 0) {
          // ShardGate-1 also offers TLS: the same process measured once with encrypted clients, once without.
          const tls = await makeBenchCertificate().catch((err: unknown) => ((st.tlsProblem = shortReason(err)), null));
          if (tls !== null) stops.push(() => tls.remove());
          const extra = tls === null ? {} : { tls: { cert: tls.cert, key: tls.key } };
          st.sg1 = await start(st.one, PGBENCH_TABLE_RULES, extra).catch((err: unknown) => ((st.sg1Problem = shortReason(err)), null));
          if (opts.baseline !== null) {
            // The other build over the same shard: it reads the tables shardgate-1 initialises.
            st.sg1Baseline = await start(st.one, PGBENCH_TABLE_RULES, {}, opts.baseline).catch((err: unknown) => ((st.sg1BaselineProblem = shortReason(err)), null));
          }
        }
        st.sg4 = await start(st.four, SHARDED_RULES).catch((err: unknown) => ((st.sg4Problem = shortReason(err)), null));
        if (st.sg1Problem !== null) problems.push(`ShardGate over 1 shard did not start: ${st.sg1Problem}`);
        if (st.sg4Problem !== null) problems.push(`ShardGate over 4 shards did not start: ${st.sg4Problem}`);
      });
    }

    if (needPgbench && st.direct !== null) {
      await section(`pgbench -i -s ${opts.scale}`, async () => {
        const d = st.direct!;
        const inits: Promise<void>[] = [initPgbench({ port: d.port, user: 'postgres', database: DATABASE }, opts.scale)];
        const viaProxy = (p: ShardGateProcess | null, set: (reason: string) => void): Promise<void> =>
          p === null ? Promise.resolve() : initPgbench(proxyTarget(p), opts.scale).catch((err: unknown) => set(`pgbench -i through the proxy failed: ${shortReason(err)}`));
        inits.push(viaProxy(st.sg1, (r) => (st.sg1Problem = r)), viaProxy(st.sg4, (r) => (st.sg4Problem = r)));
        await Promise.all(inits);
        for (const p of [st.sg1Problem, st.sg4Problem]) if (p !== null && p.startsWith('pgbench')) problems.push(p);
      });
      if (has('select-only')) {
        const version = await pgbouncerVersion();
        if (version === null) {
          st.bouncerProblem = 'not installed';
          log(PGBOUNCER_INSTALL_HINT);
          problems.push(PGBOUNCER_INSTALL_HINT);
        } else {
          st.bouncerPrepared = supportsPreparedStatements(version);
          try {
            st.bouncer = await startPgBouncer({ serverPort: st.direct.port, database: DATABASE, poolSize: opts.poolSize, maxClients: 500, preparedStatements: st.bouncerPrepared });
            const b = st.bouncer;
            stops.push(() => b.stop());
          } catch (err) {
            st.bouncerProblem = `did not start: ${shortReason(err)}`;
            problems.push(`PgBouncer ${st.bouncerProblem}`);
          }
        }
      }
    }

    if (has('select-only') && st.direct !== null) {
      await section('select-only', async () => {
        const d = st.direct!;
        // The floor of a Node.js proxy: bytes relayed unread, one server connection per client.
        let relayProblem: string | null = null;
        const relay = await startNodeRelay(d.port).catch((err: unknown) => ((relayProblem = shortReason(err)), null));
        if (relay !== null) stops.push(() => relay.stop());
        const sides: PgbenchSide[] = [
          { name: 'direct', target: { port: d.port, user: 'postgres', database: DATABASE }, unavailable: () => null },
          {
            name: 'pgbouncer',
            target: st.bouncer === null ? null : { port: st.bouncer.port, user: 'postgres', database: DATABASE },
            proxyPid: () => st.bouncer?.serverPid() ?? null,
            unavailable: (mode) =>
              st.bouncerProblem !== null ? `PgBouncer ${st.bouncerProblem}` : mode === 'prepared' && !st.bouncerPrepared ? 'PgBouncer < 1.21 cannot run -M prepared in transaction pooling' : null,
          },
          {
            name: 'node-relay',
            target: relay === null ? null : { port: relay.port, user: 'postgres', database: DATABASE },
            unavailable: () => relayProblem,
            proxyPid: () => relay?.pid ?? null,
          },
          { name: 'shardgate-1', target: st.sg1 === null ? null : proxyTarget(st.sg1), unavailable: () => st.sg1Problem, proxyPid: () => st.sg1?.pid ?? null },
          ...(opts.baseline === null
            ? []
            : [
                {
                  name: 'shardgate-1-baseline',
                  target: st.sg1Baseline === null ? null : proxyTarget(st.sg1Baseline),
                  unavailable: () => st.sg1Problem ?? st.sg1BaselineProblem,
                  proxyPid: () => st.sg1Baseline?.pid ?? null,
                },
              ]),
          {
            name: 'shardgate-1-tls',
            target: st.sg1 === null ? null : { ...proxyTarget(st.sg1), sslmode: 'require' },
            unavailable: () => st.sg1Problem ?? (st.tlsProblem === null ? null : `no certificate: ${st.tlsProblem}`),
            proxyPid: () => st.sg1?.pid ?? null,
          },
          { name: 'shardgate-4', target: st.sg4 === null ? null : proxyTarget(st.sg4), unavailable: () => st.sg4Problem, proxyPid: () => st.sg4?.pid ?? null },
        ];
        const selectOnly = await runSelectOnly(sides, opts, cores, log);
        tables.push(selectOnly.tps, selectOnly.proxyCpu);
      });
    }

    if (has('tpcb') && st.direct !== null) {
      await section('tpcb', async () => {
        if (st.sg4 === null || st.sg4Problem !== null) throw new Error(`ShardGate over 4 shards is unavailable: ${st.sg4Problem ?? 'not started'}`);
        const d = st.direct!;
        tables.push(
          await runTpcb(
            [
              { name: 'direct', target: { port: d.port, user: 'postgres', database: DATABASE }, shards: null, database: DATABASE },
              { name: 'hand-written-2pc', shardUrls: st.four.map((c) => c.url(DATABASE)) },
              { name: 'shardgate-4', target: proxyTarget(st.sg4), shards: st.four, database: DATABASE, proxyPid: () => st.sg4?.pid ?? null },
            ],
            opts,
            cores,
            log,
          ),
        );
      });
    }

    if (has('cross-shard') && st.direct !== null) {
      await section('cross-shard', async () => {
        if (st.sg4 === null) throw new Error(`ShardGate over 4 shards is unavailable: ${st.sg4Problem ?? 'not started'}`);
        await loadOrders(st.direct!, st.four, DATABASE, opts.queryRows);
        log(`loaded ${opts.queryRows} rows for ${CROSS_SHARD_QUERIES.length} queries`);
        tables.push(await runCrossShardQueries(st.direct!.url(DATABASE), st.sg4.url, opts, log));
      });
    }

    if (has('in-process')) {
      await section('in-process', async () => {
        tables.push(await runInProcess(opts, log));
      });
    }

    if (has('memory') && st.four.length === 4) {
      await section('memory', async () => {
        // The benchmark proxies are idle from here on; stopping them leaves the cores to the memory runs.
        if (st.sg1 !== null) await st.sg1.stop();
        if (st.sg4 !== null) await st.sg4.stop();
        st.sg1 = null;
        st.sg4 = null;
        await loadStreamTable(st.four, DATABASE, opts.streamRows);
        log(`loaded ${opts.streamRows} rows into ${STREAM_TABLE}`);
        const config = proxyConfig(st.four.map((c) => c.url(DATABASE)), SHARDED_RULES, { maxPerShard: opts.poolSize });
        tables.push(await runMemory(() => startShardGate({ ...config, pool: { maxPerShard: opts.poolSize, maxClients: opts.idleClients + 100 } }), opts, log));
      });
    }

    if (has('cdc')) {
      // Its own three clusters (logical decoding on) and proxy, after the others have stopped using the cores.
      await section('cdc', async () => {
        tables.push(...(await runCdcBench(opts, cores, log)));
      });
    }

    if (has('consistent-read')) {
      // Four clusters and a proxy of its own, with the admin endpoint on for the gate-hold histogram.
      await section('consistent-read', async () => {
        tables.push(await runConsistentReadBench(opts, cores, log));
      });
    }

    if (has('export')) {
      // Its own three clusters, after the others have stopped using the cores.
      await section('export', async () => {
        tables.push(await runExportBench(opts, log));
      });
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }

  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    options: { ...opts, sections: [...opts.sections] },
    machine: await machineInfo(pgVersion, pgbouncerPath()),
    tables,
    targets: evaluateTargets(tables),
    problems,
  };
}
