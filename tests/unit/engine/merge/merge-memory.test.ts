import { describe, expect, it } from 'vitest';
import { mergeStreams } from '../../../../src/engine/merge/merge-streams.js';
import type { RawRow } from '../../../../src/protocol/fields.js';
import type { MergeSpec } from '../../../../src/planner/plan.js';
import { asc, field, OID, spec } from './fixtures.js';

const INPUTS = 4;
const BATCH = 500;
/** Keys per group in the generated table: group g holds keys 8g … 8g+7, spread over all inputs. */
const GROUP = 8;

function int4(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

/**
 * Runs a merge over INPUTS lazily generated inputs of `rowsPerInput` rows each:
 * input s yields keys i * INPUTS + s in order, as rows [key, key / GROUP] in
 * binary int4 (or [key / GROUP, key] with `groupFirst`). After every output
 * batch it records how many input rows were pulled but not yet accounted for
 * by the rows delivered (`covered(row)`: how many input rows the output up to
 * and including that row stands for).
 */
async function run(
  mergeSpec: MergeSpec,
  rowsPerInput: number,
  groupFirst: boolean,
  check: (row: RawRow, index: number) => number,
): Promise<{ delivered: number; maxAhead: number }> {
  let pulled = 0;
  async function* input(shard: number): AsyncGenerator<readonly RawRow[]> {
    for (let start = 0; start < rowsPerInput; start += BATCH) {
      const batch: RawRow[] = [];
      for (let i = start; i < start + BATCH; i++) {
        const key = i * INPUTS + shard;
        batch.push(groupFirst ? [int4(Math.floor(key / GROUP)), int4(key)] : [int4(key), int4(Math.floor(key / GROUP))]);
      }
      pulled += batch.length;
      yield batch;
    }
  }
  const names = groupFirst ? ['g', 'k'] : ['k', 'g'];
  const fields = names.map((name) => field(name, OID.int4, 1));
  let delivered = 0;
  let covered = 0;
  let maxAhead = 0;
  const inputs = Array.from({ length: INPUTS }, (_, shard) => input(shard));
  for await (const batch of mergeStreams(inputs, fields, mergeSpec, [], { batchSize: BATCH })) {
    for (const r of batch) covered = check(r, delivered++);
    maxAhead = Math.max(maxAhead, pulled - covered);
  }
  return { delivered, maxAhead };
}

describe('streaming merge memory bound', () => {
  it('k-way merges 4 × 1,000,000 rows reading at most one batch per input ahead', async () => {
    const rowsPerInput = 1_000_000;
    const { delivered, maxAhead } = await run(spec({ visibleColumns: 1, orderBy: [asc(0)] }), rowsPerInput, false, (r, i) => {
      if (r.length !== 1 || r[0]!.readInt32BE(0) !== i) throw new Error(`row ${i} out of order`);
      return i + 1;
    });
    expect(delivered).toBe(INPUTS * rowsPerInput);
    expect(maxAhead).toBeLessThanOrEqual(INPUTS * BATCH);
  }, 60_000);

  it('streams GROUP BY over inputs sorted by the group key within the same bound', async () => {
    const rowsPerInput = 200_000;
    const groups = spec({
      visibleColumns: 2,
      orderBy: [asc(1)],
      aggregate: { groupBy: [1], columns: [{ kind: 'max', column: 0 }], having: null },
    });
    const { delivered, maxAhead } = await run(groups, rowsPerInput, false, (r, i) => {
      if (r[1]!.readInt32BE(0) !== i || r[0]!.readInt32BE(0) !== i * GROUP + GROUP - 1) throw new Error(`group ${i} wrong`);
      return (i + 1) * GROUP;
    });
    expect(delivered).toBe((INPUTS * rowsPerInput) / GROUP);
    expect(maxAhead).toBeLessThanOrEqual(INPUTS * BATCH);
  }, 60_000);

  it('streams DISTINCT over inputs sorted on the visible columns within the same bound', async () => {
    const rowsPerInput = 200_000;
    // SELECT DISTINCT g … ORDER BY g, with k hidden.
    const distinct = spec({ visibleColumns: 1, distinct: true, orderBy: [asc(0)] });
    const { delivered, maxAhead } = await run(distinct, rowsPerInput, true, (r, i) => {
      if (r.length !== 1 || r[0]!.readInt32BE(0) !== i) throw new Error(`distinct row ${i} wrong`);
      return (i + 1) * GROUP;
    });
    expect(delivered).toBe((INPUTS * rowsPerInput) / GROUP);
    expect(maxAhead).toBeLessThanOrEqual(INPUTS * BATCH);
  }, 60_000);
});
