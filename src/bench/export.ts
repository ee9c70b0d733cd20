import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { BenchOptions } from './bench-options.js';
import { pgBinDir, runCommand, startBenchClusters, type BenchCluster } from './pg-cluster.js';
import { initPgbench, type PgbenchTarget } from './pgbench.js';
import type { Cell, ResultTable } from './result-table.js';
import { shortReason, type BenchLog } from './select-only.js';
import { PGBENCH_TABLE_RULES, PROXY_DATABASE, PROXY_USER, proxyConfig, REPO_ROOT, startShardGate } from './shardgate-process.js';

const SIDES = ['pg_dump -j 4', 'shardgate export'] as const;
type Side = (typeof SIDES)[number];
const IMPORT_SIDES = ['psql < plain dump', 'shardgate import'] as const;
type ImportSide = (typeof IMPORT_SIDES)[number];

/** pgbench scale of the exported data: 100 000 accounts per unit (10 ≈ one million rows). */
const SCALE = 10;
const JOBS = 4;

/**
 * Export throughput: `shardgate export --jobs 4` (one cut over three shards,
 * gzip CSV chunks) against `pg_dump -Fd -j 4` of each shard (compressed
 * directory format, the three run at once, each its own snapshot: no common
 * cut), on the same pgbench rows. Rows per second of wall time, process start
 * included on both sides.
 */
export async function runExportBench(opts: BenchOptions, log: BenchLog): Promise<ResultTable> {
  const clusters: BenchCluster[] = await startBenchClusters(3, { databases: [PROXY_DATABASE], settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 20 } });
  const dir = await mkdtemp(join(tmpdir(), 'shardgate-bench-export-'));
  const config = proxyConfig(clusters.map((c) => c.url(PROXY_DATABASE)), PGBENCH_TABLE_RULES, { maxPerShard: opts.poolSize });
  const configFile = join(dir, 'shardgate.yaml');
  await writeFile(configFile, stringify(config));
  const samples = new Map<Side | ImportSide, number[]>([...SIDES, ...IMPORT_SIDES].map((s) => [s, []]));
  const problems = new Map<Side | ImportSide, string>();
  let rows = 0;
  try {
    const proxy = await startShardGate(config);
    try {
      const target: PgbenchTarget = { port: proxy.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE };
      await initPgbench(target, SCALE);
    } finally {
      await proxy.stop().catch(() => undefined);
    }
    for (const c of clusters) rows += Number((await c.query<{ n: string }>('SELECT ((SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_branches))::text AS n', [], PROXY_DATABASE))[0]!.n);
    log(`export: ${rows} rows over 3 shards`);
    const rounds = opts.quick ? 1 : 3;
    for (let round = 0; round < rounds; round++) {
      for (const side of SIDES) {
        if (problems.has(side)) continue;
        const out = join(dir, `out-${round}-${side.replace(/\W+/g, '_')}`);
        try {
          const t0 = performance.now();
          if (side === 'shardgate export') {
            const r = await runCommand(process.execPath, [join(REPO_ROOT, 'bin/shardgate.js'), 'export', '--out', out, '--config', configFile, '--jobs', String(JOBS), '--allow-no-primary-key']);
            if (r.code !== 0) throw new Error(r.stderr.slice(-500));
          } else {
            await mkdir(out, { recursive: true });
            const results = await Promise.all(
              clusters.map((c, i) => runCommand(join(pgBinDir(), 'pg_dump'), ['-Fd', '-j', String(JOBS), '-f', join(out, `s${i}`), '-d', c.url(PROXY_DATABASE)])),
            );
            const bad = results.find((r) => r.code !== 0);
            if (bad !== undefined) throw new Error(bad.stderr.slice(-500));
          }
          const s = (performance.now() - t0) / 1000;
          samples.get(side)!.push(rows / s);
          log(`export ${side}: ${(rows / s).toFixed(0)} rows/s`);
        } catch (err) {
          problems.set(side, shortReason(err));
          log(`export ${side} failed: ${err instanceof Error ? err.message : String(err)}`);
        } finally {
          await rm(out, { recursive: true, force: true });
        }
      }
    }
    await measureImport(clusters, config, dir, rows, samples, problems, log);
  } finally {
    await Promise.all(clusters.map((c) => c.destroy()));
    await rm(dir, { recursive: true, force: true });
  }
  const cell = (side: Side | ImportSide): Cell => {
    const problem = problems.get(side);
    if (problem !== undefined) return { kind: 'missing', reason: problem };
    return { kind: 'samples', samples: samples.get(side)! };
  };
  return {
    id: 'export',
    title: `Export of pgbench scale ${SCALE} over 3 shards (${JOBS} jobs)`,
    columns: [...SIDES],
    baseline: 'pg_dump -j 4',
    rows: [
      { id: 'rows-per-s', label: 'rows exported (accounts, tellers, branches)', unit: 'rows/s', cells: Object.fromEntries(SIDES.map((s) => [s, cell(s)])) },
      {
        id: 'import-rows-per-s',
        label: 'rows imported into 3 fresh databases',
        unit: 'rows/s',
        note: 'baseline: psql -f of each shard\'s plain pg_dump, the three at once',
        cells: { 'pg_dump -j 4': cell('psql < plain dump'), 'shardgate export': cell('shardgate import') },
      },
    ],
    notes: [
      'pg_dump -Fd -j 4 runs on the three shards at once, each under its own snapshot: no common cut, so a cross-shard transaction can be torn in it.',
      'shardgate export takes one cut over the three shards and writes gzip CSV chunks of 50 000 rows with sha256 checksums; process start is included on both sides.',
      'The import row compares shardgate import (through the engine: COPY routed row by row by the target rules, one two-phase transaction per chunk) with psql restoring plain dumps (COPY into each shard directly, no routing).',
    ],
  };
}

/** One import of a fresh export into new databases on the same servers, beside psql restoring plain dumps of the shards. */
async function measureImport(
  clusters: readonly BenchCluster[],
  config: Record<string, unknown>,
  dir: string,
  rows: number,
  samples: Map<string, number[]>,
  problems: Map<string, string>,
  log: BenchLog,
): Promise<void> {
  const exported = join(dir, 'import-source');
  const source = join(dir, 'shardgate.yaml');
  const bin = join(REPO_ROOT, 'bin/shardgate.js');
  try {
    const exp = await runCommand(process.execPath, [bin, 'export', '--out', exported, '--config', source, '--jobs', String(JOBS), '--allow-no-primary-key']);
    if (exp.code !== 0) throw new Error(exp.stderr.slice(-500));
    for (const c of clusters) for (const db of ['imp_sg', 'imp_psql']) await c.query(`CREATE DATABASE ${db}`);
    const targetFile = join(dir, 'import-target.yaml');
    await writeFile(targetFile, stringify({ ...config, shards: Object.fromEntries(clusters.map((c, i) => [`s${i}`, c.url('imp_sg')])) }));
    const t0 = performance.now();
    const imp = await runCommand(process.execPath, [bin, 'import', exported, '--config', targetFile, '--jobs', String(JOBS)]);
    if (imp.code !== 0) throw new Error(imp.stderr.slice(-500));
    samples.get('shardgate import')!.push(rows / ((performance.now() - t0) / 1000));
    log(`import shardgate import: ${samples.get('shardgate import')![0]!.toFixed(0)} rows/s`);
  } catch (err) {
    problems.set('shardgate import', shortReason(err));
    log(`import shardgate import failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    const dumps = await Promise.all(
      clusters.map(async (c, i) => {
        const file = join(dir, `plain-s${i}.sql`);
        const r = await runCommand(join(pgBinDir(), 'pg_dump'), ['-Fp', '-f', file, '-d', c.url(PROXY_DATABASE), '--exclude-schema=shardgate']);
        if (r.code !== 0) throw new Error(r.stderr.slice(-500));
        return file;
      }),
    );
    const t0 = performance.now();
    const results = await Promise.all(clusters.map((c, i) => runCommand('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', dumps[i]!, '-d', c.url('imp_psql')])));
    const bad = results.find((r) => r.code !== 0);
    if (bad !== undefined) throw new Error(bad.stderr.slice(-500));
    samples.get('psql < plain dump')!.push(rows / ((performance.now() - t0) / 1000));
    log(`import psql < plain dump: ${samples.get('psql < plain dump')![0]!.toFixed(0)} rows/s`);
  } catch (err) {
    problems.set('psql < plain dump', shortReason(err));
    log(`import psql failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}
