import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCdc, type CdcProcess } from '../../harness/cdc.js';
import { runCommand } from '../../harness/cluster.js';
import { startProxy, startShardedSetup, type RunningProxy, type ShardedSetup } from '../../harness/proxy.js';

/**
 * `shardgate cdc` as a process, with pgbench's TPC-B-like script running
 * through the proxy over three shards: most transactions are two-phase over
 * two or three shards. A consumer rebuilds the four pgbench sums from the
 * events alone and checks them after every event; the CDC process, a shard
 * and the proxy are killed along the way.
 */
const PGBENCH_TABLES = {
  pgbench_accounts: { key: 'aid' },
  pgbench_tellers: { key: 'tid' },
  pgbench_branches: { key: 'bid' },
  pgbench_history: { key: 'aid' },
};

interface Change {
  readonly table: string;
  readonly op: string;
  readonly new: Record<string, string | null> | null;
}
interface Event {
  readonly id: string;
  readonly kind: 'local' | 'global';
  readonly shards: string[];
  readonly changes: Change[];
}

/** What a downstream service would keep: balances by key, history, and the ids it has applied. */
class Consumer {
  readonly accounts = new Map<string, bigint>();
  readonly tellers = new Map<string, bigint>();
  readonly branches = new Map<string, bigint>();
  historyRows = 0;
  sums = { a: 0n, t: 0n, b: 0n, h: 0n };
  readonly seen = new Map<string, string>();
  duplicates = 0;
  events = 0;
  globals = 0;
  readonly problems: string[] = [];
  phase = '';

  apply(line: string): void {
    const e = JSON.parse(line) as Event;
    const text = JSON.stringify({ ...e, commitTime: undefined });
    const before = this.seen.get(e.id);
    if (before !== undefined) {
      this.duplicates++;
      if (before !== text) this.problems.push(`event ${e.id} came again with other content`);
      return;
    }
    this.seen.set(e.id, text);
    this.events++;
    if (e.kind === 'global') this.globals++;
    // Each pgbench transaction updates one account, one teller, one branch and inserts one history row.
    const tables = e.changes.map((c) => `${c.table}:${c.op}`).sort();
    const expected = ['public.pgbench_accounts:update', 'public.pgbench_branches:update', 'public.pgbench_history:insert', 'public.pgbench_tellers:update'];
    if (JSON.stringify(tables) !== JSON.stringify(expected)) this.problems.push(`event ${e.id} is not one whole pgbench transaction: ${tables.join(' ')}`);
    for (const c of e.changes) {
      const row = c.new!;
      if (c.table === 'public.pgbench_accounts') this.sums.a += this.#set(this.accounts, row.aid!, BigInt(row.abalance!));
      else if (c.table === 'public.pgbench_tellers') this.sums.t += this.#set(this.tellers, row.tid!, BigInt(row.tbalance!));
      else if (c.table === 'public.pgbench_branches') this.sums.b += this.#set(this.branches, row.bid!, BigInt(row.bbalance!));
      else if (c.table === 'public.pgbench_history') {
        this.sums.h += BigInt(row.delta!);
        this.historyRows++;
      }
    }
    const { a, t, b, h } = this.sums;
    if (!(a === t && t === b && b === h)) this.problems.push(`${this.phase}: after event ${e.id} (${this.events}) ${JSON.stringify(e.changes.map((c) => c.new))} the sums disagree: accounts ${a}, tellers ${t}, branches ${b}, history ${h}`);
  }

  /** Sets a balance (every row starts at 0) and returns by how much it changed. */
  #set(map: Map<string, bigint>, key: string, value: bigint): bigint {
    const old = map.get(key) ?? 0n;
    map.set(key, value);
    return value - old;
  }
}

function pgbench(port: number, args: string[]): ReturnType<typeof runCommand> {
  return runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-n', ...args, 'app'], {
    env: { PGPASSWORD: 'app', PGCONNECT_TIMEOUT: '10' },
    timeoutMs: 120_000,
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('shardgate cdc over three shards under pgbench', () => {
  let setup: ShardedSetup;
  let proxy: RunningProxy;
  const children: CdcProcess[] = [];

  beforeAll(async () => {
    setup = await startShardedSetup(3, PGBENCH_TABLES);
    proxy = setup.proxy;
    const init = await runCommand('pgbench', ['-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'app', '-i', '-s', '1', '-q', 'app'], {
      env: { PGPASSWORD: 'app' },
      timeoutMs: 120_000,
    });
    expect(init.code, init.stderr).toBe(0);
  });
  afterAll(async () => {
    for (const c of children) await c.kill9();
    await proxy?.kill9();
    await setup?.stop().catch(() => undefined);
  });

  it(
    'every event is one whole transaction and the sums agree after each, through kills of the CDC process, a shard and the proxy',
    { timeout: 300_000 },
    async () => {
      const consumer = new Consumer();
      let cdc = startCdc(proxy.configFile, [], (line) => consumer.apply(line));
      children.push(cdc);
      await cdc.streaming;

      consumer.phase = 'run1';
      // 1. Kill the CDC process while pgbench runs; a new one continues from the slots.
      const run1 = pgbench(proxy.port, ['-c', '8', '-j', '2', '-T', '6']);
      await sleep(2500);
      await cdc.kill9();
      cdc = startCdc(proxy.configFile, [], (line) => consumer.apply(line));
      children.push(cdc);
      await cdc.streaming;
      expect((await run1).stdout).toMatch(/number of failed transactions: 0\b/);

      consumer.phase = 'run2';
      // 2. Kill a shard while pgbench and CDC run; clients fail, CDC reconnects when it is back.
      const run2 = pgbench(proxy.port, ['-c', '8', '-j', '2', '-T', '6']);
      await sleep(2000);
      await setup.clusters[1]!.kill9();
      await sleep(500);
      await setup.clusters[1]!.start();
      await run2;

      consumer.phase = 'run3';
      // 3. Kill the proxy mid-run (in-doubt transactions stay prepared) and start it again on the same
      //    folder and port: its recovery finishes them, and CDC emits each whole once it has.
      const run3 = pgbench(proxy.port, ['-c', '8', '-j', '2', '-T', '6']);
      await sleep(2000);
      await proxy.kill9();
      await run3;
      proxy = await startProxy(setup.config, { dir: proxy.dir, port: proxy.port });

      consumer.phase = 'run4';
      // 4. A clean run after everything is back.
      const run4 = await pgbench(proxy.port, ['-c', '4', '-j', '2', '-t', '200']);
      expect(run4.stdout).toMatch(/number of failed transactions: 0\b/);

      // Recovery has finished what the dead proxy left prepared.
      for (let i = 0; ; i++) {
        const prepared = await Promise.all(setup.clusters.map((c) => c.query('SELECT gid FROM pg_prepared_xacts', [], 'app')));
        if (prepared.every((p) => p.length === 0)) break;
        if (i > 300) throw new Error(`still prepared: ${JSON.stringify(prepared)}`);
        await sleep(100);
      }
      // The database as it is now, read from the shards.
      const table = async (sql: string): Promise<Map<string, bigint>> => {
        const out = new Map<string, bigint>();
        for (const c of setup.clusters) for (const r of await c.query<{ k: string; v: string }>(sql, [], 'app')) if (r.v !== '0') out.set(r.k, BigInt(r.v));
        return out;
      };
      const truth = {
        accounts: await table('SELECT aid::text AS k, abalance::text AS v FROM pgbench_accounts'),
        tellers: await table('SELECT tid::text AS k, tbalance::text AS v FROM pgbench_tellers'),
        branches: await table('SELECT bid::text AS k, bbalance::text AS v FROM pgbench_branches'),
        history: (await Promise.all(setup.clusters.map(async (c) => Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history', [], 'app'))[0]!.n)))).reduce((a, b) => a + b, 0),
      };
      const nonZero = (m: Map<string, bigint>): Map<string, bigint> => new Map([...m].filter(([, v]) => v !== 0n));
      // The stream catches up: wait for the consumer to have every committed transaction.
      for (let i = 0; consumer.historyRows < truth.history && i < 600; i++) await sleep(100);

      expect(consumer.problems.slice(0, 5)).toEqual([]);
      expect(consumer.historyRows).toBe(truth.history);
      expect(nonZero(consumer.accounts)).toEqual(truth.accounts);
      expect(nonZero(consumer.tellers)).toEqual(truth.tellers);
      expect(nonZero(consumer.branches)).toEqual(truth.branches);
      // Most pgbench transactions touch two or three shards.
      expect(consumer.globals).toBeGreaterThan(consumer.events / 2);

      // A clean stop: exit 0, and the slots confirmed, so a new process sends nothing already acknowledged.
      expect(await cdc.stop(), cdc.logs()).toBe(0);
      const { events, duplicates } = consumer;
      const again = startCdc(proxy.configFile, [], (line) => consumer.apply(line));
      children.push(again);
      await again.streaming;
      const more = await pgbench(proxy.port, ['-c', '2', '-t', '20']);
      expect(more.code).toBe(0);
      for (let i = 0; consumer.events < events + 40 && i < 300; i++) await sleep(100);
      expect(await again.stop(), again.logs()).toBe(0);
      expect(consumer.events).toBe(events + 40);
      expect(consumer.duplicates).toBe(duplicates);
      expect(consumer.problems.slice(0, 5)).toEqual([]);
    },
  );
});
