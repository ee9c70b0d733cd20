import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/admin/admin-server.js';
import type { SagaSummary } from '../../../src/admin/admin-source.js';
import { Metrics } from '../../../src/observe/metrics.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaAdmin } from '../../../src/saga/saga-admin.js';
import { SagaCoordinator, type SagaStatus } from '../../../src/saga/saga-coordinator.js';
import { FakeAdminSource } from '../../unit/admin/fake-admin-source.js';
import { parseProm } from '../../unit/observe/prom-text.js';
import { PgCluster } from '../../harness/cluster.js';
import { Participant, threeStepSaga } from './participant.js';

const TOKEN = 'saga-admin-token-0123456789';
const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 3, deadlineMs: 60_000 };
// ONGOING keeps the interval at baseMs: a step answering 425 under this policy is due again only in an hour.
const slow: RetryPolicy = { baseMs: 3_600_000, maxMs: 3_600_000, maxAttempts: 3, deadlineMs: 7_200_000 };

describe('saga admin API over HTTP, on PostgreSQL', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  let shop: Participant;
  let admin: AdminServer;
  let base: string;
  let coordinator: SagaCoordinator;
  const metrics = new Metrics();

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 6 });
    shop = await Participant.start();
    // Driven by runOnce() in the tests, never started: each move happens where the test says.
    coordinator = new SagaCoordinator({ pool, id: 'c', definitions: { fast: threeStepSaga(shop.url, fast), slow: threeStepSaga(shop.url, slow) }, metrics });
    await coordinator.ensureTables();
    admin = new AdminServer({ port: 0, token: TOKEN, source: new FakeAdminSource(), metrics, sagas: new SagaAdmin({ pool, metrics }) });
    base = `http://127.0.0.1:${(await admin.listen()).port}`;
  });

  afterAll(async () => {
    await admin?.close();
    await pool?.end();
    await shop?.close();
    await cluster?.destroy();
  });

  /** Runs moves until the saga is in `status` (the backoffs here are a few milliseconds). */
  async function driveTo(gid: string, status: SagaStatus): Promise<void> {
    for (;;) {
      if ((await coordinator.inspect(gid))!.status === status) return;
      if (!(await coordinator.runOnce())) await new Promise((r) => setTimeout(r, 5));
    }
  }
  const list = async (query = ''): Promise<SagaSummary[]> => ((await (await fetch(`${base}/api/sagas${query}`)).json()) as { sagas: SagaSummary[] }).sagas;
  const act = (gid: string, action: string, token: string | null = TOKEN) =>
    fetch(`${base}/api/sagas/${encodeURIComponent(gid)}/${action}`, { method: 'POST', headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const errorCode = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  it('lists an exhausted saga with its last error, and a retry sends it back to due so it commits', async () => {
    let charging = 503;
    shop.answer = (r) => ({ status: r.path === '/charge' ? charging : 200 });
    const gid = await coordinator.submit(pool, 'fast', {});
    await driveTo(gid, 'exhausted');
    const [listed] = (await list('?status=exhausted')).filter((s) => s.gid === gid);
    expect(listed!.status).toBe('exhausted');
    expect(listed!.lastError).toMatch(/^RETRY_EXHAUSTED: step charge \(action\): HTTP 503/);
    expect(listed!.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([['reserve', 'done', 0], ['charge', 'exhausted', 3], ['notify', 'pending', 0]]);
    expect((await list('?status=running')).map((s) => s.gid)).not.toContain(gid);

    // State changes need the token.
    expect((await act(gid, 'retry', null)).status).toBe(401);
    expect((await act(gid, 'retry', 'wrong-token-wrong-token')).status).toBe(401);
    expect((await coordinator.inspect(gid))!.status).toBe('exhausted');

    charging = 200;
    const res = await act(gid, 'retry');
    expect(res.status).toBe(200);
    const retried = ((await res.json()) as { saga: SagaSummary }).saga;
    expect(retried.status).toBe('running');
    expect(retried.lastError).toBeNull();
    expect(retried.steps[1]).toMatchObject({ name: 'charge', status: 'pending', attempts: 0 });
    expect(retried.steps[1]!.nextAttemptAt).not.toBeNull();
    expect((await list('?status=running')).map((s) => s.gid)).toContain(gid);

    await driveTo(gid, 'committed');
    // The retried attempt carried the same idempotency key as the exhausted ones.
    expect(shop.paths(gid)).toEqual(['/reserve', '/charge', '/charge', '/charge', '/charge', '/notify']);
    expect(new Set(shop.received.filter((r) => r.path === '/charge' && r.key.startsWith(gid)).map((r) => r.key))).toEqual(new Set([`${gid}:charge:action`]));
    // Only an exhausted saga can be retried.
    const again = await act(gid, 'retry');
    expect(again.status).toBe(409);
    expect(await errorCode(again)).toBe('55000');
  });

  it('retries an exhausted compensation as a compensation, in reverse order', async () => {
    let undoing = 503;
    shop.answer = (r) => ({ status: r.path === '/notify' ? 409 : r.path === '/charge/undo' ? undoing : 200 });
    const gid = await coordinator.submit(pool, 'fast', {});
    await driveTo(gid, 'exhausted');
    expect((await coordinator.inspect(gid))!.lastError).toMatch(/^RETRY_EXHAUSTED: step charge \(compensation\)/);
    undoing = 200;
    const res = await act(gid, 'retry');
    expect(res.status).toBe(200);
    const saga = ((await res.json()) as { saga: SagaSummary }).saga;
    expect(saga.status).toBe('compensating');
    expect(saga.lastError).toMatch(/^step notify failed: HTTP 409/);
    await driveTo(gid, 'compensated');
    expect(shop.paths(gid)).toEqual(['/reserve', '/charge', '/notify', '/charge/undo', '/charge/undo', '/charge/undo', '/charge/undo', '/reserve/undo']);
    expect((await coordinator.inspect(gid))!.steps.map((s) => s.status)).toEqual(['compensated', 'compensated', 'failed']);
  });

  it('lists running and compensating sagas, and abandons one so that no coordinator moves it again', async () => {
    shop.answer = (r) => ({ status: r.path === '/charge' ? 425 : r.path === '/notify' ? 409 : r.path === '/reserve/undo' ? 425 : 200 });
    const running = await coordinator.submit(pool, 'slow', { kind: 'running' });
    await coordinator.runOnce();
    const compensating = await coordinator.submit(pool, 'slow', { kind: 'compensating' });
    // This saga's charge is answered at once: its notify is refused and its reserve undo stays ONGOING.
    shop.answer = (r) => ({ status: r.path === '/charge' && (r.payload as { kind: string }).kind === 'running' ? 425 : r.path === '/notify' ? 409 : r.path === '/reserve/undo' ? 425 : 200 });
    await coordinator.runOnce();
    expect((await coordinator.inspect(running))!.status).toBe('running');
    expect((await coordinator.inspect(compensating))!.status).toBe('compensating');

    expect((await list('?status=running')).map((s) => s.gid)).toEqual([running]);
    expect((await list('?status=compensating')).map((s) => s.gid)).toEqual([compensating]);
    expect((await list()).map((s) => s.gid)).toEqual(expect.arrayContaining([running, compensating]));
    expect((await list('?status=running,compensating&limit=1')).length).toBe(1);
    expect((await fetch(`${base}/api/sagas?status=committed`)).status).toBe(400);
    const charge = (await list('?status=running'))[0]!.steps[1]!;
    expect([charge.status, charge.calls, charge.attempts]).toEqual(['pending', 1, 0]);

    // A coordinator's move holds the row lock: an operator is told so at once.
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM shardgate_saga.saga WHERE gid = $1 FOR UPDATE', [running]);
      const busy = await act(running, 'abandon');
      expect(busy.status).toBe(409);
      expect(await errorCode(busy)).toBe('55P03');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }

    const before = parseProm(await metrics.text()).get('shardgate_saga_finished_total{status="abandoned"}');
    for (const gid of [running, compensating]) {
      const res = await act(gid, 'abandon');
      expect(res.status).toBe(200);
      const saga = ((await res.json()) as { saga: SagaSummary }).saga;
      expect(saga.status).toBe('abandoned');
      expect(saga.lastError).toMatch(/^ABANDONED by an operator while (running|compensating)/);
    }
    expect(parseProm(await metrics.text()).get('shardgate_saga_finished_total{status="abandoned"}')).toBe(before! + 2);
    expect((await coordinator.inspect(running))!.steps.map((s) => s.status)).toEqual(['done', 'abandoned', 'abandoned']);
    expect((await coordinator.inspect(compensating))!.steps.map((s) => s.status)).toEqual(['abandoned', 'compensated', 'failed']);
    expect((await list()).map((s) => s.gid)).not.toEqual(expect.arrayContaining([running]));

    // Even with its steps made due, an abandoned saga is never claimed again.
    await pool.query(`UPDATE shardgate_saga.saga_step SET next_attempt_at = now() WHERE gid = ANY($1)`, [[running, compensating]]);
    const calls = shop.received.length;
    expect(await coordinator.runOnce()).toBe(false);
    expect(shop.received.length).toBe(calls);

    const twice = await act(running, 'abandon');
    expect(twice.status).toBe(409);
    expect(await errorCode(twice)).toBe('55000');
    const unknown = await act('saga-nobody', 'abandon');
    expect(unknown.status).toBe(404);
    expect(await errorCode(unknown)).toBe('42704');
    expect((await fetch(`${base}/api/sagas/${running}/abandon`)).status).toBe(405);
  });

  it('answers 404 for the saga endpoints when no saga log is configured', async () => {
    const bare = new AdminServer({ port: 0, token: TOKEN, source: new FakeAdminSource(), metrics: null });
    const { port } = await bare.listen();
    try {
      expect((await fetch(`http://127.0.0.1:${port}/api/sagas`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/api/sagas/x/retry`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    } finally {
      await bare.close();
    }
  });
});
