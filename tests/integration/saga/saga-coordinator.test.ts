import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaCoordinator, type SagaLog } from '../../../src/saga/saga-coordinator.js';
import { sagaContext, type SagaDefinition } from '../../../src/saga/saga-definition.js';
import { PgCluster } from '../../harness/cluster.js';
import { Participant, threeStepSaga } from './participant.js';

const fast: RetryPolicy = { baseMs: 10, maxMs: 40, maxAttempts: 3, deadlineMs: 60_000 };

describe('saga coordinator on PostgreSQL with HTTP participants', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  let shop: Participant;
  const coordinators: SagaCoordinator[] = [];
  const pools: pg.Pool[] = [];

  /** A coordinator with its own pool (as a separate instance would have), started. */
  function coordinator(id: string, definitions: Record<string, SagaDefinition>, concurrency = 2): SagaCoordinator {
    const own = new pg.Pool({ connectionString: cluster.url('app'), max: concurrency + 1 });
    pools.push(own);
    const c = new SagaCoordinator({ pool: own, id, definitions, pollIntervalMs: 10, concurrency, onError: (e) => { throw e; } });
    coordinators.push(c);
    c.start();
    return c;
  }

  /** Polls the log until the saga reaches a terminal state (the test's timeout bounds the wait). */
  async function settled(c: SagaCoordinator, gid: string): Promise<SagaLog> {
    for (;;) {
      const log = await c.inspect(gid);
      if (log !== undefined && ['committed', 'compensated', 'exhausted'].includes(log.status)) return log;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 4 });
    shop = await Participant.start();
    const setup = new SagaCoordinator({ pool, id: 'setup', definitions: {} });
    // Twice at once: creating the log is idempotent and safe under concurrency.
    await Promise.all([setup.ensureTables(), setup.ensureTables()]);
    await pool.query('CREATE TABLE ledger (gid text, amount int, seen_gid text)');
  });

  afterAll(async () => {
    await Promise.all(coordinators.map((c) => c.close()));
    await Promise.all(pools.map((p) => p.end()));
    await pool?.end();
    await shop?.close();
    await cluster?.destroy();
  });

  it('commits a three-step saga: a local debit, then two HTTP steps run in parallel', async () => {
    // reserve and ship each answer only once the other has arrived: run one after the other, they never finish.
    let arrived = 0;
    let release!: () => void;
    const both = new Promise<void>((r) => (release = r));
    shop.answer = async (r) => {
      if (r.path === '/reserve' || r.path === '/ship') {
        if (++arrived === 2) release();
        await both;
      }
      return { status: 200 };
    };
    const def: SagaDefinition = {
      steps: [
        {
          name: 'debit',
          action: {
            kind: 'local',
            run: async (tx, ctx) => {
              await tx.query('INSERT INTO ledger VALUES ($1, $2, $3)', [ctx.gid, -30, sagaContext()?.gid]);
            },
          },
          compensation: { kind: 'local', run: async (tx, ctx) => void (await tx.query('DELETE FROM ledger WHERE gid = $1', [ctx.gid])) },
        },
        { name: 'reserve', action: { kind: 'http', url: `${shop.url}/reserve` } },
        { name: 'ship', parallel: true, action: { kind: 'http', url: `${shop.url}/ship` } },
      ],
    };
    const c = coordinator('c-commit', { pay: def });
    const gid = await c.submit(pool, 'pay', { amount: 30 });
    const log = await settled(c, gid);
    expect(log.status).toBe('committed');
    expect(log.steps.map((s) => [s.name, s.stage, s.status, s.calls])).toEqual([
      ['debit', 0, 'done', 1],
      ['reserve', 1, 'done', 1],
      ['ship', 1, 'done', 1],
    ]);
    expect(await pool.query('SELECT amount, seen_gid FROM ledger WHERE gid = $1', [gid]).then((r) => r.rows)).toEqual([{ amount: -30, seen_gid: gid }]);
    // The gid travels to the participants in the shardgate-gid header.
    expect(shop.received.filter((r) => r.key.startsWith(gid)).map((r) => r.gid)).toEqual([gid, gid]);
    await c.close();
  });

  it('compensates in reverse order after a FAILURE, without compensating the refused step', async () => {
    shop.answer = (r) => ({ status: r.path === '/notify' ? 409 : 200 });
    const c = coordinator('c-fail', { order: threeStepSaga(shop.url, fast) });
    const gid = await c.submit(pool, 'order', { sku: 'x' });
    const log = await settled(c, gid);
    expect(log.status).toBe('compensated');
    expect(log.lastError).toContain('HTTP 409');
    expect(shop.paths(gid)).toEqual(['/reserve', '/charge', '/notify', '/charge/undo', '/reserve/undo']);
    expect(log.steps.map((s) => s.status)).toEqual(['compensated', 'compensated', 'failed']);
    // A FAILURE is never retried.
    expect(log.steps[2]!.calls).toBe(1);
    await c.close();
  });

  it('keeps the interval and the failure count on ONGOING answers', async () => {
    // Four ONGOING answers with maxAttempts 3: counted as failures they would exhaust the step.
    shop.answer = (r, n) => ({ status: r.path === '/charge' && n <= 4 ? 425 : 200 });
    const c = coordinator('c-ongoing', { order: threeStepSaga(shop.url, fast) });
    const gid = await c.submit(pool, 'order', {});
    const log = await settled(c, gid);
    expect(log.status).toBe('committed');
    const charge = log.steps[1]!;
    expect([charge.calls, charge.attempts, charge.intervalMs]).toEqual([5, 0, fast.baseMs]);
    await c.close();
  });

  it('ends visibly as RETRY_EXHAUSTED with the last error after maxAttempts errors', async () => {
    shop.answer = (r) => ({ status: r.path === '/charge' ? 503 : 200 });
    const c = coordinator('c-exhaust', { order: threeStepSaga(shop.url, fast) });
    const gid = await c.submit(pool, 'order', {});
    const log = await settled(c, gid);
    expect(log.status).toBe('exhausted');
    expect(log.lastError).toMatch(/^RETRY_EXHAUSTED: step charge \(action\): HTTP 503/);
    expect(log.steps.map((s) => [s.status, s.calls])).toEqual([['done', 1], ['exhausted', fast.maxAttempts], ['pending', 0]]);
    expect(shop.paths(gid)).toEqual(['/reserve', '/charge', '/charge', '/charge']);
    await c.close();
  });

  it('shares sagas between two coordinators and runs each step exactly once', async () => {
    shop.answer = () => ({ status: 200 });
    const a = coordinator('c-a', { order: threeStepSaga(shop.url, fast) }, 4);
    const b = coordinator('c-b', { order: threeStepSaga(shop.url, fast) }, 4);
    const gids = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).submit(pool, 'order', { i })));
    const logs = await Promise.all(gids.map((g) => settled(a, g)));
    expect(logs.every((l) => l.status === 'committed')).toBe(true);
    for (const g of gids) {
      expect(shop.paths(g)).toEqual(['/reserve', '/charge', '/notify']);
      expect(shop.received.filter((r) => r.key.startsWith(`${g}:`)).map((r) => r.key)).toEqual([`${g}:reserve:action`, `${g}:charge:action`, `${g}:notify:action`]);
    }
    const owners = new Set(logs.flatMap((l) => l.steps.map((s) => s.owner)));
    expect([...owners].every((o) => o === 'c-a' || o === 'c-b')).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it('resumes a saga whose coordinator process was killed mid-step, applying nothing twice', async () => {
    let hung!: () => void;
    const hangs = new Promise<void>((r) => (hung = r));
    // The first charge is applied and its answer never sent: the coordinator dies waiting.
    shop.answer = (r, n) => {
      if (r.path === '/charge' && n === 1) {
        hung();
        return { status: 200, apply: true, hang: true };
      }
      return { status: 200 };
    };
    const gid = await new SagaCoordinator({ pool, id: 'submitter', definitions: { order: threeStepSaga(shop.url) } }).submit(pool, 'order', {});
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join('tests', 'integration', 'saga', 'coordinator-child.ts')], {
      env: { ...process.env, PG_URL: cluster.url('app'), BASE_URL: shop.url, COORDINATOR_ID: 'child' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // node itself (not the tsx wrapper, whose child would outlive a SIGKILL) is the process killed.
    try {
      await hangs;
      child.kill('SIGKILL');
      await once(child, 'exit');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    const survivor = coordinator('survivor', { order: threeStepSaga(shop.url) });
    const log = await settled(survivor, gid);
    expect(log.status).toBe('committed');
    // The dead coordinator recorded nothing: the survivor ran charge again, with the same key, and the participant deduped it.
    expect(shop.paths(gid)).toEqual(['/reserve', '/charge', '/charge', '/notify']);
    expect(new Set(shop.received.filter((r) => r.path === '/charge' && r.key.startsWith(gid)).map((r) => r.key))).toEqual(new Set([`${gid}:charge:action`]));
    expect([...shop.applied].filter((k) => k.startsWith(`${gid}:`)).sort()).toEqual([`${gid}:charge:action`, `${gid}:notify:action`, `${gid}:reserve:action`]);
    expect(log.steps.map((s) => [s.name, s.owner, s.calls])).toEqual([
      ['reserve', 'child', 1],
      ['charge', 'survivor', 1],
      ['notify', 'survivor', 1],
    ]);
  });
});
