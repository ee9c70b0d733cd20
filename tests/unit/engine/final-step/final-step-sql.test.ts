import { describe, expect, it } from 'vitest';
import { copyTextRow, finalSql, needsFinalStep } from '../../../../src/engine/final-step/final-step-sql.js';
import { PgError } from '../../../../src/errors/pg-error.js';
import type { AggregateSpec } from '../../../../src/planner/plan.js';
import { asc, desc, field, OID, spec } from '../merge/fixtures.js';

const LINGUISTIC = { order: false, equality: true };
const BYTES = { order: true, equality: true };
const agg = (partial: Partial<AggregateSpec>): AggregateSpec => ({ groupBy: [], columns: [], having: null, ...partial });

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof PgError ? e.code : String(e);
  }
  return 'no error';
}

describe('needsFinalStep', () => {
  const fields = [field('name', OID.text), field('n', OID.int4)];
  it('is needed for text keys under a linguistic collation only', () => {
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, orderBy: [asc(0)] }), LINGUISTIC)).toBe(true);
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, orderBy: [asc(0)] }), BYTES)).toBe(false);
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, orderBy: [asc(1)] }), LINGUISTIC)).toBe(false);
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, orderBy: [{ ...asc(0), byteOrder: true }] }), LINGUISTIC)).toBe(false);
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, orderBy: [asc(0)], otherCollation: true }), BYTES)).toBe(true);
  });
  it('is needed for min/max of text, and for grouping text without byte equality', () => {
    expect(needsFinalStep(fields, spec({ visibleColumns: 1, aggregate: agg({ columns: [{ kind: 'max', column: 0 }] }) }), LINGUISTIC)).toBe(true);
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, aggregate: agg({ groupBy: [0], columns: [{ kind: 'count', column: 1 }] }) }), LINGUISTIC)).toBe(false);
    expect(needsFinalStep(fields, spec({ visibleColumns: 2, aggregate: agg({ groupBy: [0], columns: [{ kind: 'count', column: 1 }] }) }), { order: false, equality: false })).toBe(true);
  });
});

describe('finalSql', () => {
  it('orders with explicit NULL placement, cuts with OFFSET/LIMIT and shows the visible columns only', () => {
    const fields = [field('id', OID.int4), field('name', OID.text), field('h', OID.text)];
    expect(finalSql(fields, spec({ visibleColumns: 2, orderBy: [asc(2), desc(0)] }), 3, 10)).toBe(
      'SELECT c0 AS "id", c1 AS "name" FROM (SELECT c0, c1, c2 FROM pg_temp.sg_final) AS sg_rows ORDER BY sg_rows.c2 NULLS LAST, sg_rows.c0 DESC NULLS FIRST OFFSET 3 LIMIT 10',
    );
  });
  it('combines partial aggregates with the types one server gives, and HAVING with numbers kept as numbers', () => {
    const fields = [field('g', OID.text), field('count', OID.int8), field('sum', OID.int8), field('min', OID.text), field('avg', OID.numeric), field('s', OID.int8), field('c', OID.int8)];
    const s = spec({
      visibleColumns: 5,
      aggregate: agg({
        groupBy: [0],
        columns: [
          { kind: 'count', column: 1 },
          { kind: 'sum', column: 2 },
          { kind: 'min', column: 3 },
          { kind: 'avg', column: 4, sum: 5, count: 6 },
        ],
        having: { kind: 'and', args: [{ kind: 'compare', op: '>', left: { kind: 'column', column: 2 }, right: { kind: 'literal', value: '2.5' } }, { kind: 'compare', op: '<>', left: { kind: 'column', column: 0 }, right: { kind: 'param', index: 0 } }] },
      }),
      orderBy: [asc(0)],
    });
    expect(finalSql(fields, s, 0, null, ["it's"])).toBe(
      'SELECT c0 AS "g", c1 AS "count", c2 AS "sum", c3 AS "min", c4 AS "avg" FROM (SELECT * FROM (SELECT c0 AS c0, COALESCE(pg_catalog.sum(c1), 0)::pg_catalog.int8 AS c1, pg_catalog.sum(c2)::pg_catalog.int8 AS c2, pg_catalog.min(c3) AS c3, ' +
        'pg_catalog.sum(c5)::pg_catalog.numeric / NULLIF(pg_catalog.sum(c6), 0)::pg_catalog.numeric AS c4, NULL::pg_catalog.int8 AS c5, NULL::pg_catalog.int8 AS c6 FROM pg_temp.sg_final GROUP BY c0) AS sg_groups ' +
        "WHERE ((c2 > 2.5) AND (c0 <> 'it''s'))) AS sg_rows ORDER BY sg_rows.c0 NULLS LAST",
    );
  });
  it('refuses DISTINCT ordered by a hidden column (0A000)', () => {
    const fields = [field('name', OID.text), field('h', OID.text)];
    expect(code(() => finalSql(fields, spec({ visibleColumns: 1, distinct: true, orderBy: [asc(1)] }), 0, null))).toBe('0A000');
  });
});

describe('copyTextRow', () => {
  it('escapes backslash, tab, newline and carriage return, and writes NULL as \\N', () => {
    const row = copyTextRow([Buffer.from('a\\b\tc\nd\re'), null, Buffer.from('plain')]);
    expect(row.toString()).toBe('a\\\\b\\tc\\nd\\re\t\\N\tplain\n');
  });
});
