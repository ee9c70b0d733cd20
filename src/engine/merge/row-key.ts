import type { FieldDescription, RawRow } from '../../protocol/fields.js';
import { orderedType } from '../values.js';
import type { KeyPurpose, TextRules } from '../values.js';

/**
 * Builds a function giving equal strings for rows whose `columns` are equal
 * the way GROUP BY and DISTINCT see them: NULLs equal each other, numeric and
 * float values compare by value (1.0 = 1.00, -0 = 0), char(n) ignores trailing
 * spaces. Throws `featureNotSupported` (0A000) for types without such a rule,
 * text included when `text.equality` is false (a nondeterministic collation).
 */
export function compileRowKey(fields: readonly FieldDescription[], columns: readonly number[], text: TextRules, purpose: KeyPurpose = 'grouping'): (row: RawRow) => string {
  const types = columns.map((column) => {
    const field = fields[column]!;
    return orderedType(field.typeOid, field.format, purpose, text);
  });
  return (row) => {
    let key = '';
    for (let i = 0; i < columns.length; i++) {
      const raw = row[columns[i]!];
      if (raw === null || raw === undefined) {
        key += 'N';
      } else {
        const type = types[i]!;
        const part = type.key(type.decode(raw));
        // Length-prefixed so that no two different column lists give the same key.
        key += `${part.length}:${part}`;
      }
    }
    return key;
  };
}
