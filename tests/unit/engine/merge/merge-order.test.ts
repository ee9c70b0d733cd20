import { describe, expect, it } from 'vitest';
import { mergeStreams, mergedFields } from '../../../../src/engine/merge/merge-streams.js';
import { PgError } from '../../../../src/errors/pg-error.js';
import type { RawRow } from '../../../../src/protocol/fields.js';
import { asc, collect, desc, FakeInput, field, merge, OID, row, spec } from './fixtures.js';

const idName = [field('id', OID.int4), field('name', OID.text)];

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof PgError ? err.code : `not a PgError: ${String(err)}`;
  }
  return 'no error';
}

describe('ORDER BY merge', () => {
  it('merges sorted inputs into one sorted stream', async () => {
    const rows = await merge(
      [
        [row('1', 'a'), row('4', 'd'), row('7', 'g')],
        [row('2', 'b'), row('5', 'e')],
        [row('3', 'c'), row('6', 'f'), row('8', 'h'), row('10', 'j')],
      ],
      idName,
      spec({ visibleColumns: 2, orderBy: [asc(0)] }),
    );
    expect(rows.map((r) => r[0])).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '10']);
  });

  it('does not ask inputs that ended by themselves to return()', async () => {
    const fakes = [new FakeInput([row('1', 'a'), row('3', 'c')]), new FakeInput([row('2', 'b')])];
    expect(await collect(mergeStreams(fakes, idName, spec({ visibleColumns: 2, orderBy: [asc(0)] }), []))).toHaveLength(3);
    expect(fakes.map((f) => f.returnCalls)).toEqual([0, 0]);
  });

  it('merges DESC and keeps ties in input order', async () => {
    const rows = await merge(
      [
        [row('9', 'x0'), row('5', 'x1')],
        [row('9', 'y0'), row('5', 'y1'), row('1', 'y2')],
      ],
      idName,
      spec({ visibleColumns: 2, orderBy: [desc(0)] }),
    );
    expect(rows).toEqual([
      ['9', 'x0'],
      ['9', 'y0'],
      ['5', 'x1'],
      ['5', 'y1'],
      ['1', 'y2'],
    ]);
  });

  it('places NULLs last for ASC and first when asked', async () => {
    const inputs = [
      [row('1', 'a'), row(null, 'n1')],
      [row('2', 'b'), row(null, 'n2')],
    ];
    const last = await merge(inputs, idName, spec({ visibleColumns: 2, orderBy: [asc(0)] }));
    expect(last.map((r) => r[1])).toEqual(['a', 'b', 'n1', 'n2']);
    const firstInputs = [
      [row(null, 'n1'), row('1', 'a')],
      [row(null, 'n2'), row('2', 'b')],
    ];
    const first = await merge(firstInputs, idName, spec({ visibleColumns: 2, orderBy: [{ column: 0, descending: false, nullsFirst: true }] }));
    expect(first.map((r) => r[1])).toEqual(['n1', 'n2', 'a', 'b']);
  });

  it('orders by several keys and drops hidden sort columns', async () => {
    // visible: name; hidden: id (the planner appended it for ORDER BY).
    const fields = [field('name', OID.text), field('id', OID.int4)];
    const rows = await merge(
      [
        [row('a', '2'), row('b', '1')],
        [row('a', '1'), row('b', '3')],
      ],
      fields,
      spec({ visibleColumns: 1, orderBy: [asc(0), desc(1)] }),
    );
    expect(rows).toEqual([['a'], ['a'], ['b'], ['b']]);
    expect(mergedFields(fields, spec({ visibleColumns: 1 })).map((f) => f.name)).toEqual(['name']);
  });

  it('merges binary-format columns', async () => {
    const enc = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeInt32BE(n);
      return b;
    };
    const inputs = [[[enc(-5)], [enc(3)]], [[enc(-7)], [enc(10)]]] satisfies RawRow[][];
    const out: number[] = [];
    const stream = mergeStreams(inputs.map((r) => new FakeInput(r)), [field('n', OID.int4, 1)], spec({ visibleColumns: 1, orderBy: [asc(0)] }), []);
    for await (const batch of stream) for (const r of batch) out.push(r[0]!.readInt32BE(0));
    expect(out).toEqual([-7, -5, 3, 10]);
  });

  it('handles empty inputs, one input and no inputs', async () => {
    const s = spec({ visibleColumns: 2, orderBy: [asc(0)] });
    expect(await merge([[], [row('1', 'a')], []], idName, s)).toEqual([['1', 'a']]);
    expect(await merge([[row('2', 'b'), row('3', 'c')]], idName, s)).toEqual([
      ['2', 'b'],
      ['3', 'c'],
    ]);
    expect(await merge([], idName, s)).toEqual([]);
    expect(await merge([[], []], idName, s)).toEqual([]);
  });

  it('concatenates inputs when no order is asked', async () => {
    const rows = await merge([[row('2', 'b')], [row('1', 'a')]], idName, spec({ visibleColumns: 2 }));
    expect(rows).toEqual([
      ['2', 'b'],
      ['1', 'a'],
    ]);
  });

  it('refuses to order by a type it cannot compare (0A000) and closes the inputs', async () => {
    const inputs = [new FakeInput([row('1 day')]), new FakeInput([row('2 days')])];
    const code = await failure(collect(mergeStreams(inputs, [field('i', OID.interval)], spec({ visibleColumns: 1, orderBy: [asc(0)] }), [])));
    expect(code).toBe('0A000');
    expect(inputs.map((i) => i.returnCalls)).toEqual([1, 1]);
  });

  it('closes every other input when one fails, and reports the failure', async () => {
    const inputs = [new FakeInput([row('1', 'a'), row('3', 'c'), row('5', 'e')], 1), new FakeInput([row('2', 'b'), row('4', 'd')], 1, 1)];
    await expect(collect(mergeStreams(inputs, idName, spec({ visibleColumns: 2, orderBy: [asc(0)] }), []))).rejects.toThrow('shard failed');
    expect(inputs[0]!.returnCalls).toBe(1);
    expect(inputs[1]!.returnCalls).toBe(0);
  });
});

describe('OFFSET and LIMIT', () => {
  const inputs = (): RawRow[][] => [
    [row('1', 'a'), row('3', 'c'), row('5', 'e')],
    [row('2', 'b'), row('4', 'd'), row('6', 'f')],
  ];
  const ordered = (extra: Parameters<typeof spec>[0]): ReturnType<typeof spec> => spec({ orderBy: [asc(0)], ...extra });

  it('applies OFFSET then LIMIT after the merge', async () => {
    const rows = await merge(inputs(), idName, ordered({ visibleColumns: 2, offset: { kind: 'value', value: 2 }, limit: { kind: 'value', value: 3 } }));
    expect(rows.map((r) => r[0])).toEqual(['3', '4', '5']);
  });

  it('returns nothing for LIMIT 0 and closes every input without reading', async () => {
    const fakes = inputs().map((r) => new FakeInput(r));
    const rows = await collect(mergeStreams(fakes, idName, ordered({ visibleColumns: 2, limit: { kind: 'value', value: 0 } }), []));
    expect(rows).toEqual([]);
    expect(fakes.map((f) => [f.pulled, f.returnCalls])).toEqual([
      [0, 1],
      [0, 1],
    ]);
  });

  it('returns nothing for an OFFSET beyond the end', async () => {
    expect(await merge(inputs(), idName, ordered({ visibleColumns: 2, offset: { kind: 'value', value: 10 } }))).toEqual([]);
  });

  it('takes LIMIT and OFFSET from text parameters', async () => {
    const s = ordered({ visibleColumns: 2, offset: { kind: 'param', index: 1 }, limit: { kind: 'param', index: 0 } });
    expect((await merge(inputs(), idName, s, ['2', '3'])).map((r) => r[0])).toEqual(['4', '5']);
    // NULL means no limit / no offset, as in PostgreSQL.
    expect((await merge(inputs(), idName, s, [null, null])).length).toBe(6);
  });

  it('raises PostgreSQL errors for negative or malformed counts', async () => {
    const run = (s: ReturnType<typeof spec>, params: (string | null | undefined)[] = []): Promise<string> =>
      failure(collect(mergeStreams(inputs().map((r) => new FakeInput(r)), idName, s, params)));
    expect(await run(ordered({ visibleColumns: 2, limit: { kind: 'value', value: -1 } }))).toBe('2201W');
    expect(await run(ordered({ visibleColumns: 2, offset: { kind: 'param', index: 0 } }), ['-3'])).toBe('2201X');
    expect(await run(ordered({ visibleColumns: 2, limit: { kind: 'param', index: 0 } }), ['ten'])).toBe('22P02');
    expect(await run(ordered({ visibleColumns: 2, limit: { kind: 'param', index: 0 } }), [undefined])).toBe('0A000');
  });

  it('stops pulling once the limit is reached and closes every input before the last rows are handed on', async () => {
    const big = (start: number): RawRow[] => Array.from({ length: 100 }, (_, i) => row(String(start + 2 * i), 'x'));
    const fakes = [new FakeInput(big(0), 10), new FakeInput(big(1), 10)];
    const stream = mergeStreams(fakes, idName, ordered({ visibleColumns: 2, limit: { kind: 'value', value: 5 } }), []);
    const seen: string[] = [];
    for await (const batch of stream) {
      seen.push(...batch.map((r) => r[0]!.toString()));
      expect(fakes.map((f) => f.returnCalls)).toEqual([1, 1]);
    }
    expect(seen).toEqual(['0', '1', '2', '3', '4']);
    expect(fakes.map((f) => f.pulled)).toEqual([10, 10]);
    expect(fakes.map((f) => f.returnCalls)).toEqual([1, 1]);
  });

  it('closes the inputs when the consumer stops early', async () => {
    const fakes = inputs().map((r) => new FakeInput(r, 1));
    for await (const batch of mergeStreams(fakes, idName, ordered({ visibleColumns: 2 }), [], { batchSize: 1 })) {
      expect(batch.length).toBe(1);
      break;
    }
    expect(fakes.map((f) => f.returnCalls)).toEqual([1, 1]);
  });

  it('limits unordered results without reading later inputs', async () => {
    const fakes = inputs().map((r) => new FakeInput(r));
    const rows = await collect(mergeStreams(fakes, idName, spec({ visibleColumns: 2, limit: { kind: 'value', value: 2 } }), []));
    expect(rows.map((r) => r[0])).toEqual(['1', '3']);
    expect(fakes.map((f) => [f.pulled, f.returnCalls])).toEqual([
      [2, 1],
      [0, 1],
    ]);
  });
});

describe('DISTINCT', () => {
  it('removes duplicates from sorted streams, keeping order', async () => {
    const rows = await merge(
      [
        [row('1', 'a'), row('2', 'b'), row('2', 'b')],
        [row('1', 'a'), row('2', 'c'), row('3', 'c')],
      ],
      idName,
      spec({ visibleColumns: 2, distinct: true, orderBy: [asc(0), asc(1)] }),
    );
    expect(rows).toEqual([
      ['1', 'a'],
      ['2', 'b'],
      ['2', 'c'],
      ['3', 'c'],
    ]);
  });

  it('removes duplicates from unsorted streams, NULLs equal to each other', async () => {
    const rows = await merge(
      [
        [row('1', null), row('2', 'b')],
        [row('2', 'b'), row('1', null), row('3', 'c')],
      ],
      idName,
      spec({ visibleColumns: 2, distinct: true }),
    );
    expect(rows).toEqual([
      ['1', null],
      ['2', 'b'],
      ['3', 'c'],
    ]);
  });

  it('treats numerically equal numerics and floats as duplicates', async () => {
    const fields = [field('n', OID.numeric), field('f', OID.float8)];
    const rows = await merge([[row('1.0', '-0')], [row('1.00', '0')]], fields, spec({ visibleColumns: 2, distinct: true }));
    expect(rows).toEqual([['1.0', '-0']]);
  });

  it('uses the set when the order covers only some visible columns', async () => {
    // ORDER BY id only: rows equal on (id, name) need not be adjacent.
    const rows = await merge(
      [
        [row('1', 'a'), row('1', 'b'), row('1', 'a')],
        [row('1', 'b')],
      ],
      idName,
      spec({ visibleColumns: 2, distinct: true, orderBy: [asc(0)] }),
    );
    expect(rows).toEqual([
      ['1', 'a'],
      ['1', 'b'],
    ]);
  });

  it('applies LIMIT after DISTINCT', async () => {
    const rows = await merge(
      [[row('1', 'a'), row('1', 'a'), row('2', 'b')], [row('1', 'a'), row('3', 'c')]],
      idName,
      spec({ visibleColumns: 2, distinct: true, orderBy: [asc(0), asc(1)], limit: { kind: 'value', value: 2 } }),
    );
    expect(rows.map((r) => r[0])).toEqual(['1', '2']);
  });

  it('refuses DISTINCT on types without an equality rule (0A000)', async () => {
    const code = await failure(collect(mergeStreams([new FakeInput([row('{}')])], [field('j', OID.json)], spec({ visibleColumns: 1, distinct: true }), [])));
    expect(code).toBe('0A000');
  });
});
