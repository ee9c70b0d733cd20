import { describe, expect, it } from 'vitest';
import { SnapshotFilter } from '../../../src/cdc/snapshot-filter.js';

describe('SnapshotFilter (pg_current_snapshot text)', () => {
  it('follows pg_visible_in_snapshot: below xmin visible, in progress or from xmax on not', () => {
    const s = SnapshotFilter.parse('100:105:101,103')!;
    expect([99, 100, 101, 102, 103, 104, 105, 106].map((x) => s.visible(x))).toEqual([true, true, false, true, false, true, false, false]);
    const empty = SnapshotFilter.parse('7:7:')!;
    expect([6, 7, 8].map((x) => empty.visible(x))).toEqual([true, false, false]);
  });

  it('widens the 32-bit xids of the WAL by the snapshot\'s epoch, across a wraparound', () => {
    // Epoch 1, xmax just past it: 32-bit 5 is 2^32 + 5, and 32-bit 4294967290 is the previous epoch's, below xmin.
    const base = 2n ** 32n;
    const s = SnapshotFilter.parse(`${base - 10n}:${base + 10n}:${base + 5n}`)!;
    expect(s.visible(5)).toBe(false);
    expect(s.visible(6)).toBe(true);
    expect(s.visible(4294967290)).toBe(true);
    expect(s.visible(4294967280)).toBe(true);
    expect(s.visible(20)).toBe(false);
  });

  it('refuses text that is not a snapshot', () => {
    for (const bad of ['', '1:2', 'a:b:', '5:3:', '1:5:7', '1:5:0']) expect(SnapshotFilter.parse(bad), bad).toBeNull();
  });
});
