import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ShardGate } from '../../../src/index.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { ATTR_GID, ATTR_ROUTE, ATTR_SHARD, SPAN, withSpan } from '../../../src/observe/tracing.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { parseProm } from '../../unit/observe/prom-text.js';

const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager();

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan): string => s.spanContext().spanId;

describe('spans, shard-side tags and metrics of library statements on PostgreSQL shards', () => {
  let clusters: PgCluster[];
  let gate: ShardGate;
  const metrics = new Metrics({ shards: ['s0', 's1'] });

  beforeAll(async () => {
    contextManager.enable();
    context.setGlobalContextManager(contextManager);
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    clusters = await startClusters(2, { databases: ['app'] });
    gate = await ShardGate.open(
      {
        coordinatorId: 'trc1',
        shards: { s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app') },
        transactions: { recoveryIntervalMs: 0 },
        tables: { items: { key: 'id', algorithm: 'mod' } },
      },
      // No deadlock check: it borrows a connection per shard while a transaction is open, and one still
      // running when the metrics are read would count as in use (the pool gauge is asserted below).
      { metrics, deadlockCheckMs: 0 },
    );
    await gate.query('CREATE TABLE items (id bigint PRIMARY KEY, note text)');
  }, 120_000);

  afterAll(async () => {
    await gate?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
    trace.disable();
    context.disable();
  });
  beforeEach(() => exporter.reset());

  it('a query: application span → statement → route and shard execution', async () => {
    await withSpan('app.handler', {}, () => gate.query('SELECT note FROM items WHERE id = $1', [3]));
    const spans = exporter.getFinishedSpans();
    const app = spans.find((s) => s.name === 'app.handler')!;
    const statement = spans.find((s) => s.name === SPAN.statement)!;
    const route = spans.find((s) => s.name === SPAN.route)!;
    const shard = spans.find((s) => s.name === SPAN.shardExecute)!;
    expect(parentOf(statement)).toBe(idOf(app));
    expect(parentOf(route)).toBe(idOf(statement));
    expect(parentOf(shard)).toBe(idOf(statement));
    expect(route.attributes[ATTR_ROUTE]).toBe('single');
    expect(shard.attributes[ATTR_SHARD]).toBe('s1');
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
  });

  it('a transaction writing two shards: the COMMIT statement span holds the 2PC phases, with the gid', async () => {
    await gate.transaction(async () => {
      await gate.query('INSERT INTO items (id, note) VALUES (10, $1)', ['a']);
      await gate.query('INSERT INTO items (id, note) VALUES (11, $1)', ['b']);
    });
    const spans = exporter.getFinishedSpans();
    const statements = spans.filter((s) => s.name === SPAN.statement);
    const commit = statements[statements.length - 1]!;
    const gid = commit.attributes[ATTR_GID] as string;
    expect(gid).toMatch(/^sg_trc1_s[01]_/);
    for (const name of [SPAN.prepare, SPAN.decision, SPAN.commitPrepared]) {
      const phase = spans.find((s) => s.name === name)!;
      expect(phase, name).toBeDefined();
      expect(parentOf(phase)).toBe(idOf(commit));
      expect(phase.attributes[ATTR_GID]).toBe(gid);
      expect(['s0', 's1']).toContain(phase.attributes[ATTR_SHARD]);
    }
    // The inserts ran in the same transaction: their shard spans carry its id, the stem of the gid.
    const executions = spans.filter((s) => s.name === SPAN.shardExecute);
    const txId = executions[0]!.attributes[ATTR_GID] as string;
    expect(gid.replace(/_s[01]_/, '_')).toBe(txId);
  });

  it('continues the trace of an sqlcommenter traceparent on the client SQL', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    await gate.query(`SELECT count(*) FROM items /*traceparent='00-${traceId}-${parent}-01'*/`);
    const statement = exporter.getFinishedSpans().find((s) => s.name === SPAN.statement)!;
    expect(statement.spanContext().traceId).toBe(traceId);
    expect(parentOf(statement)).toBe(parent);
  });

  it('pg_stat_activity on the shard shows the transaction id as application_name and in an sqlcommenter tag', async () => {
    let seen: { query: string; application_name: string }[] = [];
    await gate.transaction(async () => {
      await gate.query('INSERT INTO items (id, note) VALUES (20, $1)', ['x']);
      const sleeping = gate.query('SELECT pg_sleep(0.8) FROM items WHERE id = 21');
      for (let i = 0; i < 50 && seen.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        seen = await clusters[1]!.query("SELECT query, application_name FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.8)%' AND pid <> pg_backend_pid()", [], 'app');
      }
      await sleeping;
    });
    expect(seen.length).toBe(1);
    const row = seen[0]!;
    expect(row.application_name).toMatch(/^sg_trc1_[0-9a-z]+$/);
    expect(row.query).toContain(`/*shardgate_tx='${row.application_name}'*/`);
  });

  it('metrics move by the workload: statements per shard, routing, transactions by kind', async () => {
    const before = parseProm(await metrics.text());
    await gate.query('SELECT * FROM items WHERE id = 1'); // single, s1
    await gate.query('SELECT count(*) FROM items'); // all: s0 and s1
    await gate.transaction(async () => {
      await gate.query('INSERT INTO items (id, note) VALUES (30, $1)', ['p']);
      await gate.query('INSERT INTO items (id, note) VALUES (31, $1)', ['q']);
    });
    await gate.transaction(async () => {
      await gate.query('INSERT INTO items (id, note) VALUES (32, $1)', ['r']);
    });
    const after = parseProm(await metrics.text());
    const delta = (series: string): number => (after.get(series) ?? 0) - (before.get(series) ?? 0);
    expect(delta('shardgate_shard_statements_total{shard="s0"}')).toBe(3); // count(*), 30, 32
    expect(delta('shardgate_shard_statements_total{shard="s1"}')).toBe(3); // id 1, count(*), 31
    expect(delta('shardgate_routing_decisions_total{route="single"}')).toBe(4);
    expect(delta('shardgate_routing_decisions_total{route="all"}')).toBe(1);
    expect(delta('shardgate_transactions_total{kind="two_phase",outcome="commit"}')).toBe(1);
    expect(delta('shardgate_transactions_total{kind="one_shard",outcome="commit"}')).toBe(1);
    expect(delta('shardgate_2pc_phase_duration_seconds_count{phase="prepare"}')).toBe(1);
    expect(after.get('shardgate_pool_connections_in_use{shard="s0"}')).toBe(0);
    expect(after.get('shardgate_in_doubt_transactions')).toBe(0);
  });
});
