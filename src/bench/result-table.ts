import { median } from './stats.js';

/** One side's measurement in one row: every round's value, or why there is none. */
export type Cell =
  | { readonly kind: 'samples'; readonly samples: readonly number[] }
  | { readonly kind: 'missing'; readonly reason: string };

/** One workload (or metric) measured on every side of a comparison. */
export interface ResultRow {
  /** Stable identifier within its table, used in the JSON output and by targets, e.g. 'simple-c16'. */
  readonly id: string;
  readonly label: string;
  /** Unit of every cell in the row: 'tps', 'ms', 'µs', 'rows/s', 'MB', '%'. */
  readonly unit: string;
  /** Cells by column (side) name; a column without a cell was not measured for this row. */
  readonly cells: Readonly<Record<string, Cell>>;
  /** What the row's baseline column holds when it is not obvious from the column name. */
  readonly note?: string;
}

/** One comparison: sides as columns, workloads as rows, ratios against the baseline column. */
export interface ResultTable {
  /** Stable identifier used in the JSON output and by targets, e.g. 'select-only'. */
  readonly id: string;
  readonly title: string;
  /** Column (side) names, baseline included, in display order. */
  readonly columns: readonly string[];
  /** The column ratios are computed against; null for a table without ratios. */
  readonly baseline: string | null;
  readonly rows: readonly ResultRow[];
  readonly notes: readonly string[];
}

/**
 * A row builder for sections that keep one record per side and round: a
 * cell holds `pick` of each round that measured it, or the side's failure,
 * or "not measured". `of` may turn that cell into another (a total).
 */
export function roundRows<S extends string, R>(
  rounds: ReadonlyMap<S, readonly R[]>,
  problems: ReadonlyMap<S, string>,
  allSides: readonly S[],
): {
  cell(side: S, pick: (r: R) => number | undefined): Cell;
  row(id: string, label: string, unit: string, pick: (r: R) => number | undefined, sides?: readonly S[], of?: (side: S, pick: (r: R) => number | undefined) => Cell): ResultRow;
} {
  const cell = (side: S, pick: (r: R) => number | undefined): Cell => {
    const problem = problems.get(side);
    if (problem !== undefined) return { kind: 'missing', reason: problem };
    const samples = (rounds.get(side) ?? []).flatMap((r) => {
      const v = pick(r);
      return v === undefined ? [] : [v];
    });
    return samples.length === 0 ? { kind: 'missing', reason: 'not measured' } : { kind: 'samples', samples };
  };
  return {
    cell,
    row: (id, label, unit, pick, sides = allSides, of = cell) => ({ id, label, unit, cells: Object.fromEntries(sides.map((s) => [s, of(s, pick)])) }),
  };
}

/** The value a cell stands for: the median of its samples (rounds), or null when missing or empty. */
export function cellValue(cell: Cell | undefined): number | null {
  if (cell === undefined || cell.kind === 'missing' || cell.samples.length === 0) return null;
  const v = median(cell.samples);
  return Number.isFinite(v) ? v : null;
}

/**
 * `value / baseline` of one row's column, or null when either side is missing
 * or the baseline is zero (a ratio to nothing says nothing).
 */
export function ratio(row: ResultRow, column: string, baseline: string): number | null {
  const v = cellValue(row.cells[column]);
  const b = cellValue(row.cells[baseline]);
  if (v === null || b === null || b === 0) return null;
  return v / b;
}

/** A value for humans: thousands as `k`, three significant digits below that. */
export function formatValue(value: number, unit: string): string {
  const abs = Math.abs(value);
  let text: string;
  if (abs >= 1e6) text = `${(value / 1e6).toFixed(abs >= 1e7 ? 1 : 2)} M`;
  else if (abs >= 1e4) text = `${(value / 1e3).toFixed(1)} k`;
  else if (abs >= 100) text = value.toFixed(0);
  else if (abs >= 10) text = value.toFixed(1);
  else if (abs >= 1) text = value.toFixed(2);
  else if (abs === 0) text = '0';
  else text = value.toPrecision(2);
  return `${text} ${unit}`;
}

/** A ratio for humans: two decimals and a multiplication sign. */
export function formatRatio(r: number): string {
  if (r >= 100) return `${r.toFixed(0)}×`;
  if (r !== 0 && r < 0.1) return `${r.toPrecision(2)}×`;
  return `${r.toFixed(2)}×`;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The text of one cell: value, ratio to the baseline in parentheses, or why it is missing. */
export function cellText(table: ResultTable, row: ResultRow, column: string): string {
  const cell = row.cells[column];
  if (cell === undefined) return '—';
  if (cell.kind === 'missing') return `n/a (${cell.reason})`;
  const v = cellValue(cell);
  if (v === null) return '—';
  let text = formatValue(v, row.unit);
  if (cell.samples.length > 1 && Math.max(...cell.samples) !== Math.min(...cell.samples)) text += ` ±${spreadPercent(cell.samples)}`;
  if (table.baseline !== null && column !== table.baseline) {
    const r = ratio(row, column, table.baseline);
    if (r !== null) text += ` (${formatRatio(r)})`;
  }
  return text;
}

/** Half the range of the samples as a share of their median, e.g. "4%": how far rounds disagreed. */
function spreadPercent(samples: readonly number[]): string {
  const m = median(samples);
  if (m === 0) return '0%';
  const spread = (Math.max(...samples) - Math.min(...samples)) / 2 / Math.abs(m);
  return `${(spread * 100).toFixed(0)}%`;
}

/**
 * A GitHub Markdown table: one row per workload, one column per side; every
 * non-baseline cell carries its ratio to the baseline, e.g. `23.7 k tps (0.65×)`.
 * Rows with a note get a last "note" column.
 */
export function renderTable(table: ResultTable): string {
  const withNotes = table.rows.some((r) => r.note !== undefined);
  const headers = ['', ...table.columns.map((c) => (c === table.baseline && c !== 'baseline' ? `${c} (baseline)` : c)), ...(withNotes ? ['note'] : [])];
  const lines = [`| ${headers.map(escapeCell).join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`];
  for (const row of table.rows) {
    const cells = [row.label, ...table.columns.map((c) => cellText(table, row, c)), ...(withNotes ? [row.note ?? ''] : [])];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** A titled section: heading, table, then the notes as a list. */
export function renderSection(table: ResultTable): string {
  const parts = [`### ${table.title}`, '', renderTable(table)];
  if (table.notes.length > 0) parts.push('', ...table.notes.map((n) => `- ${n}`));
  return parts.join('\n');
}
