import { describe, expect, it } from 'vitest';
import { cellValue, formatRatio, formatValue, ratio, renderSection, renderTable, type ResultTable } from '../../../src/bench/result-table.js';

const TABLE: ResultTable = {
  id: 'select-only',
  title: 'pgbench -S',
  columns: ['direct', 'pgbouncer', 'shardgate-4'],
  baseline: 'direct',
  rows: [
    {
      id: 'simple-c16',
      label: '-S simple, 16 clients',
      unit: 'tps',
      cells: {
        direct: { kind: 'samples', samples: [36_000, 37_000, 36_500] },
        pgbouncer: { kind: 'samples', samples: [23_725] },
        'shardgate-4': { kind: 'samples', samples: [18_250] },
      },
    },
    {
      id: 'prepared-c16',
      label: '-S prepared, 16 clients',
      unit: 'tps',
      cells: {
        direct: { kind: 'samples', samples: [32_800] },
        pgbouncer: { kind: 'missing', reason: 'PgBouncer | 1.18 cannot' },
      },
    },
  ],
  notes: ['ratios against direct'],
};

describe('ratios', () => {
  it('divides the median of a side by the median of the baseline', () => {
    const row = TABLE.rows[0]!;
    expect(cellValue(row.cells.direct)).toBe(36_500);
    expect(ratio(row, 'pgbouncer', 'direct')).toBeCloseTo(0.65, 10);
    expect(ratio(row, 'shardgate-4', 'direct')).toBeCloseTo(0.5, 10);
    expect(ratio(row, 'direct', 'direct')).toBe(1);
  });

  it('has no ratio for a missing side, a missing baseline or a zero baseline', () => {
    const row = TABLE.rows[1]!;
    expect(ratio(row, 'pgbouncer', 'direct')).toBeNull();
    expect(ratio(row, 'shardgate-4', 'direct')).toBeNull();
    expect(ratio(row, 'direct', 'pgbouncer')).toBeNull();
    const zero = { id: 'z', label: 'z', unit: '%', cells: { a: { kind: 'samples', samples: [0] }, b: { kind: 'samples', samples: [87] } } } as const;
    expect(ratio(zero, 'b', 'a')).toBeNull();
  });

  it('formats ratios with two decimals, small ones with two significant digits', () => {
    expect(formatRatio(0.65)).toBe('0.65×');
    expect(formatRatio(1)).toBe('1.00×');
    expect(formatRatio(0.0017)).toBe('0.0017×');
    expect(formatRatio(163.2)).toBe('163×');
  });
});

describe('formatValue', () => {
  it('shortens thousands and millions and keeps three significant digits below', () => {
    expect(formatValue(36_512.4, 'tps')).toBe('36.5 k tps');
    expect(formatValue(1_050_000, 'rows/s')).toBe('1.05 M rows/s');
    expect(formatValue(628_170_000, 'rows/s')).toBe('628.2 M rows/s');
    expect(formatValue(3270, 'tps')).toBe('3270 tps');
    expect(formatValue(21.777, 'ms')).toBe('21.8 ms');
    expect(formatValue(3.834, 'µs')).toBe('3.83 µs');
    expect(formatValue(0.0244, 'µs')).toBe('0.024 µs');
    expect(formatValue(0, '%')).toBe('0 %');
  });
});

describe('renderTable', () => {
  it('renders one Markdown row per workload with ratios against the baseline column', () => {
    const lines = renderTable(TABLE).split('\n');
    expect(lines[0]).toBe('|  | direct (baseline) | pgbouncer | shardgate-4 |');
    expect(lines[1]).toBe('| --- | --- | --- | --- |');
    expect(lines[2]).toBe('| -S simple, 16 clients | 36.5 k tps ±1% | 23.7 k tps (0.65×) | 18.3 k tps (0.50×) |');
    // Pipes inside a cell are escaped so the table keeps its columns; an absent cell is a dash.
    expect(lines[3]).toBe('| -S prepared, 16 clients | 32.8 k tps | n/a (PgBouncer \\| 1.18 cannot) | — |');
    expect(lines).toHaveLength(4);
  });

  it('adds a note column when a row has a note, and a section with title and notes', () => {
    const withNote: ResultTable = {
      id: 'in-process',
      title: 'In-process',
      columns: ['baseline', 'shardgate'],
      baseline: 'baseline',
      rows: [{ id: 'plan-miss', label: 'miss', unit: 'µs', cells: { baseline: { kind: 'samples', samples: [40] }, shardgate: { kind: 'samples', samples: [80] } }, note: 'parse alone' }],
      notes: ['one note'],
    };
    const text = renderSection(withNote);
    expect(text.split('\n')).toEqual([
      '### In-process',
      '',
      '|  | baseline | shardgate | note |',
      '| --- | --- | --- | --- |',
      '| miss | 40.0 µs | 80.0 µs (2.00×) | parse alone |',
      '',
      '- one note',
    ]);
  });

  it('renders a table without a baseline without ratios', () => {
    const t: ResultTable = { id: 'memory', title: 'Memory', columns: ['proxy'], baseline: null, rows: [{ id: 'rss', label: 'rss', unit: 'MB', cells: { proxy: { kind: 'samples', samples: [106.4] } } }], notes: [] };
    expect(renderTable(t).split('\n')[2]).toBe('| rss | 106 MB |');
  });
});

describe('spread between rounds', () => {
  it('shows ± only when rounds disagree', () => {
    const t: ResultTable = {
      id: 't',
      title: 't',
      columns: ['a', 'b'],
      baseline: 'a',
      rows: [{ id: 'r', label: 'r', unit: '%', cells: { a: { kind: 'samples', samples: [0, 0, 0] }, b: { kind: 'samples', samples: [90, 100, 95] } } }],
      notes: [],
    };
    expect(renderTable(t).split('\n')[2]).toBe('| r | 0 % | 95.0 % ±5% |');
  });
});
