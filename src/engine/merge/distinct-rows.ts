import type { RawRow } from '../../protocol/fields.js';
import type { SortKey } from '../../planner/plan.js';

/**
 * Whether a stream sorted by `orderBy` has equal visible rows next to each
 * other: true when the leading sort keys that are visible columns cover every
 * visible column (rows equal on all of them are then equal on that prefix,
 * and the sort keeps such rows together).
 */
export function sortedOnVisible(orderBy: readonly SortKey[], visibleColumns: number): boolean {
  const covered = new Set<number>();
  for (const key of orderBy) {
    if (key.column >= visibleColumns) break;
    covered.add(key.column);
  }
  return covered.size === visibleColumns;
}

/** DISTINCT on a stream where duplicates are adjacent: remembers only the previous row's key. */
export async function* distinctAdjacent(source: AsyncIterable<readonly RawRow[]>, key: (row: RawRow) => string): AsyncGenerator<RawRow[], void, undefined> {
  let previous: string | null = null;
  for await (const batch of source) {
    const out: RawRow[] = [];
    for (const row of batch) {
      const k = key(row);
      if (k === previous) continue;
      previous = k;
      out.push(row);
    }
    if (out.length > 0) yield out;
  }
}

/**
 * DISTINCT on an unsorted stream: keeps the first row of each distinct value,
 * in arrival order. Memory grows with the number of distinct rows (their
 * encoded keys), not with the number of rows read.
 */
export async function* distinctHashed(source: AsyncIterable<readonly RawRow[]>, key: (row: RawRow) => string): AsyncGenerator<RawRow[], void, undefined> {
  const seen = new Set<string>();
  for await (const batch of source) {
    const out: RawRow[] = [];
    for (const row of batch) {
      const k = key(row);
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(row);
    }
    if (out.length > 0) yield out;
  }
}
