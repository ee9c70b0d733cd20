import { describe, expect, it } from 'vitest';
import type { ResultTable } from '../../../src/bench/result-table.js';
import { evaluateTargets, renderTargets } from '../../../src/bench/targets.js';

const s = (v: number) => ({ kind: 'samples', samples: [v] }) as const;

const TABLES: ResultTable[] = [
  {
    id: 'select-only',
    title: '',
    columns: ['direct', 'pgbouncer', 'shardgate-1', 'shardgate-4'],
    baseline: 'direct',
    rows: [{ id: 'simple-c16', label: '', unit: 'tps', cells: { direct: s(36_000), pgbouncer: s(24_000), 'shardgate-1': s(24_000), 'shardgate-4': s(12_000) } }],
    notes: [],
  },
  {
    id: 'tpcb',
    title: '',
    columns: ['direct', 'hand-written-2pc', 'shardgate-4'],
    baseline: 'direct',
    rows: [{ id: 'tps', label: '', unit: 'tps', cells: { direct: s(3000), 'hand-written-2pc': s(1500), 'shardgate-4': s(1800) } }],
    notes: [],
  },
  {
    id: 'in-process',
    title: '',
    columns: ['baseline', 'shardgate'],
    baseline: 'baseline',
    rows: [
      { id: 'plan-hit', label: '', unit: 'µs', cells: { baseline: s(0.02), shardgate: s(5.2) } },
      { id: 'plan-miss', label: '', unit: 'µs', cells: { baseline: s(40), shardgate: s(100) } },
    ],
    notes: [],
  },
];

describe('evaluateTargets', () => {
  it('checks each goal against its figure, equality meeting the goal', () => {
    const byId = Object.fromEntries(evaluateTargets(TABLES).map((t) => [t.id, t]));
    expect(byId['select-only-1-shard']!.met).toBe(true);
    expect(byId['select-only-4-shards']!.met).toBe(false);
    expect(byId['select-only-4-shards']!.figure).toBe('12.0 k tps vs 24.0 k tps (0.50×)');
    expect(byId['tpcb-4-shards']!.met).toBe(true);
    // 1800 / 1500 = 1.2: exactly the goal.
    expect(byId['tpcb-vs-hand-written']!.met).toBe(true);
    expect(byId['tpcb-vs-hand-written']!.figure).toBe('1800 tps vs 1500 tps (1.20×)');
    expect(byId['parse-route-hit']!.met).toBe(false);
    expect(byId['parse-route-miss']!.met).toBe(true);
  });

  it('keeps unmeasured targets, marked as such', () => {
    const targets = evaluateTargets(TABLES);
    const memory = targets.filter((t) => t.id === 'idle-clients-rss' || t.id === 'slow-read-added');
    expect(memory).toHaveLength(2);
    for (const t of memory) expect(t).toMatchObject({ figure: null, met: null });
    const text = renderTargets(targets);
    expect(text).toContain('| 1000 idle clients ≤ 150 MB resident | — | not measured |');
    expect(text.split('\n')).toHaveLength(2 + targets.length);
  });
});
