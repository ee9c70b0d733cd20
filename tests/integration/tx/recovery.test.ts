import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { Failpoints, type RecoveryDecision } from '../../../src/tx/index.js';
import { runCommand } from '../../harness/cluster.js';
import { TestShards, sleep } from './shards.js';

const FIXTURE = 'tests/integration/tx/fixtures/crash-commit.ts';

describe('recovery', () => {
  let shards: TestShards;
  let nextId = 1;

  beforeAll(async () => {
    shards = await TestShards.start(3);
    await shards.manager().start();
  });
  afterAll(async () => {
    await shards?.destroy();
  });
  beforeEach(async () => {
    expect(await shards.prepared()).toEqual([]);
  });

  /** Runs one transaction writing s1, s2, then s0 (the anchor: first written last) in a child process with the given failpoints; returns its ids (ids[i] on s{i}). */
  async function crashingCoordinator(failpoints: string, coordinator = 'crash'): Promise<{ ids: number[]; stdout: string; code: number | null }> {
    const ids = [nextId, nextId + 1, nextId + 2];
    nextId += 3;
    const result = await runCommand(process.execPath, ['--import', 'tsx', FIXTURE], {
      env: {
        SHARDGATE_FAILPOINTS: failpoints,
        SG_URLS: JSON.stringify(shards.urls),
        SG_COORDINATOR: coordinator,
        SG_ROWS: JSON.stringify([1, 2, 0].map((i) => [`s${i}`, ids[i]])),
      },
      timeoutMs: 60_000,
    });
    return { ids, stdout: result.stdout + result.stderr, code: result.code };
  }

  async function present(ids: number[]): Promise<boolean[]> {
    return Promise.all(ids.map(async (id, i) => (await shards.ids(`s${i}`)).includes(id)));
  }

  it.each([
    ['after-prepare=crash@s2', 'abort'],
    ['before-decision=crash', 'abort'],
    ['after-decision=crash', 'commit'],
    ['between-commit-prepared=crash', 'commit'],
  ] as const)('a coordinator killed at %s is finished by recovery: %s', async (failpoint, outcome) => {
    const { ids, code, stdout } = await crashingCoordinator(failpoint);
    expect(code, stdout).toBeNull(); // killed by SIGKILL
    const left = await shards.prepared();
    expect(left.length).toBeGreaterThan(0);
    const tm = shards.manager();
    const decisions = await tm.recover({ graceMs: 0 });
    expect(decisions.map((d) => d.outcome)).toEqual(left.map(() => outcome));
    expect(await shards.prepared()).toEqual([]);
    const expected = outcome === 'commit';
    expect(await present(ids)).toEqual([expected, expected, expected]);
    const anchorRows = await shards.decisions('s0');
    expect(anchorRows.find((r) => r.gid === decisions[0]!.gid)?.outcome).toBe(outcome);
  });

  it('leaves young branches alone, reports them in doubt, and never guesses while the anchor is down', async () => {
    const { ids } = await crashingCoordinator('after-decision=crash');
    const tm = shards.manager({ recoveryGraceMs: 60_000 });
    expect(await tm.recover()).toEqual([]);
    const doubt = await tm.inDoubt();
    expect(doubt.map((d) => [d.shard, d.anchor, d.anchorReachable, d.decision])).toEqual([
      ['s1', 's0', true, 'commit'],
      ['s2', 's0', true, 'commit'],
    ]);
    expect(doubt.every((d) => d.ageMs >= 0 && d.gid.startsWith('sg_crash_s0_'))).toBe(true);

    await shards.cluster('s0').stop();
    try {
      const down = shards.manager({ acquireTimeoutMs: 1_000 });
      expect(await down.recover({ graceMs: 0 })).toEqual([]);
      expect((await down.inDoubt()).map((d) => d.anchorReachable)).toEqual([false, false]);
      const held = await Promise.all(['s1', 's2'].map((s) => shards.query(s, 'SELECT gid FROM pg_prepared_xacts')));
      expect(held.flat().length).toBe(2);
    } finally {
      await shards.cluster('s0').start();
    }
    const decisions = await shards.manager().recover({ graceMs: 0 });
    expect(decisions.map((d) => d.outcome)).toEqual(['commit', 'commit']);
    expect(await present(ids)).toEqual([true, true, true]);
  });

  it('two managers recovering the same shards concurrently agree on every outcome', async () => {
    const runs = [];
    for (const fp of ['after-decision=crash', 'before-decision=crash', 'between-commit-prepared=crash', 'after-prepare=crash@s1']) {
      runs.push({ ...(await crashingCoordinator(fp, 'dead')), commit: fp.startsWith('after-decision') || fp.startsWith('between') });
    }
    const left = await shards.prepared();
    const a = shards.manager({ coordinatorId: 'gwa' });
    const b = shards.manager({ coordinatorId: 'gwb' });
    const [da, db] = await Promise.all([a.recover({ graceMs: 0 }), b.recover({ graceMs: 0 })]);
    const byBranch = new Map<string, RecoveryDecision[]>();
    for (const d of [...da, ...db]) byBranch.set(`${d.gid}/${d.shard}`, [...(byBranch.get(`${d.gid}/${d.shard}`) ?? []), d]);
    expect(byBranch.size).toBe(left.length);
    for (const ds of byBranch.values()) expect(new Set(ds.map((d) => d.outcome)).size).toBe(1);
    expect(await shards.prepared()).toEqual([]);
    for (const run of runs) expect(await present(run.ids)).toEqual([run.commit, run.commit, run.commit]);
  });

  it('fences out a live coordinator whose branches recovery aborted first (primary key on the decision)', async () => {
    const failpoints = new Failpoints([{ name: 'before-decision', action: { kind: 'delay', ms: 1_500 } }]);
    const slow = shards.manager({ coordinatorId: 'slow', failpoints });
    const tx = slow.begin({});
    const ids = [nextId, nextId + 1, nextId + 2];
    nextId += 3;
    for (const [i, id] of ids.entries()) {
      const shard = shardName(`s${i}`);
      await (await tx.participant(shard)).rows('INSERT INTO account VALUES ($1, 0)', [String(id)]);
      tx.markWritten(shard);
    }
    const committing = tx.commit().then(
      () => null,
      (err: unknown) => err,
    );
    while ((await shards.prepared()).length < 2) await sleep(20);
    const decisions = await shards.manager({ coordinatorId: 'rec' }).recover({ graceMs: 0 });
    expect(decisions.map((d) => d.outcome)).toEqual(['abort', 'abort']);
    expect(await committing).toMatchObject({ code: '40001' });
    expect(await present(ids)).toEqual([false, false, false]);
    expect(await shards.prepared()).toEqual([]);
  });
});
