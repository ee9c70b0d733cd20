import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHold, readManifest } from '../../../src/export/manifest.js';
import { runCommand } from '../../harness/cluster.js';
import { readExport, shardgate, sortedLines } from '../../harness/export.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/**
 * Killing `shardgate export` mid-export: the cut's holder process keeps the
 * snapshots, so a rerun resumes and writes exactly what an uninterrupted
 * export writes; when the snapshots are gone (a shard restarted, the holder
 * died) the rerun refuses with 72000 instead of reading at another moment.
 * The data does not change between the exports, so two cuts see the same rows.
 */
const TABLES = { pgbench_accounts: { key: 'aid' }, pgbench_tellers: { key: 'tid' }, pgbench_branches: { key: 'bid' }, pgbench_history: { key: 'aid' } };
// The exporting process SIGKILLs itself right after recording its first chunk of shard s1.
const CRASH = { SHARDGATE_FAILPOINTS: 'export-chunk-done=crash@s1' };

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !alive(pid);
}

describe('shardgate export killed mid-export', () => {
  let setup: ShardedSetup;
  let work: string;
  let args: (dir: string) => string[];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'shardgate-export-resume-'));
    setup = await startShardedSetup(3, TABLES);
    const init = await runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(setup.proxy.port), '-U', 'app', '-i', '-s', '1', '-q', 'app'], { env: { PGPASSWORD: 'app' }, timeoutMs: 120_000 });
    expect(init.code, init.stderr).toBe(0);
    // Some history rows, so the keyless table has content too.
    const bench = await runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(setup.proxy.port), '-U', 'app', '-n', '-c', '4', '-t', '50', 'app'], { env: { PGPASSWORD: 'app' }, timeoutMs: 120_000 });
    expect(bench.code, bench.stderr).toBe(0);
    args = (dir) => ['export', '--out', dir, '--config', setup.proxy.configFile, '--jobs', '2', '--chunk-rows', '3000', '--allow-no-primary-key'];
  }, 180_000);
  afterAll(async () => {
    await setup?.stop().catch(() => undefined);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  /** Starts an export that kills itself mid-way; returns its folder, with the holder still holding the cut. */
  async function crashedExport(name: string, extra: readonly string[] = []): Promise<{ dir: string; holder: number }> {
    const dir = join(work, name);
    const crashed = await shardgate([...args(dir), ...extra], CRASH).done;
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
    const manifest = (await readManifest(dir))!;
    expect(manifest.complete).toBe(false);
    const done = manifest.chunks.filter((c) => c.done).length;
    expect(done).toBeGreaterThan(0);
    expect(done).toBeLessThan(manifest.chunks.length);
    const hold = (await readHold(dir))!;
    expect(alive(hold.pid)).toBe(true);
    return { dir, holder: hold.pid };
  }

  it('a resume after the exporting process was SIGKILLed gives the same rows and the same checksums as an uninterrupted export', { timeout: 180_000 }, async () => {
    const whole = join(work, 'whole');
    const straight = await shardgate(args(whole)).done;
    expect(straight.code, straight.stderr).toBe(0);

    const { dir, holder } = await crashedExport('resumed');
    const before = (await readManifest(dir))!.chunks.filter((c) => c.done);
    const resumed = await shardgate(args(dir)).done;
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/exported by this run \(resumed\)/);
    expect(await waitGone(holder)).toBe(true);

    const a = await readExport(whole);
    const b = await readExport(dir);
    // Chunks kept from before the crash are untouched by the resume.
    for (const c of before) expect(b.manifest.chunks.find((x) => x.id === c.id)).toEqual(c);
    const summary = (m: typeof a.manifest): unknown => m.chunks.map((c) => ({ id: c.id, file: c.file, rows: c.rows, sha256: c.sha256, done: c.done }));
    expect(summary(b.manifest)).toEqual(summary(a.manifest));
    expect(b.manifest.tables).toEqual(a.manifest.tables);
    for (const [table, rows] of a.rows) expect(sortedLines(b.rows.get(table)!), table).toEqual(sortedLines(rows));
  });

  it('a resume after a shard restarted refuses with 72000 (the cut is gone there) and ends the holder', { timeout: 180_000 }, async () => {
    const { dir, holder } = await crashedExport('shard-killed');
    await setup.clusters[2]!.kill9();
    await setup.clusters[2]!.start();
    const refused = await shardgate(args(dir)).done;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERROR 72000: the cut of the export in .* is gone on shard "s2"/);
    expect(refused.stderr).toMatch(/run the export again/);
    expect(await waitGone(holder)).toBe(true);
    expect((await readManifest(dir))!.complete).toBe(false);
    // Asking again changes nothing: never a new cut under the old chunks.
    const again = await shardgate(args(dir)).done;
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('ERROR 72000');
  });

  it('a resume after the holder died refuses with 72000 and drops the --cdc slots nothing can continue from', { timeout: 180_000 }, async () => {
    const slots = (): Promise<unknown[]> => Promise.all(setup.clusters.map((c) => c.query("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'lost_%'", [], 'app')));
    const { dir, holder } = await crashedExport('holder-killed', ['--cdc', '--slot-prefix', 'lost_']);
    expect((await slots()).flat()).toHaveLength(3);
    process.kill(holder, 'SIGKILL');
    expect(await waitGone(holder)).toBe(true);
    const refused = await shardgate([...args(dir), '--cdc', '--slot-prefix', 'lost_']).done;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ERROR 72000');
    expect(refused.stderr).toMatch(/dropped the replication slots of the lost cut: lost_s0, lost_s1, lost_s2/);
    expect((await slots()).flat()).toEqual([]);
  });
});
