import { describe, expect, it } from 'vitest';
import { fullOptions } from '../../../src/bench/bench-options.js';
import { fileTimestamp, renderReport, reportJson, type BenchReport } from '../../../src/bench/report.js';

const REPORT: BenchReport = {
  startedAt: '2026-05-01T12:30:05.123Z',
  finishedAt: '2026-05-01T12:38:00.000Z',
  mode: 'full',
  options: { ...fullOptions(), sections: ['tpcb'] },
  machine: { cores: 2, cpuModel: 'cpu', memoryGb: 4, kernel: '6.1', node: 'v20.0.0', postgres: '15.20', pgbench: 'pgbench 15.20', pgbouncer: null },
  tables: [
    {
      id: 'tpcb',
      title: 'TPC-B-like',
      columns: ['direct', 'shardgate-4'],
      baseline: 'direct',
      rows: [{ id: 'tps', label: 'tps', unit: 'tps', cells: { direct: { kind: 'samples', samples: [3000] }, 'shardgate-4': { kind: 'samples', samples: [1500] } } }],
      notes: [],
    },
  ],
  targets: [{ id: 'tpcb-4-shards', goal: 'TPC-B ≥ 0.6 ×', figure: '1500 tps vs 3000 tps (0.50×)', met: false }],
  problems: ['PgBouncer not found'],
};

describe('report', () => {
  it('names files by a timestamp without colons', () => {
    expect(fileTimestamp(new Date(REPORT.startedAt))).toBe('2026-05-01T12-30-05Z');
  });

  it('renders machine, targets, results and problems as Markdown', () => {
    const md = renderReport(REPORT);
    expect(md).toContain('Machine: 2 cores (cpu) · 4 GB memory · Linux 6.1 · Node.js v20.0.0 · PostgreSQL 15.20');
    expect(md).toContain('| TPC-B ≥ 0.6 × | 1500 tps vs 3000 tps (0.50×) | no |');
    expect(md).toContain('| tps | 3000 tps | 1500 tps (0.50×) |');
    expect(md).toContain('## Problems\n\n- PgBouncer not found');
  });

  it('writes JSON that reads back to the same report', () => {
    expect(JSON.parse(reportJson(REPORT))).toEqual(REPORT);
  });
});
