import { describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/admin/admin-server.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { FakeAdminSource } from '../../unit/admin/fake-admin-source.js';
import { parseProm } from '../../unit/observe/prom-text.js';

describe('scraping /metrics over HTTP while a workload runs', () => {
  it('ends with counters moved by exactly the workload, and gauges read from their sources', async () => {
    const metrics = new Metrics({ shards: ['s0', 's1'] });
    metrics.setPoolSource(() => [{ shard: 's0', inUse: 2, idle: 1, waiting: 0 }]);
    metrics.setInDoubtSource(async () => ({ count: 1, oldestAgeSeconds: 90 }));
    const server = new AdminServer({ port: 0, token: 'x'.repeat(16), source: new FakeAdminSource(), metrics });
    const { port } = await server.listen();
    const scrape = async () => parseProm(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    try {
      const before = await scrape();
      const workload = Array.from({ length: 500 }, async (_, i) => {
        await new Promise((r) => setImmediate(r));
        const shard = i % 2 === 0 ? 's0' : 's1';
        metrics.routed(i % 10 === 0 ? 'multi' : 'single');
        metrics.statementExecuted(shard, 0.001);
        metrics.transactionEnded(i % 10 === 0 ? 'two_phase' : 'one_shard', 'commit');
        if (i % 10 === 0) metrics.phaseTimed('prepare', 0.003);
      });
      const scrapes = Array.from({ length: 10 }, () => scrape());
      await Promise.all([...workload, ...scrapes]);
      const after = await scrape();
      const delta = (series: string) => after.get(series)! - (before.get(series) ?? 0);
      expect(delta('shardgate_shard_statements_total{shard="s0"}')).toBe(250);
      expect(delta('shardgate_shard_statements_total{shard="s1"}')).toBe(250);
      expect(delta('shardgate_routing_decisions_total{route="multi"}')).toBe(50);
      expect(delta('shardgate_routing_decisions_total{route="single"}')).toBe(450);
      expect(delta('shardgate_transactions_total{kind="two_phase",outcome="commit"}')).toBe(50);
      expect(delta('shardgate_2pc_phase_duration_seconds_count{phase="prepare"}')).toBe(50);
      expect(after.get('shardgate_cross_shard_txn_ratio')).toBeCloseTo(0.1, 10);
      expect(after.get('shardgate_pool_connections_in_use{shard="s0"}')).toBe(2);
      expect(after.get('shardgate_in_doubt_transactions')).toBe(1);
      expect(after.get('shardgate_in_doubt_oldest_age_seconds')).toBe(90);
    } finally {
      await server.close();
    }
  });
});
