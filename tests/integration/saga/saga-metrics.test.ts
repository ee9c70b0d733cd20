import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/admin/admin-server.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { readOutboxStats, writeOutbox } from '../../../src/saga/outbox.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaCoordinator, type SagaLog } from '../../../src/saga/saga-coordinator.js';
import { FakeAdminSource } from '../../unit/admin/fake-admin-source.js';
import { parseProm } from '../../unit/observe/prom-text.js';
import { openSagaFixture, type SagaFixture } from './saga-fixture.js';
import type { Participant} from './participant.js';
import { threeStepSaga } from './participant.js';

const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 3, deadlineMs: 60_000 };

describe('saga and outbox metrics, scraped from the admin server', () => {
  let pool: pg.Pool;
  let shop: Participant;
  let fixture: SagaFixture;

  beforeAll(async () => {
    fixture = await openSagaFixture();
    ({ pool, shop } = fixture);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  async function settled(c: SagaCoordinator, gid: string): Promise<SagaLog> {
    for (;;) {
      const log = await c.inspect(gid);
      if (log !== undefined && ['committed', 'compensated', 'exhausted'].includes(log.status)) return log;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('counts ends, retries by cause, exhausted steps and step latencies exactly as the log records them, and reads the outbox lag', async () => {
    // Per saga (gid in the payload): which path answers what, by the request's count n for its key.
    shop.answer = (r, n) => {
      const kind = (r.payload as { kind: string }).kind;
      if (kind === 'retried' && r.path === '/charge' && n <= 2) return { status: 503 };
      if (kind === 'ongoing' && r.path === '/charge' && n <= 3) return { status: 425 };
      if (kind === 'refused' && r.path === '/notify') return { status: 409 };
      if (kind === 'exhausted' && r.path === '/reserve') return { status: 500 };
      return { status: 200 };
    };
    const metrics = new Metrics();
    const admin = new AdminServer({ port: 0, source: new FakeAdminSource(), metrics });
    const { port } = await admin.listen();
    metrics.setOutboxSource(() => readOutboxStats(pool));
    const c = new SagaCoordinator({ pool, id: 'm', definitions: { order: threeStepSaga(shop.url, fast) }, metrics, pollIntervalMs: 5, onError: (e) => { throw e; } });
    c.start();
    try {
      const kinds = ['plain', 'plain', 'retried', 'ongoing', 'refused', 'exhausted'];
      const gids = await Promise.all(kinds.map((kind) => c.submit(pool, 'order', { kind })));
      const logs = await Promise.all(gids.map((g) => settled(c, g)));
      expect(logs.map((l) => l.status)).toEqual(['committed', 'committed', 'committed', 'committed', 'compensated', 'exhausted']);

      // Three outbox messages: one sent, two waiting since an hour ago.
      const ids = await Promise.all([1, 2, 3].map((i) => writeOutbox(pool, 'orders', { i })));
      await pool.query(`UPDATE shardgate_saga.outbox SET created_at = now() - interval '1 hour' WHERE id = ANY($1)`, [ids.slice(0, 2)]);
      await pool.query(`UPDATE shardgate_saga.outbox SET created_at = now() - interval '2 hours', sent_at = now(), attempts = 1 WHERE id = $1`, [ids[2]]);

      const s = parseProm(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      expect(s.get('shardgate_saga_finished_total{status="committed"}')).toBe(4);
      expect(s.get('shardgate_saga_finished_total{status="compensated"}')).toBe(1);
      expect(s.get('shardgate_saga_finished_total{status="exhausted"}')).toBe(1);
      expect(s.get('shardgate_saga_finished_total{status="abandoned"}')).toBe(0);
      expect(s.get('shardgate_saga_compensation_rate')).toBeCloseTo(1 / 6, 10);
      // retried: 2 errors on charge; exhausted: reserve errs maxAttempts times, the last one exhausts (2 retries).
      expect(s.get('shardgate_saga_step_retries_total{phase="action",cause="error"}')).toBe(4);
      expect(s.get('shardgate_saga_step_retries_total{phase="action",cause="ongoing"}')).toBe(3);
      expect(s.get('shardgate_saga_step_retries_total{phase="compensation",cause="error"}')).toBe(0);
      expect(s.get('shardgate_saga_steps_exhausted_total{phase="action"}')).toBe(1);
      expect(s.get('shardgate_saga_steps_exhausted_total{phase="compensation"}')).toBe(0);
      // Every attempt the log counts was timed once, under the answer it gave.
      const calls = logs.flatMap((l) => l.steps).reduce((n, st) => n + st.calls, 0);
      const timed = ['success', 'ongoing', 'failure', 'error'].flatMap((o) => ['action', 'compensation'].map((p) => s.get(`shardgate_saga_step_duration_seconds_count{phase="${p}",outcome="${o}"}`) ?? 0));
      expect(timed.reduce((a, b) => a + b, 0)).toBe(calls);
      expect(s.get('shardgate_saga_step_duration_seconds_count{phase="action",outcome="failure"}')).toBe(1);
      expect(s.get('shardgate_saga_step_duration_seconds_count{phase="compensation",outcome="success"}')).toBe(2);
      expect(s.get('shardgate_saga_step_duration_seconds_count{phase="action",outcome="error"}')).toBe(5);
      expect(s.get('shardgate_saga_step_duration_seconds_count{phase="action",outcome="success"}')).toBe(14);
      // The sent message does not count; the lag is the age of the oldest unsent one.
      expect(s.get('shardgate_saga_outbox_unsent_messages')).toBe(2);
      const lag = s.get('shardgate_saga_outbox_lag_seconds')!;
      expect(lag).toBeGreaterThanOrEqual(3600);
      expect(lag).toBeLessThan(7200);
    } finally {
      await c.close();
      await admin.close();
    }
  });
});
