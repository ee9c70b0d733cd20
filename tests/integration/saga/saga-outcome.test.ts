import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaAdmin } from '../../../src/saga/saga-admin.js';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import { PgCluster } from '../../harness/cluster.js';
import { Participant, threeStepSaga } from './participant.js';

const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 3, deadlineMs: 60_000 };

describe('awaiting a saga outcome: RETRY_EXHAUSTED and the other ends as SQLSTATEs', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  let shop: Participant;
  let running: SagaCoordinator;
  let idle: SagaCoordinator;

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 6 });
    shop = await Participant.start();
    shop.answer = (r) => ({ status: (r.payload as { kind: string }).kind === 'exhausted' && r.path === '/charge' ? 503 : (r.payload as { kind: string }).kind === 'refused' && r.path === '/notify' ? 409 : 200 });
    const definitions = { order: threeStepSaga(shop.url, fast) };
    running = new SagaCoordinator({ pool, id: 'run', definitions, pollIntervalMs: 5, onError: (e) => { throw e; } });
    await running.ensureTables();
    running.start();
    // Never started: a saga only this one knows of, under another definition name, never moves.
    idle = new SagaCoordinator({ pool, id: 'idle', definitions: { parked: threeStepSaga(shop.url, fast) } });
  });

  afterAll(async () => {
    await running?.close();
    await pool?.end();
    await shop?.close();
    await cluster?.destroy();
  });

  const failure = async (p: Promise<unknown>): Promise<PgError> => {
    const err = await p.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PgError);
    return err as PgError;
  };

  it('resolves with the log of a committed or compensated saga', async () => {
    const ok = await running.outcome(await running.submit(pool, 'order', { kind: 'plain' }));
    expect(ok.status).toBe('committed');
    const refused = await running.outcome(await running.submit(pool, 'order', { kind: 'refused' }));
    expect(refused.status).toBe('compensated');
    expect(refused.lastError).toContain('HTTP 409');
  });

  it('rejects with 40003 and the last error when the saga ends RETRY_EXHAUSTED', async () => {
    const gid = await running.submit(pool, 'order', { kind: 'exhausted' });
    const err = await failure(running.outcome(gid));
    expect(err.code).toBe('40003');
    expect(err.message).toContain('RETRY_EXHAUSTED: step charge (action): HTTP 503');
    expect(err.fields.hint).toContain(`/api/sagas/${gid}/retry`);
  });

  it('rejects with 40003 when an operator abandoned the saga, 57014 when it did not end in time, 42704 for an unknown gid', async () => {
    const gid = await idle.submit(pool, 'parked', {});
    const waited = await failure(idle.outcome(gid, { timeoutMs: 30 }));
    expect(waited.code).toBe('57014');
    expect(waited.message).toContain('still running');
    await new SagaAdmin({ pool }).abandon(gid);
    const abandoned = await failure(idle.outcome(gid));
    expect(abandoned.code).toBe('40003');
    expect(abandoned.message).toContain('abandoned by an operator');
    expect((await failure(idle.outcome('saga-none'))).code).toBe('42704');
  });
});
