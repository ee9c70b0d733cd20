import { writeFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort, startClusters, type PgCluster } from '../../harness/cluster.js';
import { startProxy, type RunningProxy } from '../../harness/proxy.js';
import { parseProm } from '../../unit/observe/prom-text.js';

const TOKEN = 'observability-token-0123456789';

/**
 * One proxy with the admin API over two PostgreSQL shards. Recovery is left
 * to the start-up pass only, with a long grace period (prepareTimeoutMs 60 s
 * → 120 s), so branches left prepared by crashed proxies stay in doubt until
 * the admin API resolves them.
 */
describe('metrics, admin API, reload and logs of a running proxy', () => {
  let clusters: PgCluster[];
  let proxy: RunningProxy;
  let adminPort: number;
  let config: Record<string, unknown>;
  const clients: pg.Client[] = [];

  const admin = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`http://127.0.0.1:${adminPort}${path}`, init);
  const authorized = { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } };
  const scrape = async (): Promise<Map<string, number>> => parseProm(await (await admin('/metrics')).text());
  const connect = async (url = proxy.url): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    clients.push(c);
    return c;
  };
  const onShard = (i: number, sql: string): Promise<Record<string, unknown>[]> => clusters[i]!.query(sql, [], 'app');
  const baseConfig = (shards: Record<string, string>): Record<string, unknown> => ({
    admin: `127.0.0.1:${adminPort}`,
    adminToken: TOKEN,
    auth: { users: [{ name: 'app', password: 'app' }] },
    shards,
    pool: { maxPerShard: 20 },
    transactions: { prepareTimeoutMs: 60_000, recoveryIntervalMs: 0 },
    slowStatementMs: 400,
    tables: { items: { key: 'id', algorithm: 'mod' } },
  });

  beforeAll(async () => {
    clusters = await startClusters(2, { databases: ['app'] });
    adminPort = await freePort();
    config = baseConfig({ s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app') });
    proxy = await startProxy(config);
    const c = await connect();
    await c.query('CREATE TABLE items (id bigint PRIMARY KEY, note text)');
    // Unlisted: lives on the default shard s0 until a reload gives it a rule.
    await c.query('CREATE TABLE fresh (id bigint PRIMARY KEY)');
    // Before giving a table a sharding rule, the operator creates it on every shard.
    await onShard(1, 'CREATE TABLE fresh (id bigint PRIMARY KEY)');
  }, 180_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await proxy?.stop();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  it('counters move by exactly a known workload', async () => {
    const c = await connect();
    const before = await scrape();
    await c.query('SELECT * FROM items WHERE id = 1'); // single on s1
    await c.query('SELECT * FROM items WHERE id = 2'); // single on s0
    await c.query('SELECT count(*) FROM items'); // all: s0, s1
    await c.query('SELECT * FROM items WHERE id = 1 AND note IS DISTINCT FROM $1', ['x']); // single on s1, described first: still one routing decision
    await c.query('BEGIN');
    await c.query("INSERT INTO items (id, note) VALUES (100, 'a')"); // s0
    await c.query("INSERT INTO items (id, note) VALUES (101, 'b')"); // s1
    await c.query('COMMIT'); // two-phase
    await c.query("INSERT INTO items (id, note) VALUES (102, 'c')"); // autocommit on one shard: no global transaction
    await c.query('BEGIN');
    await c.query("INSERT INTO items (id, note) VALUES (103, 'd')");
    await c.query('ROLLBACK');
    const after = await scrape();
    const delta = (series: string): number => (after.get(series) ?? 0) - (before.get(series) ?? 0);
    expect(delta('shardgate_shard_statements_total{shard="s0"}')).toBe(4); // id 2, count, 100, 102
    expect(delta('shardgate_shard_statements_total{shard="s1"}')).toBe(5); // id 1, count, id 1 with $1, 101, 103
    expect(delta('shardgate_routing_decisions_total{route="single"}')).toBe(7);
    expect(delta('shardgate_routing_decisions_total{route="all"}')).toBe(1);
    expect(delta('shardgate_transactions_total{kind="two_phase",outcome="commit"}')).toBe(1);
    expect(delta('shardgate_transactions_total{kind="one_shard",outcome="rollback"}')).toBe(1);
    expect(delta('shardgate_2pc_phase_duration_seconds_count{phase="prepare"}')).toBe(1);
    expect(delta('shardgate_2pc_phase_duration_seconds_count{phase="decision"}')).toBe(1);
    expect(delta('shardgate_2pc_phase_duration_seconds_count{phase="commit_prepared"}')).toBe(1);
    expect(after.get('shardgate_client_connections')).toBe(clients.length);
    expect(after.has('shardgate_pool_connections_idle{shard="s0"}')).toBe(true);
  });

  it('lists a transaction held open, with its gid, client, state, participants and current statement', async () => {
    const c = await connect();
    await c.query('BEGIN');
    await c.query("INSERT INTO items (id, note) VALUES (200, 'held')");
    const list = async (): Promise<Record<string, unknown>[]> =>
      ((await (await admin('/api/transactions')).json()) as { transactions: Record<string, unknown>[] }).transactions;
    const idle = (await list()).find((t) => (t.participants as string[]).includes('s0') && t.state === 'idle_in_transaction');
    expect(idle).toMatchObject({ client: 'app@app', participants: ['s0'], currentStatement: null });
    expect(idle!.gid).toMatch(/^sg_gw1_/);
    const running = c.query('SELECT pg_sleep(0.8) FROM items WHERE id = 200');
    let active: Record<string, unknown> | undefined;
    for (let i = 0; i < 40 && active === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
      active = (await list()).find((t) => t.gid === idle!.gid && t.state === 'active');
    }
    expect(active?.currentStatement).toBe('SELECT pg_sleep(0.8) FROM items WHERE id = 200');
    await running;
    await c.query('ROLLBACK');
    expect((await list()).find((t) => t.gid === idle!.gid)).toBeUndefined();
  });

  it('logs a slow statement with duration, shards and gid, never its parameter values', async () => {
    const c = await connect();
    await c.query('BEGIN');
    await c.query('SELECT pg_sleep(0.5), $1::text AS secret FROM items WHERE id = 100', ['hunter2-parameter']); // one row, on s0
    await c.query('COMMIT');
    const find = (): string | undefined =>
      proxy
        .logs()
        .split('\n')
        .find((l) => l.includes('"slow statement"') && l.includes('pg_sleep(0.5)'));
    // The log line travels through the child's stderr pipe, which may lag behind the client's reply.
    for (let i = 0; i < 100 && find() === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    const line = find();
    expect(line).toBeDefined();
    const entry = JSON.parse(line!) as Record<string, unknown>;
    expect(entry.shards).toEqual(['s0']);
    expect(entry.gid).toMatch(/^sg_gw1_/);
    expect(entry.durationMs as number).toBeGreaterThanOrEqual(400);
    expect(proxy.logs()).not.toContain('hunter2-parameter');
  });

  it('requires the bearer token for state changes, not for reads', async () => {
    expect((await admin('/api/reload', { method: 'POST' })).status).toBe(401);
    expect((await admin('/api/reload', { method: 'POST', headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    expect((await admin('/api/in-doubt/sg_x_s0_1/resolve', { method: 'POST' })).status).toBe(401);
    expect((await admin('/api/shards')).status).toBe(200);
    const cfg = (await (await admin('/api/config')).json()) as { adminToken: string; auth: { users: { password: string }[] } };
    expect(cfg.adminToken).toBe('***');
    expect(cfg.auth.users[0]!.password).toBe('***');
  });

  it('reports shard health with version and max_prepared_transactions', async () => {
    const { shards } = (await (await admin('/api/shards')).json()) as { shards: Record<string, unknown>[] };
    expect(shards.map((s) => s.shard)).toEqual(['s0', 's1']);
    for (const s of shards) expect(s).toMatchObject({ healthy: true, kind: 'postgres', maxPreparedTransactions: 100 });
  });

  it('a reload changes routing for new statements only, keeps connections, and refuses row-moving changes', async () => {
    const c = await connect();
    await c.query('INSERT INTO fresh (id) VALUES (1)'); // unlisted: default shard s0
    await c.query('DELETE FROM fresh WHERE id = 1');
    // A client in a transaction across the reload keeps its connection and transaction.
    const held = await connect();
    await held.query('BEGIN');
    await held.query("INSERT INTO items (id, note) VALUES (300, 'across reload')");

    const next = { ...config, pool: { maxPerShard: 10 }, tables: { ...(config.tables as object), fresh: { key: 'id', algorithm: 'mod' } } };
    await writeFile(proxy.configFile, stringify({ ...next, listen: `127.0.0.1:${proxy.port}` }));
    const ok = await admin('/api/reload', authorized);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ ok: true });
    await c.query('INSERT INTO fresh (id) VALUES (3)'); // mod 2 → s1 under the new rule
    expect(await onShard(1, 'SELECT id::int FROM fresh')).toEqual([{ id: 3 }]);
    await held.query('COMMIT');
    expect(await onShard(0, 'SELECT note FROM items WHERE id = 300')).toEqual([{ note: 'across reload' }]);

    // items holds rows: changing its key would strand them.
    const moving = { ...next, tables: { ...(next.tables as object), items: { key: 'note' } } };
    await writeFile(proxy.configFile, stringify({ ...moving, listen: `127.0.0.1:${proxy.port}` }));
    const refused = await admin('/api/reload', authorized);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { reason: string }).reason).toContain('items');
    // A shard URL change is refused too, through SIGHUP this time.
    const elsewhere = { ...next, shards: { s0: clusters[0]!.url('app'), s1: clusters[0]!.url('postgres') } };
    await writeFile(proxy.configFile, stringify({ ...elsewhere, listen: `127.0.0.1:${proxy.port}` }));
    proxy.child.kill('SIGHUP');
    for (let i = 0; i < 100 && !proxy.logs().includes('points elsewhere'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(proxy.logs()).toContain('configuration reload refused');
    // Routing is still the reloaded one.
    await c.query('INSERT INTO fresh (id) VALUES (5)');
    expect(await onShard(1, 'SELECT id::int FROM fresh ORDER BY id')).toEqual([{ id: 3 }, { id: 5 }]);
    await writeFile(proxy.configFile, stringify({ ...next, listen: `127.0.0.1:${proxy.port}` }));
    config = next;
  });

  it('shows in-doubt transactions left by crashed proxies and resolves them by the recorded decision only', async () => {
    const crashAt = async (failpoint: string, ids: [number, number]): Promise<void> => {
      const doomed = await startProxy({ ...config, admin: undefined, adminToken: undefined, coordinatorId: 'fp1' }, { env: { SHARDGATE_FAILPOINTS: `${failpoint}=crash` } });
      const c = new pg.Client({ connectionString: doomed.url });
      c.on('error', () => undefined);
      await c.connect();
      await c.query('BEGIN');
      await c.query(`INSERT INTO items (id, note) VALUES (${ids[0]}, 'in doubt')`);
      await c.query(`INSERT INTO items (id, note) VALUES (${ids[1]}, 'in doubt')`);
      await expect(c.query('COMMIT')).rejects.toThrow();
      await doomed.kill9();
    };
    type InDoubt = { gid: string; anchor: string; preparedOn: string[]; decision: string | null; anchorReachable: boolean };
    const inDoubt = async (): Promise<InDoubt[]> => ((await (await admin('/api/in-doubt')).json()) as { inDoubt: InDoubt[] }).inDoubt;

    await crashAt('after-prepare', [400, 401]);
    const [undecided] = await inDoubt();
    expect(undecided).toMatchObject({ decision: null, anchorReachable: true });
    expect(undecided!.gid).toMatch(/^sg_fp1_s[01]_/);
    const refused = await admin(`/api/in-doubt/${encodeURIComponent(undecided!.gid)}/resolve`, authorized);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('55000');
    expect((await inDoubt()).length).toBe(1);

    await crashAt('after-decision', [500, 501]);
    const decided = (await inDoubt()).find((t) => t.gid !== undecided!.gid)!;
    expect(decided).toMatchObject({ decision: 'commit' });
    const resolved = await admin(`/api/in-doubt/${encodeURIComponent(decided.gid)}/resolve`, authorized);
    expect(resolved.status).toBe(200);
    expect(await resolved.json()).toEqual({ gid: decided.gid, outcome: 'commit' });
    const rows = [...(await onShard(0, 'SELECT id::int FROM items WHERE id >= 500')), ...(await onShard(1, 'SELECT id::int FROM items WHERE id >= 500'))];
    expect(rows.map((r) => r.id).sort()).toEqual([500, 501]);
    expect((await inDoubt()).map((t) => t.gid)).toEqual([undecided!.gid]);
    expect((await admin('/api/in-doubt/sg_fp1_s0_nosuchgid/resolve', authorized)).status).toBe(404);
    const metrics = await scrape();
    expect(metrics.get('shardgate_recovery_decisions_total{outcome="commit"}')).toBe(1);
  });
});
