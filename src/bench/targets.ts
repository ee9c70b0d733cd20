import { cellValue, formatRatio, formatValue, type ResultTable } from './result-table.js';

/** A goal of the benchmark issue, checked against one run's tables. */
export interface Target {
  readonly id: string;
  /** The goal as people say it, e.g. "parse + route ≤ 5 µs on a cache hit". */
  readonly goal: string;
  /** The measured figure as text, or null when the run did not measure it. */
  readonly figure: string | null;
  /** Whether the figure meets the goal; null when not measured. */
  readonly met: boolean | null;
}

function findValue(tables: readonly ResultTable[], tableId: string, rowId: string, column: string): { value: number; unit: string } | null {
  const row = tables.find((t) => t.id === tableId)?.rows.find((r) => r.id === rowId);
  if (row === undefined) return null;
  const value = cellValue(row.cells[column]);
  return value === null ? null : { value, unit: row.unit };
}

function atMost(id: string, goal: string, found: { value: number; unit: string } | null, limit: number): Target {
  if (found === null) return { id, goal, figure: null, met: null };
  return { id, goal, figure: formatValue(found.value, found.unit), met: found.value <= limit };
}

function ratioAtLeast(
  id: string,
  goal: string,
  side: { value: number; unit: string } | null,
  base: { value: number; unit: string } | null,
  min: number,
): Target {
  if (side === null || base === null || base.value === 0) return { id, goal, figure: null, met: null };
  const r = side.value / base.value;
  return { id, goal, figure: `${formatValue(side.value, side.unit)} vs ${formatValue(base.value, base.unit)} (${formatRatio(r)})`, met: r >= min };
}

/**
 * The targets of the benchmark issue, evaluated on `tables` (the ids used by
 * the comparisons in this folder). A target whose figures are missing comes
 * back with `met: null` rather than being dropped, so the gap stays visible.
 */
export function evaluateTargets(tables: readonly ResultTable[]): Target[] {
  const selectOnly16 = (side: string): { value: number; unit: string } | null => findValue(tables, 'select-only', 'simple-c16', side);
  const pgbouncer16 = selectOnly16('pgbouncer');
  return [
    ratioAtLeast(
      'select-only-1-shard',
      'select-only (-S simple, 16 clients) through ShardGate over 1 shard ≥ PgBouncer',
      selectOnly16('shardgate-1'),
      pgbouncer16,
      1,
    ),
    ratioAtLeast(
      'select-only-tls',
      'select-only (-S simple, 16 clients) through ShardGate over 1 shard with clients on TLS ≥ 0.85 × the same without TLS',
      selectOnly16('shardgate-1-tls'),
      selectOnly16('shardgate-1'),
      0.85,
    ),
    ratioAtLeast(
      'select-only-4-shards',
      'select-only (-S simple, 16 clients) through ShardGate over 4 shards ≥ PgBouncer',
      selectOnly16('shardgate-4'),
      pgbouncer16,
      1,
    ),
    ratioAtLeast(
      'tpcb-4-shards',
      'TPC-B-like over 4 shards ≥ 0.6 × one PostgreSQL server directly',
      findValue(tables, 'tpcb', 'tps', 'shardgate-4'),
      findValue(tables, 'tpcb', 'tps', 'direct'),
      0.6,
    ),
    ratioAtLeast(
      'tpcb-vs-hand-written',
      'TPC-B-like over 4 shards through ShardGate ≥ 1.2 × the hand-written two-phase client on the same shards',
      findValue(tables, 'tpcb', 'tps', 'shardgate-4'),
      findValue(tables, 'tpcb', 'tps', 'hand-written-2pc'),
      1.2,
    ),
    atMost('parse-route-hit', 'parse + route ≤ 5 µs on a cache hit', findValue(tables, 'in-process', 'plan-hit', 'shardgate'), 5),
    atMost('parse-route-miss', 'parse + route ≤ 100 µs on a cache miss', findValue(tables, 'in-process', 'plan-miss', 'shardgate'), 100),
    atMost(
      'cut-p99',
      "consistent reader's cut under TPC-B-like load ≤ 20 ms at p99 (bounds the commit gate's pause)",
      findValue(tables, 'consistent-read', 'cut-p99', 'tpcb+consistent-reader'),
      20,
    ),
    ratioAtLeast(
      'tpcb-with-reader',
      'TPC-B-like with a consistent reader every 100 ms ≥ 0.9 × without',
      findValue(tables, 'consistent-read', 'tps', 'tpcb+consistent-reader'),
      findValue(tables, 'consistent-read', 'tps', 'tpcb'),
      0.9,
    ),
    atMost('consistent-reader-wrong', 'a consistent reader never sees unequal pgbench sums', findValue(tables, 'consistent-read', 'wrong-sums', 'tpcb+consistent-reader'), 0),
    atMost('idle-clients-rss', '1000 idle clients ≤ 150 MB resident', findValue(tables, 'memory', 'rss-idle-clients', 'shardgate-4'), 150),
    atMost('slow-read-added', 'slow read of the big result adds ≤ 50 MB', findValue(tables, 'memory', 'rss-read-added', 'shardgate-4'), 50),
  ];
}

/** The targets as a Markdown table: goal, figure, met?. */
export function renderTargets(targets: readonly Target[]): string {
  const lines = ['| target | figure | met? |', '| --- | --- | --- |'];
  for (const t of targets) {
    const met = t.met === null ? 'not measured' : t.met ? 'yes' : 'no';
    lines.push(`| ${t.goal} | ${t.figure ?? '—'} | ${met} |`);
  }
  return lines.join('\n');
}
