import { register as globalRegister } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CdcMetrics } from '../../../src/cdc/cdc-metrics.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { parseProm } from './prom-text.js';

async function scrape(m: Metrics): Promise<Map<string, number>> {
  return parseProm(await m.text());
}

describe('Metrics', () => {
  it('counts statements, transactions, phases, routes and recovery by the amounts reported', async () => {
    const m = new Metrics({ shards: ['s0', 's1'] });
    m.statementExecuted('s0', 0.002);
    m.statementExecuted('s0', 0.004);
    m.statementExecuted('s1', 0.5);
    m.transactionEnded('two_phase', 'commit');
    m.transactionEnded('one_shard', 'commit');
    m.transactionEnded('one_shard', 'rollback');
    m.transactionEnded('local', 'error');
    m.phaseTimed('prepare', 0.01);
    m.phaseTimed('commit_prepared', 0.02);
    m.prepareTimedOut();
    m.recoveryDecided('abort');
    m.recoveryDecided('abort');
    m.recoveryDecided('commit');
    m.deadlockBroken();
    m.routed('single');
    m.routed('single');
    m.routed('broadcast-write');
    m.clientConnected();
    m.clientConnected();
    m.clientDisconnected();

    const s = await scrape(m);
    expect(s.get('shardgate_shard_statements_total{shard="s0"}')).toBe(2);
    expect(s.get('shardgate_shard_statements_total{shard="s1"}')).toBe(1);
    expect(s.get('shardgate_shard_statement_duration_seconds_count{shard="s0"}')).toBe(2);
    expect(s.get('shardgate_shard_statement_duration_seconds_sum{shard="s0"}')).toBeCloseTo(0.006, 9);
    expect(s.get('shardgate_shard_statement_duration_seconds_bucket{le="0.005",shard="s0"}')).toBe(2);
    expect(s.get('shardgate_shard_statement_duration_seconds_bucket{le="0.25",shard="s1"}')).toBe(0);
    expect(s.get('shardgate_transactions_total{kind="two_phase",outcome="commit"}')).toBe(1);
    expect(s.get('shardgate_transactions_total{kind="one_shard",outcome="commit"}')).toBe(1);
    expect(s.get('shardgate_transactions_total{kind="one_shard",outcome="rollback"}')).toBe(1);
    expect(s.get('shardgate_transactions_total{kind="local",outcome="error"}')).toBe(1);
    expect(s.get('shardgate_transactions_total{kind="two_phase",outcome="error"}')).toBe(0);
    expect(s.get('shardgate_cross_shard_txn_ratio')).toBe(0.25);
    expect(s.get('shardgate_2pc_phase_duration_seconds_count{phase="prepare"}')).toBe(1);
    expect(s.get('shardgate_2pc_phase_duration_seconds_count{phase="decision"}')).toBe(0);
    expect(s.get('shardgate_2pc_phase_duration_seconds_count{phase="commit_prepared"}')).toBe(1);
    expect(s.get('shardgate_xa_timeout_total')).toBe(1);
    expect(s.get('shardgate_recovery_decisions_total{outcome="abort"}')).toBe(2);
    expect(s.get('shardgate_recovery_decisions_total{outcome="commit"}')).toBe(1);
    expect(s.get('shardgate_distributed_deadlocks_broken_total')).toBe(1);
    expect(s.get('shardgate_routing_decisions_total{route="single"}')).toBe(2);
    expect(s.get('shardgate_routing_decisions_total{route="broadcast-write"}')).toBe(1);
    expect(s.get('shardgate_routing_decisions_total{route="hint"}')).toBe(0);
    expect(s.get('shardgate_client_connections')).toBe(1);
  });

  it('starts closed label sets and known shards at zero, and the ratio at 0 before any transaction', async () => {
    const s = await scrape(new Metrics({ shards: ['s0'] }));
    expect(s.get('shardgate_shard_statements_total{shard="s0"}')).toBe(0);
    expect(s.get('shardgate_routing_decisions_total{route="default"}')).toBe(0);
    expect(s.get('shardgate_transactions_total{kind="local",outcome="commit"}')).toBe(0);
    expect(s.get('shardgate_cross_shard_txn_ratio')).toBe(0);
    expect(s.get('shardgate_in_doubt_transactions')).toBe(0);
  });

  it('reads pool gauges from the callback at each scrape and drops shards no longer reported', async () => {
    const m = new Metrics();
    let pools = [
      { shard: 's0', inUse: 3, idle: 2, waiting: 1 },
      { shard: 's1', inUse: 0, idle: 5, waiting: 0 },
    ];
    let calls = 0;
    m.setPoolSource(async () => {
      calls++;
      return pools;
    });
    let s = await scrape(m);
    expect(calls).toBe(1);
    expect(s.get('shardgate_pool_connections_in_use{shard="s0"}')).toBe(3);
    expect(s.get('shardgate_pool_connections_idle{shard="s0"}')).toBe(2);
    expect(s.get('shardgate_pool_waiting_requests{shard="s0"}')).toBe(1);
    expect(s.get('shardgate_pool_connections_idle{shard="s1"}')).toBe(5);
    pools = [{ shard: 's0', inUse: 1, idle: 4, waiting: 0 }];
    s = await scrape(m);
    expect(s.get('shardgate_pool_connections_in_use{shard="s0"}')).toBe(1);
    expect(s.has('shardgate_pool_connections_idle{shard="s1"}')).toBe(false);
  });

  it('reads in-doubt count and oldest age once per scrape, and shows NaN (a gap) when the source fails', async () => {
    const m = new Metrics();
    let calls = 0;
    m.setInDoubtSource(() => {
      calls++;
      return { count: 2, oldestAgeSeconds: 42.5 };
    });
    let s = await scrape(m);
    expect(calls).toBe(1);
    expect(s.get('shardgate_in_doubt_transactions')).toBe(2);
    expect(s.get('shardgate_in_doubt_oldest_age_seconds')).toBe(42.5);
    m.setInDoubtSource(() => Promise.reject(new Error('anchor unreachable')));
    m.setPoolSource(() => {
      throw new Error('pool gone');
    });
    s = await scrape(m);
    expect(Number.isNaN(s.get('shardgate_in_doubt_transactions'))).toBe(true);
    expect(s.get('shardgate_transactions_total{kind="local",outcome="commit"}')).toBe(0);
  });

  it('keeps two instances apart and never touches prom-client\'s global registry', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.routed('multi');
    expect((await scrape(a)).get('shardgate_routing_decisions_total{route="multi"}')).toBe(1);
    expect((await scrape(b)).get('shardgate_routing_decisions_total{route="multi"}')).toBe(0);
    expect(await globalRegister.metrics()).not.toContain('shardgate_');
  });

  it('records nothing when disabled', async () => {
    const m = Metrics.disabled();
    expect(m.enabled).toBe(false);
    m.statementExecuted('s0', 1);
    m.transactionEnded('two_phase', 'commit');
    m.phaseTimed('prepare', 1);
    m.routed('single');
    m.clientConnected();
    m.shardKnown('s0');
    expect(await m.text()).toBe('');
  });

  it('names every metric by Prometheus conventions', async () => {
    const m = new Metrics();
    const text = await m.text();
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1]!, x[2]!]));
    expect(types.size).toBe(m.metricNames().length);
    expect([...types.keys()].sort()).toEqual([
      'shardgate_2pc_phase_duration_seconds',
      'shardgate_client_connections',
      'shardgate_cross_shard_txn_ratio',
      'shardgate_cut_delayed_commits_total',
      'shardgate_cut_finished_commits_total',
      'shardgate_cut_gate_hold_seconds',
      'shardgate_cuts_total',
      'shardgate_distributed_deadlocks_broken_total',
      'shardgate_in_doubt_oldest_age_seconds',
      'shardgate_in_doubt_transactions',
      'shardgate_pool_connections_idle',
      'shardgate_pool_connections_in_use',
      'shardgate_pool_waiting_requests',
      'shardgate_recovery_decisions_total',
      'shardgate_routing_decisions_total',
      'shardgate_saga_compensation_rate',
      'shardgate_saga_finished_total',
      'shardgate_saga_outbox_lag_seconds',
      'shardgate_saga_outbox_unsent_messages',
      'shardgate_saga_relay_back_checks_total',
      'shardgate_saga_relay_failures_total',
      'shardgate_saga_relay_lag_seconds',
      'shardgate_saga_relay_published_total',
      'shardgate_saga_started_total',
      'shardgate_saga_step_duration_seconds',
      'shardgate_saga_step_retries_total',
      'shardgate_saga_steps_exhausted_total',
      'shardgate_shard_statement_duration_seconds',
      'shardgate_shard_statements_total',
      'shardgate_transactions_total',
      'shardgate_xa_timeout_total',
    ]);
    for (const [name, type] of types) {
      expect(name).toMatch(/^shardgate_[a-z0-9_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_seconds$/);
    }
    expect(types.get('shardgate_xa_timeout_total')).toBe('counter');
    expect(types.get('shardgate_cross_shard_txn_ratio')).toBe('gauge');
    expect(Metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('shardgate cdc: waiting parts and reading paused per shard, held memory and spill files, as last reported', async () => {
    const m = new CdcMetrics();
    m.waiting('s0', 50, true);
    m.waiting('s1', 3, false);
    m.spill(1234, 2);
    let s = parseProm(await m.text());
    expect(s.get('shardgate_cdc_waiting_parts{shard="s0"}')).toBe(50);
    expect(s.get('shardgate_cdc_reading_paused{shard="s0"}')).toBe(1);
    expect(s.get('shardgate_cdc_waiting_parts{shard="s1"}')).toBe(3);
    expect(s.get('shardgate_cdc_reading_paused{shard="s1"}')).toBe(0);
    expect(s.get('shardgate_cdc_held_memory_bytes')).toBe(1234);
    expect(s.get('shardgate_cdc_spill_files')).toBe(2);
    m.waiting('s0', 0, false);
    m.spill(0, 0);
    s = parseProm(await m.text());
    expect([s.get('shardgate_cdc_waiting_parts{shard="s0"}'), s.get('shardgate_cdc_reading_paused{shard="s0"}'), s.get('shardgate_cdc_held_memory_bytes'), s.get('shardgate_cdc_spill_files')]).toEqual([0, 0, 0, 0]);
  });
});
