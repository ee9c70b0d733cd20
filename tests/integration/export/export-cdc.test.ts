import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCdc, type CdcProcess } from '../../harness/cdc.js';
import { runCommand } from '../../harness/cluster.js';
import { readExport, serverRows, shardgate, sortedLines } from '../../harness/export.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/**
 * `shardgate export --cdc` while pgbench writes through the proxy, then
 * `shardgate cdc --from-manifest`: the exported rows with every event applied
 * on top are exactly the source's rows once the writes stop — no
 * transaction lost between the copy and the stream, none applied twice.
 */
const TABLES = { pgbench_accounts: { key: 'aid' }, pgbench_tellers: { key: 'tid' }, pgbench_branches: { key: 'bid' }, pgbench_history: { key: 'aid' } };
const PK: Record<string, string[]> = { 'public.pgbench_accounts': ['aid'], 'public.pgbench_tellers': ['tid'], 'public.pgbench_branches': ['bid'], 'public.pgbench_history': [] };

interface Change {
  readonly table: string;
  readonly op: string;
  readonly new: Record<string, string | null> | null;
  readonly old?: Record<string, string | null> | null;
}

function pgbench(port: number, args: string[]): ReturnType<typeof runCommand> {
  return runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-n', ...args, 'app'], { env: { PGPASSWORD: 'app', PGCONNECT_TIMEOUT: '10' }, timeoutMs: 120_000 });
}

describe('shardgate export --cdc, then shardgate cdc --from-manifest', () => {
  let setup: ShardedSetup;
  let work: string;
  let cdc: CdcProcess | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'shardgate-export-cdc-'));
    setup = await startShardedSetup(3, TABLES);
    const init = await runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(setup.proxy.port), '-U', 'app', '-i', '-s', '1', '-q', 'app'], { env: { PGPASSWORD: 'app' }, timeoutMs: 120_000 });
    expect(init.code, init.stderr).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await cdc?.kill9();
    await setup?.stop().catch(() => undefined);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('the export plus the events is exactly the source', { timeout: 300_000 }, async () => {
    const dir = join(work, 'cdc');
    const run = pgbench(setup.proxy.port, ['-c', '8', '-j', '2', '-T', '12']);
    await new Promise((r) => setTimeout(r, 2000));
    const exp = await shardgate(['export', '--out', dir, '--config', setup.proxy.configFile, '--cdc', '--allow-no-primary-key', '--chunk-rows', '10000']).done;
    expect(exp.code, exp.stderr).toBe(0);
    const { manifest, rows } = await readExport(dir);
    for (const s of Object.values(manifest.shards)) expect(s.slot).toMatch(/^shardgate_cdc_s\d$/);

    // The state a consumer starts from: the export's rows, by key.
    const columns = new Map(manifest.tables.map((t) => [`${t.schema}.${t.name}`, t.columns.map((c) => c.name)]));
    const state = new Map<string, Map<string, (string | null)[]>>();
    const history: (string | null)[][] = [];
    for (const [table, list] of rows) {
      if (table === 'public.pgbench_history') history.push(...list);
      else state.set(table, new Map(list.map((r) => [JSON.stringify(PK[table]!.map((k) => r[columns.get(table)!.indexOf(k)]!)), r])));
    }
    const exportedHistory = history.length;
    const problems: string[] = [];
    const apply = (line: string): void => {
      const e = JSON.parse(line) as { changes: Change[] };
      for (const c of e.changes) {
        const cols = columns.get(c.table)!;
        const row = c.new === null ? null : cols.map((k) => c.new![k] ?? null);
        if (c.table === 'public.pgbench_history') {
          if (c.op === 'insert') history.push(row!);
          else problems.push(`unexpected ${c.op} on history`);
          continue;
        }
        const key = JSON.stringify(PK[c.table]!.map((k) => (c.new ?? c.old)![k]!));
        if (c.op === 'delete') state.get(c.table)!.delete(key);
        else state.get(c.table)!.set(key, row!);
      }
    };
    cdc = startCdc(setup.proxy.configFile, ['--from-manifest', join(dir, 'manifest.json')], apply);
    await cdc.streaming;
    const bench = await run;
    expect(bench.stdout).toMatch(/number of failed transactions: 0\b/);
    // Writes after the cut whatever the machine's speed: the run above may have ended before the export took its cut.
    const after = await pgbench(setup.proxy.port, ['-c', '4', '-j', '2', '-t', '50']);
    expect(after.stdout).toMatch(/number of failed transactions: 0\b/);

    const source = async (table: string): Promise<(string | null)[][]> => (await Promise.all(setup.clusters.map((c) => serverRows(c.url('app'), table)))).flat();
    const truthHistory = await source('public.pgbench_history');
    // Writes went on after the cut, so the stream has work to do.
    expect(truthHistory.length).toBeGreaterThan(exportedHistory);
    for (let i = 0; history.length < truthHistory.length && i < 600; i++) await new Promise((r) => setTimeout(r, 100));

    expect(problems).toEqual([]);
    expect(sortedLines(history)).toEqual(sortedLines(truthHistory));
    for (const table of ['public.pgbench_accounts', 'public.pgbench_tellers', 'public.pgbench_branches']) {
      expect(sortedLines([...state.get(table)!.values()]), table).toEqual(sortedLines(await source(table)));
    }
    expect(await cdc.stop(), cdc.logs()).toBe(0);

    // A second export --cdc finds the slots taken: refused before any cut, and no slot added or dropped.
    const slotsBefore = await Promise.all(setup.clusters.map((c) => c.query('SELECT slot_name FROM pg_replication_slots ORDER BY 1', [], 'app')));
    const second = await shardgate(['export', '--out', join(work, 'second'), '--config', setup.proxy.configFile, '--cdc', '--allow-no-primary-key']).done;
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/ERROR 22023: .*replication slot shardgate_cdc_s0 exists already/);
    expect(await Promise.all(setup.clusters.map((c) => c.query('SELECT slot_name FROM pg_replication_slots ORDER BY 1', [], 'app')))).toEqual(slotsBefore);
  });
});
