import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgCluster } from '../harness/cluster.js';

describe('test harness', () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('starts a cluster with the settings two-phase commit needs', async () => {
    const rows = await cluster.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = 'max_prepared_transactions'");
    expect(Number(rows[0]?.setting)).toBeGreaterThan(0);
    const wal = await cluster.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = 'wal_level'");
    expect(wal[0]?.setting).toBe('logical');
  });

  it('survives kill -9 of the postmaster and restarts', async () => {
    await cluster.query('CREATE TABLE IF NOT EXISTS t (id int)', [], 'app');
    await cluster.kill9();
    await expect(cluster.query('SELECT 1')).rejects.toThrow();
    await cluster.start();
    const rows = await cluster.query<{ n: string }>("SELECT count(*) AS n FROM pg_class WHERE relname = 't'", [], 'app');
    expect(rows[0]?.n).toBe('1');
  });
});
