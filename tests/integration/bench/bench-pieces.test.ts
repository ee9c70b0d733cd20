import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BenchCluster } from '../../../src/bench/pg-cluster.js';
import { commandLatency } from '../../../src/bench/pgbench-output.js';
import { initPgbench, runPgbench } from '../../../src/bench/pgbench.js';
import { pgbouncerVersion, startPgBouncer } from '../../../src/bench/pgbouncer-process.js';
import { RawPgConnection } from '../../../src/bench/raw-pg-client.js';

describe('benchmark pieces against a real PostgreSQL', () => {
  let cluster: BenchCluster;
  beforeAll(async () => {
    cluster = await BenchCluster.create({ databases: ['app'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('starts a cluster with initdb defaults plus prepared transactions, and removes it on destroy', async () => {
    const rows = await cluster.query<{ name: string; setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('max_prepared_transactions', 'fsync', 'shared_buffers', 'listen_addresses') ORDER BY name",
    );
    expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
      fsync: 'on',
      listen_addresses: '127.0.0.1',
      max_prepared_transactions: '100',
      shared_buffers: '16384',
    });
    expect(await cluster.version()).toMatch(/^\d+\.\d+/);
    const other = await BenchCluster.create();
    expect(existsSync(other.dataDir)).toBe(true);
    await other.destroy();
    expect(existsSync(other.dataDir)).toBe(false);
  });

  it('parses what pgbench prints for a select-only run and its per-transaction log', async () => {
    const target = { port: cluster.port, user: 'postgres', database: 'app' };
    await initPgbench(target, 1);
    const run = await runPgbench(target, { args: ['-S', '-n', '-T', '1', '-c', '2', '-j', '2', '--report-per-command'], transactionLog: true });
    expect(run.summary.transactions).toBeGreaterThan(0);
    expect(run.summary.tps).toBeGreaterThan(0);
    expect(run.summary.clients).toBe(2);
    expect(run.summary.scale).toBe(1);
    expect(run.summary.latencyAverageMs).not.toBeNull();
    expect(commandLatency(run.summary, /^SELECT abalance FROM pgbench_accounts/)).not.toBeNull();
    // -l logs every transaction pgbench counted.
    expect(run.latenciesMs).toHaveLength(run.summary.transactions);
  });

  it('parses the END latency of a TPC-B-like run', async () => {
    const run = await runPgbench({ port: cluster.port, user: 'postgres', database: 'app' }, { args: ['-n', '-t', '20', '-c', '2', '--report-per-command'] });
    expect(run.summary.transactions).toBe(40);
    expect(run.summary.commands.map((c) => c.command)).toContain('END;');
    expect(commandLatency(run.summary, /^END\b/)).toBeGreaterThan(0);
  });

  it('rejects with pgbench output when the run fails', async () => {
    await expect(runPgbench({ port: cluster.port, user: 'postgres', database: 'no_such_db' }, { args: ['-S', '-T', '1'] })).rejects.toThrow(/no_such_db/);
  });

  it('reads a result slowly over a raw socket with SCRAM authentication, then closes', async () => {
    await cluster.query("SET password_encryption = 'scram-sha-256'; CREATE ROLE bench_scram LOGIN PASSWORD 'pw'");
    // First matching line wins: this user must use SCRAM even though the rest is trust.
    const hba = join(cluster.dataDir, 'pg_hba.conf');
    await writeFile(hba, `host all bench_scram 127.0.0.1/32 scram-sha-256\n${await readFile(hba, 'utf8')}`);
    await cluster.query('SELECT pg_reload_conf()');
    await expect(RawPgConnection.connect({ host: '127.0.0.1', port: cluster.port, user: 'bench_scram', password: 'wrong', database: 'app' })).rejects.toThrow(/28P01/);
    const conn = await RawPgConnection.connect({ host: '127.0.0.1', port: cluster.port, user: 'bench_scram', password: 'pw', database: 'app' });
    const read = await conn.readSlowly('SELECT g, g::text FROM generate_series(1, 100000) g', { chunkBytes: 256 * 1024, pauseMs: 5 });
    expect(read.rows).toBe(100_000);
    expect(read.bytes).toBeGreaterThan(100_000 * 11);
    await expect(conn.readSlowly('SELECT 1/0', { chunkBytes: 1024, pauseMs: 1 })).rejects.toThrow(/22012/);
    await conn.close();
  });

  it('runs pgbench through PgBouncer in transaction pooling', async () => {
    const version = await pgbouncerVersion();
    expect(version, 'PgBouncer is a test dependency: bash scripts/install-test-deps.sh').not.toBeNull();
    const bouncer = await startPgBouncer({ serverPort: cluster.port, database: 'app', poolSize: 2, maxClients: 10 });
    try {
      const run = await runPgbench({ port: bouncer.port, user: 'postgres', database: 'app' }, { args: ['-S', '-n', '-t', '50', '-c', '4', '-M', 'simple'] });
      expect(run.summary.transactions).toBe(200);
      const pooled = await cluster.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend'");
      expect(Number(pooled[0]!.n)).toBeLessThanOrEqual(2);
    } finally {
      await bouncer.stop();
    }
  });
});
