import { describe, expect, it } from 'vitest';
import { mergeStreams, mergedFields, resolveMergeSpec } from '../../../../src/engine/merge/merge-streams.js';
import { PgError } from '../../../../src/errors/pg-error.js';
import type { AggregateSpec, MergeSpec } from '../../../../src/planner/plan.js';
import { asc, collect, desc, FakeInput, field, merge, OID, row, spec } from './fixtures.js';

/**
 * Specs for select lists with `*`: indexes counted from the end of the shard
 * result, whose width only the shards' RowDescription tells.
 */

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof PgError ? err.code : `not a PgError: ${String(err)}`;
  }
  return 'no error';
}

function aggregate(partial: Partial<AggregateSpec>): AggregateSpec {
  return { groupBy: [], columns: [], having: null, ...partial };
}

// SELECT * FROM t ORDER BY id  →  shards: SELECT *, id AS __sg_0 FROM t ORDER BY id
const starOrderById = spec({ visibleColumns: -1, orderBy: [asc(-1)] });

describe('resolveMergeSpec', () => {
  it('returns a spec without negative indexes unchanged', () => {
    const s = spec({ visibleColumns: 2, orderBy: [asc(1)] });
    expect(resolveMergeSpec(s, 5)).toBe(s);
  });

  it('counts negative sort columns and visibleColumns from the end', () => {
    const s = spec({ visibleColumns: -2, orderBy: [desc(-2), asc(0), asc(-1)], limit: { kind: 'value', value: 3 } });
    expect(resolveMergeSpec(s, 6)).toEqual(spec({ visibleColumns: 4, orderBy: [desc(4), asc(0), asc(5)], limit: { kind: 'value', value: 3 } }));
    expect(resolveMergeSpec(s, 3)).toEqual(spec({ visibleColumns: 1, orderBy: [desc(1), asc(0), asc(2)], limit: { kind: 'value', value: 3 } }));
  });

  it('resolves group keys, aggregate columns and HAVING operands, nested ones too', () => {
    const s: MergeSpec = spec({
      visibleColumns: -2,
      aggregate: aggregate({
        groupBy: [-4],
        columns: [
          { kind: 'count', column: -3 },
          { kind: 'avg', column: 1, sum: -2, count: -1 },
        ],
        having: {
          kind: 'not',
          arg: {
            kind: 'or',
            args: [
              { kind: 'compare', op: '>', left: { kind: 'column', column: -3 }, right: { kind: 'literal', value: '1' } },
              { kind: 'isNull', negated: false, arg: { kind: 'column', column: -4 } },
              { kind: 'compare', op: '=', left: { kind: 'param', index: 0 }, right: { kind: 'column', column: 0 } },
            ],
          },
        },
      }),
    });
    expect(resolveMergeSpec(s, 4)).toEqual(
      spec({
        visibleColumns: 2,
        aggregate: aggregate({
          groupBy: [0],
          columns: [
            { kind: 'count', column: 1 },
            { kind: 'avg', column: 1, sum: 2, count: 3 },
          ],
          having: {
            kind: 'not',
            arg: {
              kind: 'or',
              args: [
                { kind: 'compare', op: '>', left: { kind: 'column', column: 1 }, right: { kind: 'literal', value: '1' } },
                { kind: 'isNull', negated: false, arg: { kind: 'column', column: 0 } },
                { kind: 'compare', op: '=', left: { kind: 'param', index: 0 }, right: { kind: 'column', column: 0 } },
              ],
            },
          },
        }),
      }),
    );
  });

  it('reports an ORDER BY position that lands on a hidden column as 42P10', () => {
    // SELECT * FROM t ORDER BY 4, id over a three-column t: position 4 is the hidden copy of id.
    const s = spec({ visibleColumns: -1, orderBy: [asc(3), asc(-1)] });
    expect(() => resolveMergeSpec(s, 4)).toThrow(expect.objectContaining({ code: '42P10' }));
    expect(resolveMergeSpec(s, 5).orderBy.map((k) => k.column)).toEqual([3, 4]);
  });
});

describe('merging with indexes counted from the end', () => {
  it('orders by a hidden column after a * and drops it, whatever the width', async () => {
    const narrow = [field('id', OID.int4), field('name', OID.text), field('__sg_0', OID.int4)];
    expect(
      await merge(
        [
          [row('1', 'a', '1'), row('4', 'd', '4')],
          [row('2', 'b', '2'), row('3', 'c', '3')],
        ],
        narrow,
        starOrderById,
      ),
    ).toEqual([['1', 'a'], ['2', 'b'], ['3', 'c'], ['4', 'd']]);
    expect(mergedFields(narrow, starOrderById).map((f) => f.name)).toEqual(['id', 'name']);

    const wide = [field('id', OID.int4), field('name', OID.text), field('note', OID.text), field('n', OID.int4), field('__sg_0', OID.int4)];
    expect(
      await merge(
        [
          [row('2', 'b', 'x', '20', '2')],
          [row('1', 'a', 'y', '10', '1'), row('3', 'c', null, '30', '3')],
        ],
        wide,
        starOrderById,
      ),
    ).toEqual([['1', 'a', 'y', '10'], ['2', 'b', 'x', '20'], ['3', 'c', null, '30']]);
    expect(mergedFields(wide, starOrderById).map((f) => f.name)).toEqual(['id', 'name', 'note', 'n']);
  });

  it('applies DESC, OFFSET and LIMIT after resolving', async () => {
    // SELECT * FROM t ORDER BY balance DESC LIMIT 2 OFFSET 1
    const fields = [field('id', OID.int4), field('balance', OID.numeric), field('__sg_0', OID.numeric)];
    const s = spec({ visibleColumns: -1, orderBy: [desc(-1)], offset: { kind: 'value', value: 1 }, limit: { kind: 'value', value: 2 } });
    const rows = await merge(
      [
        [row('1', '90', '90'), row('2', '10', '10')],
        [row('4', null, null), row('3', '50', '50')],
      ],
      fields,
      s,
    );
    // DESC puts NULLs first; OFFSET 1 skips that row.
    expect(rows).toEqual([['1', '90'], ['3', '50']]);
  });

  it('sorts by a visible column after the * located from the end', async () => {
    // SELECT *, v * 2 AS twice FROM t ORDER BY twice, id  →  SELECT *, v * 2 AS twice, id AS __sg_0 …
    const fields = [field('id', OID.int4), field('v', OID.int4), field('twice', OID.int4), field('__sg_0', OID.int4)];
    const s = spec({ visibleColumns: -1, orderBy: [asc(-2), asc(-1)] });
    const rows = await merge([[row('2', '1', '2', '2'), row('1', '3', '6', '1')], [row('3', '1', '2', '3')]], fields, s);
    expect(rows).toEqual([['2', '1', '2'], ['3', '1', '2'], ['1', '3', '6']]);
  });

  it('removes duplicates over the visible columns only (SELECT DISTINCT *)', async () => {
    const fields = [field('a', OID.int4), field('b', OID.text), field('__sg_0', OID.text)];
    const s = spec({ visibleColumns: -1, distinct: true });
    const rows = await merge(
      [
        [row('1', 'x', null), row('2', 'y', null)],
        [row('1', 'x', null), row('3', 'z', null)],
      ],
      fields,
      s,
    );
    expect(rows.sort()).toEqual([['1', 'x'], ['2', 'y'], ['3', 'z']]);
  });

  it('combines groups when every aggregate index counts from the end', async () => {
    // SELECT k, count(*), avg(v) … HAVING count(*) > 1 ORDER BY k; shards: k, count(*), sum(v), count(v)
    const fields = [field('k', OID.text), field('count', OID.int8), field('avg', OID.int8), field('c', OID.int8)];
    const negative = spec({
      visibleColumns: -1,
      orderBy: [asc(-4)],
      aggregate: aggregate({
        groupBy: [-4],
        columns: [
          { kind: 'count', column: -3 },
          { kind: 'avg', column: -2, sum: -2, count: -1 },
        ],
        having: { kind: 'compare', op: '>', left: { kind: 'column', column: -3 }, right: { kind: 'literal', value: '1' } },
      }),
    });
    const inputs = [
      [row('a', '1', '4', '1'), row('b', '2', '6', '2')],
      [row('a', '2', '2', '2'), row('c', '1', '5', '1')],
    ];
    const rows = await merge(inputs, fields, negative);
    expect(rows).toEqual([
      ['a', '3', '2.0000000000000000'],
      ['b', '2', '3.0000000000000000'],
    ]);
    expect(mergedFields(fields, negative).map((f) => f.typeOid)).toEqual([OID.text, OID.int8, OID.numeric]);
  });

  it('raises 42P10 from the merge and from mergedFields for a position past the visible columns', async () => {
    const fields = [field('id', OID.int4), field('name', OID.text), field('__sg_0', OID.int4)];
    const s = spec({ visibleColumns: -1, orderBy: [asc(2), asc(-1)] });
    const inputs = [new FakeInput([row('1', 'a', '1')]), new FakeInput([row('2', 'b', '2')])];
    expect(await failure(collect(mergeStreams(inputs, fields, s, [])))).toBe('42P10');
    expect(inputs.map((f) => f.returnCalls)).toEqual([1, 1]);
    expect(() => mergedFields(fields, s)).toThrow(expect.objectContaining({ code: '42P10' }));
  });

  it('reports a negative index reaching before the first column as a planner bug (XX000)', async () => {
    const fields = [field('id', OID.int4), field('__sg_0', OID.int4)];
    expect(await failure(merge([[row('1', '1')]], fields, spec({ visibleColumns: -1, orderBy: [asc(-3)] })))).toBe('XX000');
    expect(await failure(merge([[row('1', '1')]], fields, spec({ visibleColumns: -3, orderBy: [asc(0)] })))).toBe('XX000');
  });
});
