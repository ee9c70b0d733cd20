import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusKb } from '../../../src/bench/memory.js';
import { BenchCluster } from '../../../src/bench/pg-cluster.js';
import { RawPgConnection } from '../../../src/bench/raw-pg-client.js';
import { PROXY_DATABASE, PROXY_USER, proxyConfig, startShardGate, type ShardGateProcess } from '../../../src/bench/shardgate-process.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('shardgate serve over a networked shard', () => {
  let cluster: BenchCluster;
  let proxy: ShardGateProcess;
  beforeAll(async () => {
    cluster = await BenchCluster.create({ databases: ['app'] });
    await cluster.query('CREATE TABLE t (id bigint PRIMARY KEY, v int NOT NULL)', [], 'app');
    await cluster.query('INSERT INTO t SELECT g, g % 7 FROM generate_series(1, 100) g', [], 'app');
    proxy = await startShardGate(proxyConfig([cluster.url('app')], {}, { maxPerShard: 2 }), { logLevel: 'info' });
  });
  afterAll(async () => {
    await proxy?.stop();
    await cluster?.destroy();
  });

  // Regression: optimizing the parser's WebAssembly after the first statements kept about 45 MB resident for good.
  it('keeps the SQL parser on baseline code, so its first statements add little resident memory', async () => {
    const starting = proxy
      .output()
      .split('\n')
      .find((l) => l.includes('"starting"'));
    expect(starting).toContain('"v8Flags":["--liftoff-only"]');

    const conn = await RawPgConnection.connect({ host: '127.0.0.1', port: proxy.port, user: PROXY_USER.name, password: PROXY_USER.password, database: PROXY_DATABASE });
    try {
      await sleep(500);
      const before = (await statusKb(proxy.pid, 'VmRSS'))!;
      let rows = 0;
      // Different literals: every statement is parsed, as a client sending literals makes the proxy do.
      for (let i = 1; i <= 60; i++) {
        const read = await conn.readSlowly(`SELECT id, v FROM t WHERE id = ${i} AND v >= ${i % 3} ORDER BY id LIMIT ${i}`, { chunkBytes: 1 << 30, pauseMs: 0 });
        rows += read.rows;
      }
      expect(rows).toBe(Array.from({ length: 60 }, (_, k) => k + 1).filter((id) => id % 7 >= id % 3).length);
      // Background recompilation, when it happens, is over by then.
      await sleep(1500);
      const after = (await statusKb(proxy.pid, 'VmRSS'))!;
      expect((after - before) / 1024).toBeLessThan(20);
    } finally {
      await conn.close();
    }
  });
});
