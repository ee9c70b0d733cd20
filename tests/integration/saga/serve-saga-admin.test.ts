import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SagaSummary } from '../../../src/admin/admin-source.js';
import { ensureOutboxTables, writeOutbox } from '../../../src/saga/outbox.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import { parseProm } from '../../unit/observe/prom-text.js';
import { freePort, PgCluster } from '../../harness/cluster.js';
import { startProxy, type RunningProxy } from '../../harness/proxy.js';
import { Participant, threeStepSaga } from './participant.js';

const TOKEN = 'serve-saga-token-0123456789';
const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 3, deadlineMs: 60_000 };

describe('shardgate serve with a saga log: the admin API, the metrics and the cleanup, over HTTP on loopback', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  let shop: Participant;
  let proxy: RunningProxy;
  let admin: string;
  let exhausted: string;
  let old: string;

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 4 });
    shop = await Participant.start();
    shop.answer = (r) => ({ status: (r.payload as { kind: string }).kind === 'exhausted' && r.path === '/charge' ? 503 : 200 });
    const c = new SagaCoordinator({ pool, id: 'c', definitions: { order: threeStepSaga(shop.url, fast) }, pollIntervalMs: 5 });
    await c.ensureTables();
    const client = await pool.connect();
    await ensureOutboxTables(client).finally(() => client.release());
    c.start();
    exhausted = await c.submit(pool, 'order', { kind: 'exhausted' });
    old = await c.submit(pool, 'order', { kind: 'plain' });
    expect((await c.outcome(old)).status).toBe('committed');
    await expect(c.outcome(exhausted)).rejects.toMatchObject({ code: '40003' });
    await c.close();
    // Finished long before the retention: the proxy's cleanup deletes it.
    await pool.query(`UPDATE shardgate_saga.saga SET finished_at = now() - interval '2 hours' WHERE gid = ANY($1)`, [[old, exhausted]]);
    const unsent = await writeOutbox(pool, 'orders', {});
    await pool.query(`UPDATE shardgate_saga.outbox SET created_at = now() - interval '1 hour' WHERE id = $1`, [unsent]);

    const adminPort = await freePort();
    proxy = await startProxy({
      auth: { users: [{ name: 'app', password: 'app' }] },
      shards: { s0: cluster.url('app') },
      admin: `127.0.0.1:${adminPort}`,
      adminToken: TOKEN,
      saga: { database: cluster.url('app'), retentionMs: 3_600_000 },
    });
    admin = `http://127.0.0.1:${adminPort}`;
  });

  afterAll(async () => {
    await proxy?.stop();
    await pool?.end();
    await shop?.close();
    await cluster?.destroy();
  });

  it('lists and abandons the exhausted saga, counts it in /metrics with the outbox lag, and cleans up the old finished saga', async () => {
    const listed = ((await (await fetch(`${admin}/api/sagas?status=exhausted`)).json()) as { sagas: SagaSummary[] }).sagas;
    expect(listed.map((s) => s.gid)).toEqual([exhausted]);
    expect(listed[0]!.lastError).toMatch(/^RETRY_EXHAUSTED: step charge \(action\)/);

    const post = (token?: string) => fetch(`${admin}/api/sagas/${exhausted}/abandon`, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    expect((await post()).status).toBe(401);
    const res = await post(TOKEN);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { saga: SagaSummary }).saga.status).toBe('abandoned');

    const m = parseProm(await (await fetch(`${admin}/metrics`)).text());
    expect(m.get('shardgate_saga_finished_total{status="abandoned"}')).toBe(1);
    expect(m.get('shardgate_saga_outbox_unsent_messages')).toBe(1);
    expect(m.get('shardgate_saga_outbox_lag_seconds')).toBeGreaterThanOrEqual(3600);
    // The proxy's own series are in the same registry.
    expect(m.has('shardgate_transactions_total{kind="two_phase",outcome="commit"}')).toBe(true);

    // The cleanup pass runs at start-up and every minute: the committed saga finished two hours ago goes,
    // the exhausted one (abandoned just now, finished_at now) stays.
    while ((await pool.query('SELECT 1 FROM shardgate_saga.saga WHERE gid = $1', [old])).rowCount !== 0) await new Promise((r) => setTimeout(r, 20));
    expect((await pool.query('SELECT status FROM shardgate_saga.saga WHERE gid = $1', [exhausted])).rows).toEqual([{ status: 'abandoned' }]);
  });
});
