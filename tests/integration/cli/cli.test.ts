import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, PgCluster, runCommand } from '../../harness/cluster.js';
import { psql, startProxy } from '../../harness/proxy.js';

const BIN = resolve(import.meta.dirname, '../../../bin/shardgate.js');

function shardgate(args: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof runCommand> {
  return runCommand(process.execPath, [BIN, ...args], { env, timeoutMs: 90_000 });
}

describe('shardgate command line (built, as a process)', () => {
  let dir: string;
  let good: PgCluster;
  let noTwoPhase: PgCluster;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardgate-cli-it-'));
    [good, noTwoPhase] = await Promise.all([
      PgCluster.create({ databases: ['app'] }),
      PgCluster.create({ databases: ['app'], settings: { max_prepared_transactions: 0 } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([good?.destroy(), noTwoPhase?.destroy()]);
    await rm(dir, { recursive: true, force: true });
  });

  async function configFile(name: string, yaml: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, yaml);
    return file;
  }

  it('prints its version', async () => {
    const r = await shardgate(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 with key paths on a bad configuration, before starting anything', async () => {
    const file = await configFile('bad.yaml', 'shards: { s0: { embedded: ./a } }\ntables:\n  orders: { key: "user id" }\n');
    const r = await shardgate(['serve', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual(['shardgate: configuration error:', '  tables.orders.key: expected a column name', '']);
    expect(r.stdout).toBe('');
  });

  it('status passes on a healthy shard', async () => {
    const file = await configFile('good.yaml', `listen: 127.0.0.1:${await freePort()}\nshards:\n  s0: ${good.url('app')}\n`);
    const r = await shardgate(['status', '--config', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^s0: reachable, version 15\.\d+.*max_prepared_transactions 100/m);
  });

  it('status fails naming the shard without max_prepared_transactions, and the fix', async () => {
    const file = await configFile('no2pc.yaml', `listen: 127.0.0.1:${await freePort()}\nshards:\n  s0: ${good.url('app')}\n  s1: ${noTwoPhase.url('app')}\n`);
    const r = await shardgate(['status', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('max_prepared_transactions is 0 on s1');
    expect(r.stderr).toContain('set max_prepared_transactions = 100');
    expect(r.stderr).not.toContain('on s0');
  });

  it('status opens an idle embedded shard and counts our prepared transactions', async () => {
    const shardDir = join(dir, 'emb-s0');
    const db = await PGlite.create(shardDir, { startParams: [...PGlite.defaultStartParams, '-c', 'max_prepared_transactions=10'] });
    await db.exec("CREATE TABLE t (x int); BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'sg_gw1_s0_abc_s0';");
    await db.close();
    const file = await configFile('emb.yaml', `listen: 127.0.0.1:${await freePort()}\nshards:\n  s0: { embedded: ./emb-s0 }\n`);
    const r = await shardgate(['status', '--config', file]);
    // Just prepared, so not yet in doubt: healthy.
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^s0: reachable, version \d+.*prepared 1/m);
  });

  it('recover rolls back a prepared branch whose anchor never decided', async () => {
    const other = await PgCluster.create({ databases: ['app'] });
    try {
      // A branch on s1 prepared by a coordinator that died before writing its decision on anchor s0.
      const c = new pg.Client({ connectionString: other.url('app') });
      await c.connect();
      await c.query('CREATE TABLE t (x int)');
      await c.query('BEGIN');
      await c.query('INSERT INTO t VALUES (1)');
      await c.query("PREPARE TRANSACTION 'sg_gw1_s0_0abc_s1'");
      await c.end();
      const file = await configFile(
        'recover.yaml',
        `listen: 127.0.0.1:${await freePort()}\ntransactions: { prepareTimeoutMs: 50 }\nshards:\n  s0: ${good.url('app')}\n  s1: ${other.url('app')}\n`,
      );
      // Older than the grace period (2 × prepareTimeoutMs).
      await new Promise((r) => setTimeout(r, 300));
      const r = await shardgate(['recover', '--config', file]);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/^sg_gw1_s0_0abc on s1: abort\b/m);
      expect(await other.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
      expect(await other.query('SELECT x FROM t', [], 'app')).toEqual([]);
    } finally {
      await other.destroy();
    }
  });

  it('restore-point creates the point on every shard at one cut, finishing a decided commit first', async () => {
    const other = await PgCluster.create({ databases: ['app'] });
    try {
      // A transaction decided 'commit' on anchor s0 whose coordinator died before COMMIT PREPARED on s1.
      await good.query(
        "CREATE SCHEMA IF NOT EXISTS shardgate; CREATE TABLE IF NOT EXISTS shardgate.tx_decision (gid text PRIMARY KEY, outcome text NOT NULL CHECK (outcome IN ('commit', 'abort')), participants text[] NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now())",
        [],
        'app',
      );
      await good.query("INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES ('sg_gw9_s0_0rp', 'commit', '{s1}')", [], 'app');
      const c = new pg.Client({ connectionString: other.url('app') });
      await c.connect();
      await c.query('CREATE TABLE t (x int)');
      await c.query('BEGIN');
      await c.query('INSERT INTO t VALUES (7)');
      await c.query("PREPARE TRANSACTION 'sg_gw9_s0_0rp_s1'");
      await c.end();
      const file = await configFile('restore-point.yaml', `listen: 127.0.0.1:${await freePort()}\nshards:\n  s0: ${good.url('app')}\n  s1: ${other.url('app')}\n`);
      const r = await shardgate(['restore-point', 'before-upgrade', '--config', file]);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout.trim().split('\n').map((l) => l.split(' ')[0])).toEqual(['s0', 's1']);
      expect(r.stdout).toMatch(/^s1 [0-9A-F]+\/[0-9A-F]+$/m);
      // The cut committed the decided branch before the restore point: the point holds the transaction whole.
      expect(await other.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
      expect(await other.query('SELECT x FROM t', [], 'app')).toEqual([{ x: 7 }]);
      const bad = await shardgate(['restore-point', 'x'.repeat(64), '--config', file]);
      expect(bad.code).toBe(1);
    } finally {
      await good.query("DELETE FROM shardgate.tx_decision WHERE gid = 'sg_gw9_s0_0rp'", [], 'app');
      await other.destroy();
    }
  });

  it('serves clients and exits 0 on SIGTERM', async () => {
    const proxy = await startProxy({ auth: { users: [{ name: 'app', password: 'app' }] }, shards: { s0: good.url('app') } });
    try {
      expect(proxy.logs()).toMatch(new RegExp(`shardgate listening on 127\\.0\\.0\\.1:${proxy.port} \\(1 shard: s0\\)`));
      const r = await psql(proxy.port, 'SELECT 1 AS one;', { args: ['-A', '-t'] });
      expect(r.stdout.trim()).toBe('1');
      // The logs are JSON lines and never contain the password.
      const jsonLines = proxy.logs().split('\n').filter((l) => l.startsWith('{'));
      expect(jsonLines.length).toBeGreaterThan(0);
      for (const line of jsonLines) expect(() => JSON.parse(line) as unknown).not.toThrow();
      expect(proxy.logs()).not.toMatch(/"password":"app"/);
    } finally {
      await proxy.stop();
    }
    expect(proxy.child.exitCode).toBe(0);
  });
});
