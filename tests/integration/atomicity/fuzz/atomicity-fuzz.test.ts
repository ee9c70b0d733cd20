import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../../../src/config/schema.js';
import { PgCluster, runCommand } from '../../../harness/cluster.js';
import { createNetns, netnsUnavailable, NetnsPgCluster, type CutMode, type Netns } from '../../../harness/netns.js';
import { startProxy, type RunningProxy } from '../../../harness/proxy.js';
import { connect, INITIAL_BALANCE, sleep } from '../bank.js';
import { between, clientThread, FUZZ_DDL, FUZZ_TABLES, FuzzOutcomes, seededRandom, type Placement } from './workload.js';

/**
 * The atomicity fuzzer, after Vitess's 2PC fuzzer: client threads spread over
 * several `shardgate serve` instances run random cross-shard transactions on
 * 3 shards (workload.ts) while a seeded disruptor kills -9 and restarts
 * shards and instances and cuts shard s2 (which runs in a network namespace
 * of the test's own) off the network. Once everything is back and recovery
 * has run, every shard is read directly and every invariant checked.
 *
 * SHARDGATE_FUZZ_SEED replays a schedule (the seed is printed);
 * SHARDGATE_FUZZ_SECONDS sets how long the disruption lasts (default 40, for CI;
 * larger for a soak).
 */

const SEED = process.env.SHARDGATE_FUZZ_SEED ? Number(process.env.SHARDGATE_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const SECONDS = Number(process.env.SHARDGATE_FUZZ_SECONDS ?? 40);
const INSTANCES = ['gwa', 'gwb', 'gwc'];
const THREADS = 6;
const ACCOUNTS_PER_SHARD_AT_LEAST = 3;
const ACCOUNTS = 24;

const unavailable = await netnsUnavailable();
if (unavailable !== undefined) console.warn(`atomicity fuzzer skipped: ${unavailable}`);

/** A shard-killing, instance-killing, network-cutting schedule drawn from one seed; one disruption at a time. */
class Disruptor {
  readonly events: string[] = [];
  readonly #rnd: () => number;
  readonly #started = Date.now();

  constructor(
    seed: number,
    readonly clusters: readonly PgCluster[],
    readonly netns: Netns,
    readonly instances: Instances,
  ) {
    this.#rnd = seededRandom(seed ^ 0x5bd1e995);
  }

  #note(what: string): void {
    this.events.push(`${((Date.now() - this.#started) / 1000).toFixed(1)}s ${what}`);
  }

  /** Disrupts until `until` (ms since the epoch); returns with every shard up, every instance running and the link healed. */
  async run(until: number): Promise<void> {
    while (Date.now() < until) {
      await sleep(between(this.#rnd, 200, 1_500));
      const r = this.#rnd();
      if (r < 0.35) {
        const i = between(this.#rnd, 0, this.clusters.length - 1);
        const down = between(this.#rnd, 200, 2_000);
        this.#note(`kill -9 shard s${i} for ${down} ms`);
        await this.clusters[i]!.kill9();
        await sleep(down);
        await this.clusters[i]!.start();
      } else if (r < 0.7) {
        const j = between(this.#rnd, 0, INSTANCES.length - 1);
        const down = between(this.#rnd, 200, 1_500);
        this.#note(`kill -9 instance ${INSTANCES[j]} for ${down} ms`);
        await this.instances.kill9(j);
        await sleep(down);
        await this.instances.start(j);
      } else {
        const mode: CutMode = this.#rnd() < 0.5 ? 'down' : 'blackhole';
        const cut = between(this.#rnd, 300, 3_000);
        this.#note(`cut s2 off the network (${mode}) for ${cut} ms`);
        await this.netns.cutOff(mode);
        // Half the time an instance also dies during the cut: its commits to s2 stay in doubt
        // until the link heals and some instance's recovery reaches s2 again.
        const victim = this.#rnd() < 0.5 ? between(this.#rnd, 0, INSTANCES.length - 1) : undefined;
        await sleep(cut / 2);
        if (victim !== undefined) {
          this.#note(`kill -9 instance ${INSTANCES[victim]} while s2 is cut`);
          await this.instances.kill9(victim);
        }
        await sleep(cut / 2);
        await this.netns.heal();
        // Started after the heal: its start-up recovery reads every shard.
        if (victim !== undefined) await this.instances.start(victim);
      }
    }
    this.#note('disruption over');
  }
}

/** The running `shardgate serve` instances, each restartable on its own port and folder. */
class Instances {
  readonly #running: (RunningProxy | undefined)[] = [];
  readonly #ports: number[] = [];
  readonly #dirs: string[] = [];
  readonly #configs: RawConfig[];

  constructor(configs: RawConfig[]) {
    this.#configs = configs;
  }

  /** postgres:// URLs of every instance (a killed one refuses connections until it is back). */
  urls(): string[] {
    return this.#ports.map((p) => `postgres://app:app@127.0.0.1:${p}/app`);
  }

  async start(j: number): Promise<void> {
    this.#dirs[j] ??= await mkdtemp(join(tmpdir(), 'shardgate-fuzz-'));
    const proxy = await startProxy(this.#configs[j]!, { dir: this.#dirs[j], ...(this.#ports[j] ? { port: this.#ports[j] } : {}) });
    this.#ports[j] = proxy.port;
    this.#running[j] = proxy;
  }

  async kill9(j: number): Promise<void> {
    await this.#running[j]?.kill9();
    this.#running[j] = undefined;
  }

  /** The log lines of the instances still running. */
  logs(): string {
    return this.#running.map((p, j) => `--- ${INSTANCES[j]}\n${p?.logs().slice(-3_000) ?? '(not running)'}`).join('\n');
  }

  /** Stops every instance gracefully (each must exit 0); their folders stay until `remove()`. */
  async stop(): Promise<void> {
    try {
      await Promise.all(this.#running.map((p) => p?.stop()));
    } finally {
      this.#running.length = 0;
    }
  }

  /** Kills what still runs and removes the instances' folders. */
  async remove(): Promise<void> {
    await Promise.all(this.#running.map((p) => p?.kill9()));
    this.#running.length = 0;
    await Promise.all(this.#dirs.map((d) => rm(d, { recursive: true, force: true })));
  }

  /** The folder of instance `j`, holding its shardgate.yaml. */
  configFile(j: number): string {
    return join(this.#dirs[j]!, 'shardgate.yaml');
  }
}

describe.skipIf(unavailable !== undefined)('atomicity fuzzer: random cross-shard transactions under kills and a network cut', () => {
  let netns: Netns;
  let clusters: PgCluster[] = [];
  let instances: Instances | undefined;

  beforeAll(async () => {
    console.log(`atomicity fuzzer: seed ${SEED} (SHARDGATE_FUZZ_SEED=${SEED} replays it), ${SECONDS} s of disruption`);
    netns = await createNetns();
    clusters = await Promise.all([
      PgCluster.create({ databases: ['app'] }),
      PgCluster.create({ databases: ['app'] }),
      NetnsPgCluster.create({ databases: ['app'] }),
    ]);
    await (clusters[2] as NetnsPgCluster).moveInto(netns);
    for (const c of clusters) for (const sql of FUZZ_DDL) await c.query(sql, [], 'app');
  });
  afterAll(async () => {
    await instances?.remove();
    await Promise.all(clusters.map((c) => c.destroy()));
    await netns?.destroy();
  });

  function config(coordinatorId: string): RawConfig {
    return {
      database: 'app',
      auth: { users: [{ name: 'app', password: 'app' }] },
      coordinatorId,
      shards: Object.fromEntries(clusters.map((c, i) => [`s${i}`, c.url('app')])),
      tables: FUZZ_TABLES,
      // Recovery leaves branches younger than 2 × prepareTimeoutMs alone: short, so it runs during the test.
      transactions: { prepareTimeoutMs: 1_000, recoveryIntervalMs: 500 },
    } as RawConfig;
  }

  /** Funds the accounts through the proxy and reads back where each landed. */
  async function fund(url: string): Promise<Placement> {
    const client = await connect(url);
    try {
      const values = Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1}, ${INITIAL_BALANCE})`).join(', ');
      await client.query(`INSERT INTO account (id, balance) VALUES ${values}`);
    } finally {
      await client.end();
    }
    const byShard = await Promise.all(clusters.map(async (c) => (await c.query<{ id: string }>('SELECT id FROM account ORDER BY id', [], 'app')).map((r) => Number(r.id))));
    expect(byShard.every((ids) => ids.length >= ACCOUNTS_PER_SHARD_AT_LEAST), JSON.stringify(byShard)).toBe(true);
    return { byShard, eventKey: byShard.map((ids) => ids[0]!) };
  }

  async function prepared(): Promise<string[][]> {
    return Promise.all(clusters.map(async (c) => (await c.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts', [], 'app')).map((r) => r.gid)));
  }

  it('keeps every invariant, and nothing stays prepared once recovery has run', { timeout: (SECONDS + 180) * 1_000 }, async () => {
    instances = new Instances(INSTANCES.map(config));
    for (let j = 0; j < INSTANCES.length; j++) await instances.start(j);
    const placement = await fund(instances.urls()[0]!);
    const initialByShard = placement.byShard.map((ids) => BigInt(ids.length * INITIAL_BALANCE));

    // Disruption phase: client threads and the disruptor run side by side until the deadline.
    const outcomes = new FuzzOutcomes();
    const disruptor = new Disruptor(SEED, clusters, netns, instances);
    let stopped = false;
    const live = instances;
    const threads = Array.from({ length: THREADS }, (_, t) =>
      clientThread({ thread: t + 1, rnd: seededRandom(SEED + t + 1), placement, urls: () => live.urls(), outcomes, stopped: () => stopped }),
    );
    await disruptor.run(Date.now() + SECONDS * 1_000);
    stopped = true;
    await Promise.all(threads);
    const context = (): string => `seed ${SEED}; told ${JSON.stringify(outcomes.summary())}\n${disruptor.events.join('\n')}`;

    // Recovery: every shard and instance is up; the instances' recovery loops settle what was
    // left prepared (each branch once it is older than the grace period).
    // Bounded only so that a transaction recovery never settles is named in the failure.
    const settleBy = Date.now() + 60_000;
    let left = await prepared();
    while (left.some((g) => g.length > 0) && Date.now() < settleBy) {
      await sleep(200);
      left = await prepared();
    }
    expect(left, `still prepared a minute after the disruption; ${context()}\n${instances.logs()}`).toEqual(clusters.map(() => []));
    await instances.stop();
    const recover = await runCommand(process.execPath, ['bin/shardgate.js', 'recover', '--config', instances.configFile(0)], {
      env: { SHARDGATE_LOG_LEVEL: 'silent' },
      timeoutMs: 60_000,
    });
    expect(recover.code, `${recover.stdout}${recover.stderr}`).toBe(0);
    expect(await prepared(), context()).toEqual(clusters.map(() => []));

    // Every shard read directly.
    const events = await Promise.all(
      clusters.map((c) => c.query<{ account_id: string; thread: number; seq: number; delta: string }>('SELECT account_id, thread, seq, delta FROM fuzz_event', [], 'app')),
    );
    const sums = await Promise.all(clusters.map(async (c) => BigInt((await c.query<{ s: string }>('SELECT coalesce(sum(balance), 0) AS s FROM account', [], 'app'))[0]!.s)));
    const sets = events.map((rows) => new Set(rows.map((r) => `${r.thread}:${r.seq}`)));
    const all = new Set(sets.flatMap((s) => [...s]));

    // Each shard's event rows are its own (the routing held), and nothing was written twice.
    const misplaced = events.flatMap((rows, s) => rows.filter((r) => Number(r.account_id) !== placement.eventKey[s]).map((r) => `s${s}: ${r.thread}:${r.seq}`));
    expect(misplaced, context()).toEqual([]);

    // (b) per thread, the same (thread, seq) on every shard: a transaction is on all shards or on none.
    const partial = [...all].filter((k) => !sets.every((s) => s.has(k))).map((k) => `${k} on ${sets.flatMap((s, i) => (s.has(k) ? [`s${i}`] : [])).join(',')} (told ${JSON.stringify(outcomes.told.get(k)?.told)})`);
    expect(partial, `half-committed transactions; ${context()}`).toEqual([]);

    // What each client was told matches the shards; an unknown outcome may be either (all or nothing, above).
    const wrong: string[] = [];
    for (const [key, { told }] of outcomes.told) {
      if (told.kind === 'committed' && !all.has(key)) wrong.push(`${key} told COMMIT but absent`);
      if ((told.kind === 'failed' || told.kind === 'rolledBack') && all.has(key)) wrong.push(`${key} told ${JSON.stringify(told)} but present`);
    }
    for (const key of all) if (!outcomes.told.has(key)) wrong.push(`${key} present but never run`);
    expect(wrong, context()).toEqual([]);

    // Each event row says what its transaction planned for its shard.
    const deltaMismatch = events.flatMap((rows, s) =>
      rows
        .filter((r) => {
          const planned = outcomes.told.get(`${r.thread}:${r.seq}`)?.tx.deltas[s];
          return planned === undefined || BigInt(r.delta) !== BigInt(planned);
        })
        .map((r) => `s${s}: ${r.thread}:${r.seq} delta ${r.delta}`),
    );
    expect(deltaMismatch, context()).toEqual([]);

    // (a) money: each shard's balances moved exactly by its committed events, and the total is conserved.
    const expected = events.map((rows, s) => rows.reduce((sum, r) => sum + BigInt(r.delta), initialByShard[s]!));
    expect(sums, context()).toEqual(expected);
    expect(sums.reduce((a, b) => a + b, 0n)).toBe(BigInt(ACCOUNTS * INITIAL_BALANCE));

    // The run exercised something: transactions committed, and the disruptor disrupted.
    console.log(`atomicity fuzzer: ${context()}`);
    expect(outcomes.count('committed'), context()).toBeGreaterThan(0);
    expect(disruptor.events.length).toBeGreaterThan(1);
  });
});
