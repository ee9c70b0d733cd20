import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BackendConnection } from '../../../src/backend/backend-connection.js';
import { connectPostgres, parsePostgresUrl } from '../../../src/backend/connect-postgres.js';
import { createConnector, type BackendConnector } from '../../../src/backend/connector.js';
import { shardName, type ShardName } from '../../../src/config/names.js';
import type { ShardGateConfig } from '../../../src/config/types.js';
import { freePort, PgCluster } from '../../harness/cluster.js';
import { collect, connectionBehaviour, pgErrorOf } from './connection-behaviour.js';
import { connectorConfig } from '../../harness/connector-config.js';

const s0 = shardName('s0');
let cluster: PgCluster;

beforeAll(async () => {
  cluster = await PgCluster.create({ databases: ['app'], settings: { password_encryption: "'scram-sha-256'" } });
});
afterAll(async () => {
  await cluster?.destroy();
});

function configFor(urls: Record<string, string>, maxPerShard: number): ShardGateConfig {
  return connectorConfig(Object.entries(urls).map(([name, url]) => ({ kind: 'postgres' as const, name: shardName(name), url })), maxPerShard);
}

connectionBehaviour('postgres', (opts) => connectPostgres(s0, parsePostgresUrl(cluster.url('app')), opts));

describe('postgres connection specifics', () => {
  let conn: BackendConnection;
  beforeAll(async () => {
    conn = await connectPostgres(s0, parsePostgresUrl(cluster.url('app')));
  });
  afterAll(async () => {
    await conn?.close();
  });

  it('collects ParameterStatus at start-up and later', async () => {
    expect(conn.parameters.get('client_encoding')).toBe('UTF8');
    expect(conn.parameters.get('application_name')).toBe('shardgate');
    await conn.exec("SET application_name = 'sg_gid_1'");
    expect(conn.parameters.get('application_name')).toBe('sg_gid_1');
    await conn.exec("SET application_name = 'shardgate'");
  });

  it('cancels a running statement (57014) and stays usable', async () => {
    const running = pgErrorOf(collect(conn, { sql: 'SELECT pg_sleep(30)' }));
    await vi.waitFor(
      async () => {
        const rows = await cluster.query("SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'", [], 'app');
        expect(rows).toHaveLength(1);
      },
      { timeout: 10_000, interval: 50 },
    );
    await conn.cancel();
    expect((await running).code).toBe('57014');
    expect(await conn.rows('SELECT 1')).toEqual([['1']]);
  });

  it('cancels a long read abandoned outside a transaction instead of streaming it all', async () => {
    for await (const ev of conn.query({ sql: 'SELECT g FROM generate_series(1, 5000000) g', batchSize: 1000 })) {
      if (ev.kind === 'rows') break;
    }
    expect(conn.txStatus).toBe('I');
    expect(await conn.rows('SELECT 2')).toEqual([['2']]);
  });

  it('refuses an unreachable shard with 08006', async () => {
    const port = await freePort();
    const err = await pgErrorOf(connectPostgres(s0, parsePostgresUrl(`postgres://postgres@127.0.0.1:${port}/app`)));
    expect([err.code, err.shard]).toEqual(['08006', 's0']);
  });

  it('reports an unknown database as 08006 with the server code in the detail', async () => {
    const err = await pgErrorOf(connectPostgres(s0, parsePostgresUrl(cluster.url('nope'))));
    expect(err.code).toBe('08006');
    expect(err.fields.detail).toBe('SQLSTATE 3D000');
  });
});

describe('password authentication', () => {
  beforeAll(async () => {
    await cluster.query("SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_user LOGIN PASSWORD 'sc ram!'");
    await cluster.query("SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5pass'");
    await cluster.query("CREATE ROLE clear_user LOGIN PASSWORD 'clearpass'");
    // pg_hba.conf is read top to bottom: these lines go before the initdb's trust lines.
    const hba = join(cluster.dataDir, 'pg_hba.conf');
    const { readFile, writeFile } = await import('node:fs/promises');
    const current = await readFile(hba, 'utf8');
    await writeFile(
      hba,
      ['host all scram_user 127.0.0.1/32 scram-sha-256', 'host all md5_user 127.0.0.1/32 md5', 'host all clear_user 127.0.0.1/32 password', current].join('\n'),
    );
    await appendFile(hba, '\n');
    await cluster.query('SELECT pg_reload_conf()');
  });

  const url = (user: string, password?: string): string =>
    `postgres://${user}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${cluster.port}/app`;

  it('logs in with SCRAM-SHA-256', async () => {
    const c = await connectPostgres(s0, parsePostgresUrl(url('scram_user', 'sc ram!')));
    expect(await c.rows('SELECT current_user')).toEqual([['scram_user']]);
    await c.close();
  });

  it('logs in with MD5 and with a cleartext password', async () => {
    const md5 = await connectPostgres(s0, parsePostgresUrl(url('md5_user', 'md5pass')));
    expect(await md5.rows('SELECT current_user')).toEqual([['md5_user']]);
    await md5.close();
    const clear = await connectPostgres(s0, parsePostgresUrl(url('clear_user', 'clearpass')));
    expect(await clear.rows('SELECT current_user')).toEqual([['clear_user']]);
    await clear.close();
  });

  it('refuses a wrong or missing password with 08006', async () => {
    const wrong = await pgErrorOf(connectPostgres(s0, parsePostgresUrl(url('scram_user', 'bad'))));
    expect([wrong.code, wrong.fields.detail]).toEqual(['08006', 'SQLSTATE 28P01']);
    const md5Wrong = await pgErrorOf(connectPostgres(s0, parsePostgresUrl(url('md5_user', 'bad'))));
    expect([md5Wrong.code, md5Wrong.fields.detail]).toEqual(['08006', 'SQLSTATE 28P01']);
    expect((await pgErrorOf(connectPostgres(s0, parsePostgresUrl(url('scram_user'))))).code).toBe('08006');
  });
});

describe('postgres connector and pool', () => {
  let connector: BackendConnector;
  beforeAll(async () => {
    connector = await createConnector(configFor({ s0: cluster.url('app'), s1: cluster.url('postgres') }, 2));
  });
  afterAll(async () => {
    await connector?.close();
  });
  const stats = (shard: ShardName) => connector.stats().get(shard);

  it('knows every shard and its server version', () => {
    expect(connector.shards).toEqual(['s0', 's1']);
    expect(connector.serverVersion(s0)).toMatch(/^\d+/);
  });

  it('caps connections per shard and times out a waiter with 40P01', async () => {
    const a = await connector.acquire(s0, 1000);
    const b = await connector.acquire(s0, 1000);
    expect(stats(s0)).toEqual({ inUse: 2, idle: 0, waiting: 0 });
    const err = await pgErrorOf(connector.acquire(s0, 100));
    expect([err.code, err.shard]).toEqual(['40P01', 's0']);
    const waiting = connector.acquire(s0, 5000);
    expect(stats(s0)?.waiting).toBe(1);
    a.release();
    const c = await waiting;
    expect(await c.rows('SELECT 1')).toEqual([['1']]);
    b.release();
    c.release();
    expect(stats(s0)).toEqual({ inUse: 0, idle: 2, waiting: 0 });
  });

  it('rolls back a connection released inside a transaction', async () => {
    const a = await connector.acquire(s0, 1000);
    await a.exec('DROP TABLE IF EXISTS pooled; CREATE TABLE pooled (x int)');
    await a.exec('BEGIN');
    await a.exec('INSERT INTO pooled VALUES (1)');
    a.release();
    await vi.waitFor(() => expect(stats(s0)?.idle).toBe(2));
    const b = await connector.acquire(s0, 1000);
    expect(b.txStatus).toBe('I');
    expect(await b.rows('SELECT count(*) FROM pooled')).toEqual([['0']]);
    b.release();
  });

  it('refuses use after release', async () => {
    const a = await connector.acquire(s0, 1000);
    a.release();
    expect((await pgErrorOf(a.exec('SELECT 1'))).code).toBe('XX000');
  });

  it('replaces a connection the server terminated, idle or in use', async () => {
    const a = await connector.acquire(s0, 1000);
    const pid = (await a.rows('SELECT pg_backend_pid()'))[0]![0]!;
    a.release();
    await cluster.query('SELECT pg_terminate_backend($1)', [Number(pid)]);
    // The pool drops the idle connection as soon as its socket closes.
    await vi.waitFor(() => expect(stats(s0)?.idle).toBe(1), { timeout: 5000, interval: 20 });
    const b = await connector.acquire(s0, 1000);
    const c = await connector.acquire(s0, 1000);
    const pids = [(await b.rows('SELECT pg_backend_pid()'))[0]![0], (await c.rows('SELECT pg_backend_pid()'))[0]![0]];
    expect(pids).not.toContain(pid);
    c.release();
    // Terminated while checked out: the next statement fails, release closes it.
    await cluster.query('SELECT pg_terminate_backend($1)', [Number(pids[0])]);
    const err = await pgErrorOf(b.rows('SELECT pg_sleep(0.01)'));
    expect(['57P01', '08006']).toContain(err.code);
    b.release();
    expect(stats(s0)?.inUse).toBe(0);
    const d = await connector.acquire(s0, 1000);
    expect(await d.rows('SELECT 1')).toEqual([['1']]);
    d.release();
  });

  it('fails acquire on an unknown shard with 22023', async () => {
    expect((await pgErrorOf(connector.acquire(shardName('nope'), 100))).code).toBe('22023');
  });

  it('starts with a shard down and fails its acquires with 08006', async () => {
    const port = await freePort();
    const partial = await createConnector(configFor({ s0: cluster.url('app'), s9: `postgres://postgres@127.0.0.1:${port}/app` }, 2));
    try {
      expect(partial.serverVersion(shardName('s9'))).toBe('');
      expect((await pgErrorOf(partial.acquire(shardName('s9'), 500))).code).toBe('08006');
      expect(partial.stats().get(shardName('s9'))).toEqual({ inUse: 0, idle: 0, waiting: 0 });
    } finally {
      await partial.close();
    }
  });
});
