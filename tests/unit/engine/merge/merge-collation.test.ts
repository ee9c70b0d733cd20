import { describe, expect, it } from 'vitest';
import { PgError } from '../../../../src/errors/pg-error.js';
import { TEXT_UNKNOWN } from '../../../../src/engine/values.js';
import type { TextRules } from '../../../../src/engine/values.js';
import type { AggregateSpec } from '../../../../src/planner/plan.js';
import { asc, field, merge, OID, row, spec } from './fixtures.js';

// Shards whose default collation is linguistic: equality is byte equality, order is not.
const LINGUISTIC: TextRules = { order: false, equality: true };

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

const names = [field('name', OID.text), field('n', OID.int8)];

describe('text keys under a collation that is not byte order', () => {
  it('refuses ORDER BY text (it would come out in byte order)', async () => {
    const code = await failure(merge([[row('a', '1')], [row('B', '2')]], names, spec({ visibleColumns: 2, orderBy: [asc(0)] }), [], { text: LINGUISTIC }));
    expect(code).toBe('0A000');
  });

  it('refuses min/max of text', async () => {
    const min = spec({ visibleColumns: 1, aggregate: aggregate({ columns: [{ kind: 'min', column: 0 }] }) });
    expect(await failure(merge([[row('a')], [row('B')]], [field('min', OID.text)], min, [], { text: LINGUISTIC }))).toBe('0A000');
  });

  it('compares min/max and sort keys that carry COLLATE "C" as bytes', async () => {
    const min = spec({ visibleColumns: 1, aggregate: aggregate({ columns: [{ kind: 'min', column: 0, byteOrder: true }] }) });
    expect(await merge([[row('a')], [row('B')]], [field('min', OID.text)], min, [], { text: LINGUISTIC })).toEqual([['B']]);
    const ordered = spec({ visibleColumns: 2, orderBy: [{ ...asc(0), byteOrder: true }] });
    expect(await merge([[row('a', '1')], [row('B', '2')]], names, ordered, [], { text: LINGUISTIC })).toEqual([
      ['B', '2'],
      ['a', '1'],
    ]);
  });

  it('refuses a COLLATE "C" key when the statement names another collation too', async () => {
    // A key without byteOrder may carry the other collation.
    const ordered = spec({ visibleColumns: 2, orderBy: [asc(0)], otherCollation: true });
    expect(await failure(merge([[row('a', '1')], [row('B', '2')]], names, ordered, [], { text: { order: true, equality: true } }))).toBe('0A000');
  });

  it('combines GROUP BY text without a client ORDER BY in a hash table, each group once', async () => {
    // Each shard sorted its groups linguistically (a < B < c): not byte order, so adjacency cannot be trusted.
    const grouped = spec({
      visibleColumns: 2,
      aggregate: aggregate({ groupBy: [0], columns: [{ kind: 'count', column: 1 }] }),
      orderBy: [asc(0)],
      orderChosen: true,
    });
    const rows = await merge([[row('a', '1'), row('B', '1'), row('c', '1')], [row('B', '2'), row('c', '2')], [row('a', '4')]], names, grouped, [], { text: LINGUISTIC });
    expect(rows.sort()).toEqual([
      ['B', '3'],
      ['a', '5'],
      ['c', '3'],
    ]);
  });

  it('refuses GROUP BY text with the client ORDER BY text, and DISTINCT on text without equality', async () => {
    const grouped = spec({ visibleColumns: 2, aggregate: aggregate({ groupBy: [0], columns: [{ kind: 'count', column: 1 }] }), orderBy: [asc(0)] });
    expect(await failure(merge([[row('a', '1')], [row('B', '1')]], names, grouped, [], { text: LINGUISTIC }))).toBe('0A000');
    expect(await failure(merge([[row('a', '1')], [row('a', '1')]], names, spec({ visibleColumns: 2, distinct: true }), [], { text: TEXT_UNKNOWN }))).toBe('0A000');
  });

  it('refuses HAVING text < literal but evaluates text = literal', async () => {
    const having = (op: '<' | '='): AggregateSpec =>
      aggregate({ groupBy: [0], columns: [{ kind: 'count', column: 1 }], having: { kind: 'compare', op, left: { kind: 'column', column: 0 }, right: { kind: 'literal', value: 'a' } } });
    const inputs = [[row('a', '1')], [row('B', '1'), row('a', '2')]];
    expect(await failure(merge(inputs, names, spec({ visibleColumns: 2, aggregate: having('<') }), [], { text: LINGUISTIC }))).toBe('0A000');
    expect(await merge(inputs, names, spec({ visibleColumns: 2, aggregate: having('=') }), [], { text: LINGUISTIC })).toEqual([['a', '3']]);
  });

  it('refuses text keys when no text rules are given (fail closed)', async () => {
    const code = await failure(merge([[row('a', '1')], [row('B', '2')]], names, spec({ visibleColumns: 2, orderBy: [asc(0)] }), [], {}));
    expect(code).toBe('0A000');
  });
});
