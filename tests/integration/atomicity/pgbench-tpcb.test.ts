import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/**
 * pgbench's default TPC-B-like script through the proxy with its four
 * tables sharded over three shards: every transaction updates an account, a
 * teller and a branch and inserts a history row, usually on different
 * shards, so most commits are two-phase. Afterwards the four sums agree,
 * read directly from the shards.
 */
const PGBENCH_TABLES = {
  pgbench_accounts: { key: 'aid' },
  pgbench_tellers: { key: 'tid' },
  pgbench_branches: { key: 'bid' },
  pgbench_history: { key: 'aid' },
};

function pgbench(port: number, args: string[], timeoutMs = 180_000): ReturnType<typeof runCommand> {
  return runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', ...args, 'app'], {
    env: { PGPASSWORD: 'app', PGCONNECT_TIMEOUT: '10' },
    timeoutMs,
  });
}

describe('pgbench TPC-B-like through the proxy over three shards', () => {
  let setup: ShardedSetup;
  beforeAll(async () => {
    setup = await startShardedSetup(3, PGBENCH_TABLES);
  });
  afterAll(async () => {
    await setup?.stop();
  });

  it('16 clients: exit 0, and sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta)', { timeout: 240_000 }, async () => {
    const init = await pgbench(setup.proxy.port, ['-i', '-s', '2', '-q']);
    expect(init.code, `${init.stdout}\n${init.stderr}\n${setup.proxy.logs().slice(-3000)}`).toBe(0);

    // The simple protocol for 10 s, then the extended protocol with prepared statements for 4 s; -n on
    // the second run, since pgbench otherwise empties pgbench_history first and the sums would not add up.
    let processed = 0;
    for (const args of [['-T', '10'], ['-n', '-T', '4', '-M', 'prepared']]) {
      const run = await pgbench(setup.proxy.port, ['-c', '16', '-j', '2', ...args]);
      const all = `${run.stdout}\n${run.stderr}`;
      expect(run.code, `${all}\n${setup.proxy.logs().slice(-3000)}`).toBe(0);
      expect(run.stdout).toMatch(/number of failed transactions: 0\b/);
      const done = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1]);
      expect(done).toBeGreaterThan(0);
      processed += done;
    }

    const sum = async (sql: string): Promise<bigint> =>
      (await Promise.all(setup.clusters.map(async (c) => BigInt((await c.query<{ s: string }>(sql, [], 'app'))[0]!.s)))).reduce((a, b) => a + b, 0n);
    const sums = {
      abalance: await sum('SELECT coalesce(sum(abalance), 0) AS s FROM pgbench_accounts'),
      tbalance: await sum('SELECT coalesce(sum(tbalance), 0) AS s FROM pgbench_tellers'),
      bbalance: await sum('SELECT coalesce(sum(bbalance), 0) AS s FROM pgbench_branches'),
      delta: await sum('SELECT coalesce(sum(delta), 0) AS s FROM pgbench_history'),
    };
    expect(sums.tbalance).toBe(sums.abalance);
    expect(sums.bbalance).toBe(sums.abalance);
    expect(sums.delta).toBe(sums.abalance);
    // Every processed transaction left its history row, on exactly one shard.
    expect(await sum('SELECT count(*) AS s FROM pgbench_history')).toBe(BigInt(processed));
    for (const c of setup.clusters) {
      expect(await c.query('SELECT gid FROM pg_prepared_xacts', [], 'app')).toEqual([]);
    }
  });
});
