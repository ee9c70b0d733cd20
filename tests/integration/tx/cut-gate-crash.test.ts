import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATE_KEY } from '../../../src/tx/cut.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { startProxy, type RunningProxy } from '../../harness/proxy.js';

/**
 * The commit gate lives in PostgreSQL: an instance that dies while its cut
 * holds the gate on every shard leaves nothing behind. Instance A is made to
 * stop inside its cut (failpoint holding-cut-gate); instance B's cross-shard
 * commit then waits at the gate on its anchor; A is killed; B's commit
 * completes, whole.
 */
describe('an instance killed while it holds the commit gate', () => {
  let clusters: PgCluster[];
  let a: RunningProxy;
  let b: RunningProxy;

  const config = (coordinatorId: string, shards: PgCluster[]): Record<string, unknown> => ({
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    coordinatorId,
    shards: Object.fromEntries(shards.map((c, i) => [`s${i}`, c.url('app')])),
    tables: { account: { key: 'id' } },
  });

  beforeAll(async () => {
    clusters = await startClusters(2, { databases: ['app'] });
    a = await startProxy(config('gwa', clusters), { env: { SHARDGATE_FAILPOINTS: 'holding-cut-gate=delay(600000)' } });
    b = await startProxy(config('gwb', clusters));
  });
  afterAll(async () => {
    await a?.kill9();
    await b?.stop().catch(() => undefined);
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  it('commits waiting at the gate go on once the holder is gone, and land whole', { timeout: 120_000 }, async () => {
    const viaB = new pg.Client({ connectionString: b.url });
    await viaB.connect();
    try {
      await viaB.query('CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL)');
      await viaB.query('INSERT INTO account SELECT g, 100 FROM generate_series(1, 40) g');
      // Two accounts on different shards.
      const onShard = async (i: number): Promise<number> => Number((await clusters[i]!.query<{ id: number }>('SELECT min(id) AS id FROM account', [], 'app'))[0]!.id);
      const [x, y] = [await onShard(0), await onShard(1)];

      // A's reader asks for a cut and stops inside it, every gate held.
      const reader = new pg.Client({ connectionString: a.url });
      await reader.connect();
      reader.on('error', () => undefined);
      const readerDone = reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT sum(balance) FROM account').catch((err: Error) => err);
      const gateHeld = async (): Promise<boolean> =>
        (await Promise.all(clusters.map((c) => c.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1",
          [GATE_KEY.toString()], 'app')))).every((r) => r[0]!.n === '1');
      while (!(await gateHeld())) await new Promise((r) => setTimeout(r, 20));

      // B's transfer reaches its decision and waits there for the gate.
      const transfer = viaB.query(`BEGIN; UPDATE account SET balance = balance - 7 WHERE id = ${x}; UPDATE account SET balance = balance + 7 WHERE id = ${y}; COMMIT`);
      const waiting = async (): Promise<boolean> =>
        (await Promise.all(clusters.map((c) => c.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1",
          [GATE_KEY.toString()], 'app')))).some((r) => r[0]!.n === '1');
      while (!(await waiting())) await new Promise((r) => setTimeout(r, 20));

      await a.kill9();
      await transfer;
      expect(await readerDone).toBeInstanceOf(Error);
      const balances = async (): Promise<number[]> =>
        (await viaB.query<{ balance: number }>(`SELECT balance FROM account WHERE id IN (${x}, ${y}) ORDER BY id = ${x} DESC`)).rows.map((r) => r.balance);
      expect(await balances()).toEqual([93, 107]);
      // Nothing stays prepared, and the gate is free: a cut through B works.
      for (const c of clusters) expect(await c.query('SELECT gid FROM pg_prepared_xacts', [], 'app')).toEqual([]);
      await viaB.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      expect((await viaB.query<{ s: string }>('SELECT sum(balance)::text AS s FROM account')).rows[0]!.s).toBe('4000');
      await viaB.query('COMMIT');
    } finally {
      await viaB.end();
    }
  });
});
