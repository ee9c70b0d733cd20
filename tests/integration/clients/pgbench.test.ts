import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashShardIndex } from '../../../src/planner/shard-key.js';
import { runCommand } from '../../harness/cluster.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';
import { countsPerShard } from './account-setup.js';

/** The pgbench tables sharded as in CONFIG.md. */
const PGBENCH_TABLES = {
  pgbench_accounts: { key: 'aid' },
  pgbench_tellers: { key: 'tid' },
  pgbench_branches: { key: 'bid' },
  pgbench_history: { key: 'aid' },
};

function pgbench(port: number, args: string[], timeoutMs = 240_000): ReturnType<typeof runCommand> {
  return runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', ...args, 'app'], {
    env: { PGPASSWORD: 'app', PGCONNECT_TIMEOUT: '10' },
    timeoutMs,
  });
}

describe('pgbench through the proxy, two shards', () => {
  let setup: ShardedSetup;
  beforeAll(async () => {
    setup = await startShardedSetup(2, PGBENCH_TABLES);
  });
  afterAll(async () => {
    await setup?.stop();
  });

  it('initialises scale 2 with every row on exactly one shard', { timeout: 300_000 }, async () => {
    const init = await pgbench(setup.proxy.port, ['-i', '-s', '2']);
    expect(init.code, `${init.stdout}\n${init.stderr}\n${setup.proxy.logs()}`).toBe(0);

    const accounts = await countsPerShard(setup, 'pgbench_accounts');
    expect(accounts.reduce((a, b) => a + b, 0)).toBe(200_000);
    expect(accounts.every((n) => n > 0)).toBe(true);
    // Every aid 1..200000 stored once: the counts add up, the aids add up, and no shard holds one twice.
    const sums = await Promise.all(setup.clusters.map(async (c) => BigInt((await c.query<{ s: string }>('SELECT coalesce(sum(aid), 0) AS s FROM pgbench_accounts', [], 'app'))[0]!.s)));
    expect(sums.reduce((a, b) => a + b, 0n)).toBe((200_000n * 200_001n) / 2n);
    const ranges = await Promise.all(
      setup.clusters.map(async (c) => (await c.query<{ lo: number; hi: number }>('SELECT min(aid) AS lo, max(aid) AS hi FROM pgbench_accounts', [], 'app'))[0]!),
    );
    // Hash placement interleaves keys: each shard holds keys from both ends of the range.
    for (const r of ranges) {
      expect(r.lo).toBeLessThan(1000);
      expect(r.hi).toBeGreaterThan(199_000);
    }
    // And each row sits on the shard the documented hash names (README "Hash algorithm"), checked for aids 1..2000.
    for (const [i, c] of setup.clusters.entries()) {
      const held = await c.query<{ aid: number }>('SELECT aid FROM pgbench_accounts WHERE aid <= 2000 ORDER BY aid', [], 'app');
      const expected = Array.from({ length: 2000 }, (_, k) => k + 1).filter((aid) => hashShardIndex(String(aid), 2) === i);
      expect(held.map((r) => r.aid)).toEqual(expected);
    }

    const branches = await countsPerShard(setup, 'pgbench_branches');
    expect(branches.reduce((a, b) => a + b, 0)).toBe(2);
    const tellers = await countsPerShard(setup, 'pgbench_tellers');
    expect(tellers.reduce((a, b) => a + b, 0)).toBe(20);
    expect(tellers.every((n) => n > 0)).toBe(true);

    const viaProxy = await runCommand(
      'psql',
      ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(setup.proxy.port), '-U', 'app', '-d', 'app', '-c', 'SELECT count(*) FROM pgbench_accounts'],
      { env: { PGPASSWORD: 'app' }, timeoutMs: 60_000 },
    );
    expect(viaProxy.stdout.trim()).toBe('200000');
    for (const c of setup.clusters) {
      const dupes = await c.query<{ n: string }>('SELECT count(*) - count(DISTINCT aid) AS n FROM pgbench_accounts', [], 'app');
      expect(dupes[0]!.n).toBe('0');
    }
  });

  for (const mode of ['simple', 'extended', 'prepared'] as const) {
    it(`runs the select-only workload with -M ${mode}`, { timeout: 120_000 }, async () => {
      const run = await pgbench(setup.proxy.port, ['-S', '-T', '3', '-c', '4', '-M', mode], 90_000);
      const all = `${run.stdout}\n${run.stderr}`;
      expect(run.code, `${all}\n${setup.proxy.logs()}`).toBe(0);
      expect(all).not.toMatch(/\berror\b/i);
      expect(run.stdout).toMatch(/number of failed transactions: 0\b/);
      const processed = /number of transactions actually processed: (\d+)/.exec(run.stdout);
      expect(Number(processed?.[1])).toBeGreaterThan(0);
    });
  }
});
