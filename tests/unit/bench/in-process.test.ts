import { describe, expect, it } from 'vitest';
import { quickOptions } from '../../../src/bench/bench-options.js';
import { measureMerge, measurePlanning, runInProcess } from '../../../src/bench/in-process.js';

describe('in-process measurements', () => {
  it('times planning on a hit, a miss of a known shape and a new shape, each beside its baseline', async () => {
    const m = await measurePlanning(2000);
    for (const v of [m.hit, m.hitBaseline, m.miss, m.missBaseline, m.newShape, m.newShapeBaseline]) expect(v).toBeGreaterThan(0);
  });

  it('merges every row of the 4 streams (a wrong count throws)', async () => {
    const m = await measureMerge(3000, 1);
    for (const v of [m.ordered, m.unordered, m.concatenation]) expect(Number.isFinite(v) && v > 0).toBe(true);
  });

  it('reports the rows the targets look for', async () => {
    const table = await runInProcess({ ...quickOptions(), planIterations: 1000, mergeRowsPerStream: 1000 }, () => undefined);
    expect(table.id).toBe('in-process');
    expect(table.rows.map((r) => r.id)).toEqual(['plan-hit', 'plan-miss', 'plan-new-shape', 'merge-ordered', 'merge-unordered']);
    for (const r of table.rows) expect(Object.keys(r.cells).sort()).toEqual(['baseline', 'shardgate']);
  });
});
