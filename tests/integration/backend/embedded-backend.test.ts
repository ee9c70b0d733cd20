import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendConnection } from '../../../src/backend/backend-connection.js';
import { COPY_CHUNK_BYTES } from '../../../src/backend/buffered-copy-sink.js';
import { createConnector } from '../../../src/backend/connector.js';
import { openEmbedded } from '../../../src/backend/pglite-transport.js';
import { shardName } from '../../../src/config/names.js';
import type { ShardGateConfig } from '../../../src/config/types.js';
import { collect, connectionBehaviour, pgErrorOf } from './connection-behaviour.js';
import { connectorConfig } from '../../harness/connector-config.js';

const e0 = shardName('e0');
let root: string;
let shared: BackendConnection | null = null;

/** A fresh database folder: a copy of one created once (creating a PGlite database takes seconds). */
async function freshDir(name: string): Promise<string> {
  const dir = join(root, name);
  await cp(join(root, 'template'), dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'shardgate-pglite-'));
  await (await openEmbedded(e0, join(root, 'template'))).close();
});
afterAll(async () => {
  await shared?.close();
  await rm(root, { recursive: true, force: true });
});

// One PGlite database is one session: every "new connection" of the shared suite is that session.
const sharedConnection = async (): Promise<BackendConnection> => (shared ??= await openEmbedded(e0, await freshDir('behaviour')));
connectionBehaviour('embedded', sharedConnection, true);

function embeddedConfig(dirs: Record<string, string>, maxPerShard: number): ShardGateConfig {
  return connectorConfig(Object.entries(dirs).map(([name, dir]) => ({ kind: 'embedded' as const, name: shardName(name), dir })), maxPerShard);
}

describe('embedded shard specifics', () => {
  it('allows prepared transactions, which survive closing and reopening', async () => {
    const dir = await freshDir('twophase');
    let conn = await openEmbedded(e0, dir);
    expect(Number((await conn.rows('SHOW max_prepared_transactions'))[0]![0])).toBeGreaterThan(0);
    await conn.exec('CREATE TABLE t (a int)');
    await conn.exec("BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'sg_gw1_e0_1'");
    expect(conn.txStatus).toBe('I');
    await conn.close();
    conn = await openEmbedded(e0, dir);
    expect(await conn.rows('SELECT gid FROM pg_prepared_xacts')).toEqual([['sg_gw1_e0_1']]);
    expect(await conn.rows('SELECT count(*) FROM t')).toEqual([['0']]);
    expect(await conn.exec("COMMIT PREPARED 'sg_gw1_e0_1'")).toBe('COMMIT PREPARED');
    expect(await conn.rows('SELECT a FROM t')).toEqual([['1']]);
    await conn.close();
  });

  it('treats cancel as a no-op', async () => {
    const conn = await sharedConnection();
    await conn.cancel();
    expect(await conn.rows('SELECT 1')).toEqual([['1']]);
  });

  it('copies more than one chunk of text data atomically', async () => {
    const conn = await sharedConnection();
    await conn.exec('CREATE TABLE big (id int, pad text)');
    const pad = 'p'.repeat(60);
    const rowsPerWrite = 1000;
    const writes = Math.ceil((COPY_CHUNK_BYTES * 2.5) / (rowsPerWrite * 70));
    const sink = await conn.copyIn('COPY big FROM STDIN');
    for (let w = 0; w < writes; w++) {
      let data = '';
      for (let i = 0; i < rowsPerWrite; i++) data += `${w * rowsPerWrite + i}\t${pad}\n`;
      await sink.write(Buffer.from(data));
    }
    expect(await sink.end()).toBe(`COPY ${writes * rowsPerWrite}`);
    expect(conn.txStatus).toBe('I');
    expect(await conn.rows('SELECT count(*) FROM big')).toEqual([[String(writes * rowsPerWrite)]]);

    // A bad row in a later chunk rolls back the chunks already copied.
    await conn.exec('TRUNCATE big');
    const bad = await conn.copyIn('COPY big FROM STDIN');
    for (let w = 0; w < writes; w++) {
      let data = '';
      for (let i = 0; i < rowsPerWrite; i++) data += `${w === writes - 1 && i === 5 ? 'x' : w * rowsPerWrite + i}\t${pad}\n`;
      await bad.write(Buffer.from(data));
    }
    expect((await pgErrorOf(bad.end())).code).toBe('22P02');
    expect(conn.txStatus).toBe('I');
    expect(await conn.rows('SELECT count(*) FROM big')).toEqual([['0']]);
  });

  it('copies binary format', async () => {
    const conn = await sharedConnection();
    await conn.exec("CREATE TABLE b (id int, name text); INSERT INTO b VALUES (1, 'one'), (2, 'two')");
    const out: Buffer[] = [];
    for await (const chunk of conn.copyOut('COPY b TO STDOUT (FORMAT binary)')) out.push(chunk);
    await conn.exec('TRUNCATE b');
    const sink = await conn.copyIn('COPY b FROM STDIN (FORMAT binary)');
    for (const chunk of out) await sink.write(chunk);
    expect(await sink.end()).toBe('COPY 2');
    expect(await conn.rows('SELECT id, name FROM b ORDER BY id')).toEqual([
      ['1', 'one'],
      ['2', 'two'],
    ]);
  });

  it('holds one connection per embedded shard whatever maxPerShard says', async () => {
    const connector = await createConnector(embeddedConfig({ e0: await freshDir('pool0'), e1: await freshDir('pool1') }, 10));
    try {
      expect(connector.serverVersion(e0)).toMatch(/^\d+/);
      const a = await connector.acquire(e0, 1000);
      const err = await pgErrorOf(connector.acquire(e0, 100));
      expect([err.code, err.shard]).toEqual(['40P01', 'e0']);
      const other = await connector.acquire(shardName('e1'), 100);
      expect(connector.stats().get(e0)).toEqual({ inUse: 1, idle: 0, waiting: 0 });
      await a.exec('BEGIN');
      await a.exec('CREATE TABLE left_open (x int)');
      const next = connector.acquire(e0, 5000);
      a.release();
      // Released inside a transaction: rolled back before the next holder gets it.
      const b = await next;
      expect(b.txStatus).toBe('I');
      expect(await b.rows("SELECT count(*) FROM pg_class WHERE relname = 'left_open'")).toEqual([['0']]);
      b.release();
      other.release();
    } finally {
      await connector.close();
    }
  });

  it('reopens the database after a connection is released as broken', async () => {
    const connector = await createConnector(embeddedConfig({ e0: await freshDir('broken') }, 4));
    try {
      const a = await connector.acquire(e0, 1000);
      await a.exec('CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)');
      a.release(true);
      const b = await connector.acquire(e0, 5000);
      expect(await b.rows('SELECT x FROM kept')).toEqual([['7']]);
      b.release();
    } finally {
      await connector.close();
    }
  });

  it('streams an embedded result one Execute batch at a time', async () => {
    const conn = await sharedConnection();
    const r = await collect(conn, { sql: 'SELECT g FROM generate_series(1, 2500) g', batchSize: 1000 });
    expect(r.batches).toEqual([1000, 1000, 500]);
    expect(r.tag).toBe('SELECT 2500');
  });
});
