import type { FieldDescription, RawRow } from '../../protocol/fields.js';
import type { SortKey } from '../../planner/plan.js';
import { orderedType, TEXT_AS_BYTES } from '../values.js';
import type { OrderedType, TextRules } from '../values.js';

/** A row's sort-key values, decoded once (null for SQL NULL). */
export type SortValues = readonly unknown[];

/** ORDER BY compiled against a row description: decode keys once per row, then compare decoded keys. */
export interface RowOrder {
  decode(row: RawRow): SortValues;
  compare(a: SortValues, b: SortValues): number;
}

/**
 * Compiles sort keys for rows described by `fields`. Throws
 * `featureNotSupported` (0A000) when a key's type cannot be ordered here,
 * text included unless `text.order` (or the key's own `COLLATE "C"`) says
 * byte order is the collation's order.
 */
export function compileOrder(fields: readonly FieldDescription[], keys: readonly SortKey[], text: TextRules): RowOrder {
  const types: OrderedType[] = keys.map((key) => {
    const field = fields[key.column]!;
    return orderedType(field.typeOid, field.format, 'ordering', key.byteOrder === true ? TEXT_AS_BYTES : text);
  });
  return {
    decode(row) {
      const values: unknown[] = new Array<unknown>(keys.length);
      for (let i = 0; i < keys.length; i++) {
        const raw = row[keys[i]!.column];
        values[i] = raw === null || raw === undefined ? null : types[i]!.decode(raw);
      }
      return values;
    },
    compare(a, b) {
      for (let i = 0; i < keys.length; i++) {
        const x = a[i];
        const y = b[i];
        if (x === null || y === null) {
          if (x === y) continue;
          // NULL placement does not flip with DESC.
          return (x === null) === keys[i]!.nullsFirst ? -1 : 1;
        }
        const c = types[i]!.compare(x, y);
        if (c !== 0) return keys[i]!.descending ? -c : c;
      }
      return 0;
    },
  };
}

/** Sorts rows in memory, stably (equal rows keep their arrival order); keys are decoded once per row. */
export function sortRows(rows: readonly RawRow[], order: RowOrder): RawRow[] {
  const decorated = rows.map((row) => ({ row, keys: order.decode(row) }));
  decorated.sort((a, b) => order.compare(a.keys, b.keys));
  return decorated.map((d) => d.row);
}
