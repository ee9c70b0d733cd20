import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../harness/cluster.js';
import { startWireServer, type WireServerFixture } from './wire-server-fixture.js';
import { encodeStartup } from '../../../src/protocol/index.js';
import { WireClient } from '../../unit/server/wire-client.js';

/**
 * The wire server over the real engine and two real PostgreSQL shards,
 * driven by node-pg, psql and raw protocol messages.
 */
describe('wire server over real shards', () => {
  let fx: WireServerFixture;
  let clusters: readonly PgCluster[] = [];
  let port: number;
  const client = (): Promise<pg.Client> => fx.client();
  const psql = (sql: string, input = ''): ReturnType<WireServerFixture['psql']> => fx.psql(sql, input);

  /** Rows of `account` on each shard, read directly. */
  async function perShard(): Promise<number[]> {
    return Promise.all(clusters.map(async (c) => Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM account', [], 'app'))[0]!.n)));
  }

  beforeAll(async () => {
    fx = await startWireServer({ account: { key: 'id' } });
    ({ clusters, port } = fx);
    const setup = await client();
    await setup.query('CREATE TABLE account (id bigint PRIMARY KEY, owner text, balance numeric NOT NULL)');
  });

  afterAll(async () => {
    await fx?.close();
  });

  it('serves simple and extended queries from node-pg across shards', async () => {
    const c = await client();
    const values = Array.from({ length: 8 }, (_, i) => `(${i + 1}, 'owner-${i + 1}', 10)`).join(', ');
    await c.query(`INSERT INTO account (id, owner, balance) VALUES ${values}`);
    expect((await perShard()).reduce((a, b) => a + b, 0)).toBe(8);
    const sum = await c.query<{ total: string }>('SELECT sum(balance) AS total FROM account');
    expect(sum.rows).toEqual([{ total: '80' }]);
    const one = await c.query<{ owner: string }>({ name: 'by-id', text: 'SELECT owner FROM account WHERE id = $1', values: [3] });
    expect(one.rows).toEqual([{ owner: 'owner-3' }]);
    const again = await c.query<{ owner: string }>({ name: 'by-id', text: 'SELECT owner FROM account WHERE id = $1', values: [4] });
    expect(again.rows).toEqual([{ owner: 'owner-4' }]);
  });

  it('runs a psql multi-statement string atomically: an error rolls back the earlier statements', async () => {
    const result = await psql("INSERT INTO account (id, owner, balance) VALUES (10, 'x', 1); INSERT INTO account (id, owner, balance) VALUES (11, 'y', 1); SELECT 1/0; INSERT INTO account (id, owner, balance) VALUES (12, 'z', 1)");
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('division by zero');
    const c = await client();
    const rows = await c.query('SELECT id FROM account WHERE id >= 10');
    expect(rows.rowCount).toBe(0);
  });

  it('suspends a cross-shard portal at maxRows and finishes it on the next Execute', async () => {
    const wire = await WireClient.login(port, { password: 'app' });
    wire.send([
      { type: 'Parse', name: '', sql: 'SELECT id FROM account WHERE id <= 4 ORDER BY id', paramTypes: [] },
      { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Execute', portal: '', maxRows: 3 },
      { type: 'Execute', portal: '', maxRows: 3 },
      { type: 'Sync' },
    ]);
    const messages = await wire.until('ReadyForQuery');
    expect(messages.map((m) => (m.type === 'DataRow' ? m.values[0]!.toString() : m.type))).toEqual([
      'ParseComplete', 'BindComplete', '1', '2', '3', 'PortalSuspended', '4', 'CommandComplete', 'ReadyForQuery',
    ]);
    wire.end();
  });

  it('delivers a CancelRequest to the shard: the statement fails with 57014', async () => {
    const c = await client();
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const running = c.query('SELECT pg_sleep(30) FROM account WHERE id = 1').then(
      () => 'finished',
      (err: { code?: string }) => err.code,
    );
    // Wait until the shard runs it, then cancel through the proxy.
    for (;;) {
      const active = await clusters[0]!.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'");
      const active1 = await clusters[1]!.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'");
      if (Number(active[0]!.n) + Number(active1[0]!.n) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const conn = await WireClient.open(port);
    conn.sendRaw(encodeStartup({ type: 'CancelRequest', processId: processID, secretKey }));
    await conn.closed();
    expect(await running).toBe('57014');
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('relays COPY in and out through psql', async () => {
    const copyIn = await psql('COPY account (id, owner, balance) FROM STDIN', '20\tp\t1\n21\tq\t2\n22\tr\t3\n\\.\n');
    expect(copyIn.stderr).toBe('');
    expect(copyIn.stdout.trim()).toBe('COPY 3');
    const copyOut = await psql('COPY account (id) TO STDOUT');
    expect(copyOut.stderr).toBe('');
    expect(copyOut.stdout.trim().split('\n').map(Number).filter((id) => id >= 20).sort()).toEqual([20, 21, 22]);
  });

  it('rolls back everywhere when a client disconnects inside a transaction', async () => {
    const c = await client();
    await c.query('BEGIN');
    await c.query("INSERT INTO account (id, owner, balance) VALUES (30, 'gone', 1), (31, 'gone', 1), (32, 'gone', 1)");
    await c.end();
    const check = await client();
    // Locks of the rolled-back rows are gone too: this insert does not wait.
    await check.query("INSERT INTO account (id, owner, balance) VALUES (30, 'kept', 1)");
    const rows = await check.query<{ owner: string }>('SELECT owner FROM account WHERE id BETWEEN 30 AND 32');
    expect(rows.rows).toEqual([{ owner: 'kept' }]);
  });

  it('ends only the connection that sends an oversized message', async () => {
    const bystander = await client();
    const wire = await WireClient.login(port, { password: 'app' });
    const header = Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]);
    wire.sendRaw(header);
    expect(await wire.closed()).toMatchObject([{ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '08P01' } }]);
    expect((await bystander.query('SELECT owner FROM account WHERE id = 1')).rowCount).toBe(1);
  });
});
