import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import { readExport, serverRows, shardgate, sortedLines } from '../../harness/export.js';
import { psql, startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/**
 * `shardgate export` of three shards while pgbench's TPC-B-like script runs
 * through the proxy (most of its transactions are two-phase over two or three
 * shards), then `shardgate import` of that export into other topologies.
 */
const PGBENCH_TABLES = {
  pgbench_accounts: { key: 'aid' },
  pgbench_tellers: { key: 'tid' },
  pgbench_branches: { key: 'bid' },
  pgbench_history: { key: 'aid' },
};
const PGBENCH = ['public.pgbench_accounts', 'public.pgbench_branches', 'public.pgbench_history', 'public.pgbench_tellers'];

function pgbench(port: number, args: string[]): ReturnType<typeof runCommand> {
  return runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-n', ...args, 'app'], { env: { PGPASSWORD: 'app', PGCONNECT_TIMEOUT: '10' }, timeoutMs: 120_000 });
}

const sum = (rows: (string | null)[][], col: number): bigint => rows.reduce((s, r) => s + BigInt(r[col]!), 0n);

describe('shardgate export and import', () => {
  let source: ShardedSetup;
  let work: string;
  let exportDir: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'shardgate-export-'));
    exportDir = join(work, 'pgbench');
    source = await startShardedSetup(3, PGBENCH_TABLES);
    const init = await runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(source.proxy.port), '-U', 'app', '-i', '-s', '1', '-q', 'app'], { env: { PGPASSWORD: 'app' }, timeoutMs: 120_000 });
    expect(init.code, init.stderr).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await source?.stop().catch(() => undefined);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('exports at one cut while pgbench runs: in the exported rows the four pgbench sums agree', { timeout: 240_000 }, async () => {
    const run = pgbench(source.proxy.port, ['-c', '8', '-j', '2', '-T', '10']);
    // Let transactions be in flight (and history non-empty) when the cut is taken.
    await new Promise((r) => setTimeout(r, 2500));
    const exp = shardgate(['export', '--out', exportDir, '--config', source.proxy.configFile, '--jobs', '4', '--chunk-rows', '4000', '--allow-no-primary-key']);
    const result = await exp.done;
    const bench = await run;
    expect(result.code, result.stderr).toBe(0);
    expect(bench.stdout).toMatch(/number of failed transactions: 0\b/);
    // The warning for the table without a key, and progress on the terminal.
    expect(result.stderr).toMatch(/WARNING: table public\.pgbench_history has no primary key/);
    expect(result.stderr).toMatch(/chunks, \d+ rows/);

    const { manifest, rows } = await readExport(exportDir);
    expect(manifest.complete).toBe(true);
    expect(Object.keys(manifest.shards).sort()).toEqual(['s0', 's1', 's2']);
    for (const s of Object.values(manifest.shards)) expect(s.snapshot).toMatch(/^\d+:\d+:/);
    expect([...rows.keys()].sort()).toEqual(PGBENCH);
    // Key-range chunks: the accounts of each shard span several.
    expect(manifest.chunks.filter((c) => c.table === 'public.pgbench_accounts').length).toBeGreaterThan(3 * 2);
    expect(rows.get('public.pgbench_accounts')!.length).toBe(100_000);
    const accounts = sum(rows.get('public.pgbench_accounts')!, 2);
    const branches = sum(rows.get('public.pgbench_branches')!, 1);
    const tellers = sum(rows.get('public.pgbench_tellers')!, 2);
    const history = sum(rows.get('public.pgbench_history')!, 3);
    // The cut fell inside the run: some transactions are in, some are not.
    const all = (await psql(source.proxy.port, 'SELECT count(*) FROM pgbench_history', { args: ['-A', '-t'] })).stdout.trim();
    expect(rows.get('public.pgbench_history')!.length).toBeGreaterThan(0);
    expect(rows.get('public.pgbench_history')!.length).toBeLessThan(Number(all));
    expect({ accounts, tellers, history }).toEqual({ accounts: branches, tellers: branches, history: branches });
    // The holder ended with the export: no transaction of it is left open on any shard.
    for (const c of source.clusters) {
      const open = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = 'app' AND state LIKE 'idle in transaction%'", [], 'app');
      expect(open[0]!.n).toBe('0');
    }
  });

  it('imports into two and into five shards: the same logical rows, placed by the target rules', { timeout: 300_000 }, async () => {
    const { rows } = await readExport(exportDir);
    for (const n of [2, 5]) {
      const target = await startShardedSetup(n, PGBENCH_TABLES);
      try {
        const imp = await shardgate(['import', exportDir, '--config', target.proxy.configFile, '--jobs', '3']).done;
        expect(imp.code, imp.stderr).toBe(0);
        for (const table of PGBENCH) {
          const perShard = await Promise.all(target.clusters.map((c) => serverRows(c.url('app'), table)));
          expect(sortedLines(perShard.flat()), `${table} into ${n} shards`).toEqual(sortedLines(rows.get(table)!));
          // Re-routed: with the target's hash over n shards every shard holds accounts.
          if (table === 'public.pgbench_accounts') for (const p of perShard) expect(p.length).toBeGreaterThan(0);
        }
        // Idempotent: a second import loads nothing again.
        const again = await shardgate(['import', exportDir, '--config', target.proxy.configFile]).done;
        expect(again.code, again.stderr).toBe(0);
        expect(again.stdout).toMatch(/ 0 loaded by this run/);
        if (n === 2) {
          // Chunks whose records are gone meet rows the target has: COPY fails on the key, the chunk is loaded again with ON CONFLICT DO NOTHING.
          const forget = await psql(target.proxy.port, "DELETE FROM shardgate_import.chunks WHERE chunk LIKE '%pgbench_accounts%'");
          expect(forget.code, forget.stderr).toBe(0);
          const reload = await shardgate(['import', exportDir, '--config', target.proxy.configFile]).done;
          expect(reload.code, reload.stderr).toBe(0);
          expect(reload.stdout).not.toMatch(/ 0 loaded by this run/);
          const accounts = await Promise.all(target.clusters.map((c) => serverRows(c.url('app'), 'public.pgbench_accounts')));
          expect(sortedLines(accounts.flat())).toEqual(sortedLines(rows.get('public.pgbench_accounts')!));
        }
        const count = (await psql(target.proxy.port, 'SELECT count(*) FROM pgbench_history', { args: ['-A', '-t'] })).stdout.trim();
        expect(Number(count)).toBe(rows.get('public.pgbench_history')!.length);
      } finally {
        await target.stop();
      }
    }
  });

  it('refuses a table without a primary key unless --allow-no-primary-key, and exports it as one chunk per shard with it', { timeout: 120_000 }, async () => {
    const dir = join(work, 'nokey');
    // pgbench_history has no primary key: without the flag nothing is exported.
    const refused = await shardgate(['export', '--out', dir, '--config', source.proxy.configFile]).done;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERROR 55000: cannot export table public\.pgbench_history/);
    expect(refused.stderr).toMatch(/--allow-no-primary-key/);
    await expect(readFile(join(dir, 'manifest.json'))).rejects.toThrow();
    const slots = await source.clusters[0]!.query('SELECT 1 FROM pg_replication_slots', [], 'app');
    expect(slots).toEqual([]);
    // The same folder, with the flag.
    const accepted = await shardgate(['export', '--out', dir, '--config', source.proxy.configFile, '--allow-no-primary-key']).done;
    expect(accepted.code, accepted.stderr).toBe(0);
    const { manifest } = await readExport(dir);
    expect(manifest.chunks.filter((c) => c.table === 'public.pgbench_history').map((c) => c.shard).sort()).toEqual(['s0', 's1', 's2']);
  });

  it('a tampered chunk fails the import with XX001 naming the file, and nothing of that chunk is loaded', { timeout: 180_000 }, async () => {
    const dir = join(work, 'tamper');
    const exp = await shardgate(['export', '--out', dir, '--config', source.proxy.configFile, '--chunk-rows', '20000', '--allow-no-primary-key']).done;
    expect(exp.code, exp.stderr).toBe(0);
    const { manifest } = await readExport(dir);
    const victim = manifest.chunks.find((c) => c.table === 'public.pgbench_accounts' && (c.rows ?? 0) > 100)!;
    const path = join(dir, victim.file);
    const original = await readFile(path);
    // A well-formed file with one balance changed: only the checksum tells.
    const csv = gunzipSync(original).toString('utf8');
    const changed = csv.replace(/^(\d+,\d+,)(-?\d+)/, (_m, head: string, bal: string) => `${head}${BigInt(bal) + 1n}`);
    expect(changed).not.toBe(csv);
    await writeFile(path, gzipSync(changed));
    const target = await startShardedSetup(2, PGBENCH_TABLES);
    try {
      const imp = await shardgate(['import', dir, '--config', target.proxy.configFile, '--jobs', '1']).done;
      expect(imp.code).toBe(1);
      expect(imp.stderr).toContain('ERROR XX001');
      expect(imp.stderr).toContain(path);
      const [lo, hi] = [Number(victim.after?.[0] ?? 0), Number(victim.upTo?.[0] ?? 1e12)];
      const loaded = (await psql(target.proxy.port, `SELECT count(*) FROM pgbench_accounts WHERE aid > ${lo} AND aid <= ${hi}`, { args: ['-A', '-t'] })).stdout.trim();
      expect(loaded).toBe('0');
      // The file put back, the import resumes and completes.
      await writeFile(path, original);
      const again = await shardgate(['import', dir, '--config', target.proxy.configFile]).done;
      expect(again.code, again.stderr).toBe(0);
      const count = (await psql(target.proxy.port, 'SELECT count(*) FROM pgbench_accounts', { args: ['-A', '-t'] })).stdout.trim();
      expect(count).toBe('100000');
    } finally {
      await target.stop();
    }
  });
});
