import type { FieldDescription, RawRow } from '../../protocol/fields.js';
import type { Operand, Predicate } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';
import { compareFloat, compareNumeric, formatNumeric, numericFromBigInt, orderedType, parseFloatText, parseNumeric, TEXT_AS_BYTES, typeName } from '../values.js';
import type { KeyPurpose, Numeric, OrderedType, TextRules } from '../values.js';

/** SQL three-valued logic: true, false, or null (unknown). */
export type Truth = boolean | null;

/** A compiled HAVING predicate over merged rows. */
export type RowPredicate = (row: RawRow) => Truth;

/** A comparison side: yields a comparable value of a fixed kind, or null. */
interface Side {
  readonly type: OrderedType | null; // null for literal and parameter text
  value(row: RawRow): unknown;
}

const NUMERIC_FAMILIES = new Set(['integer', 'numeric', 'float']);

function toNumeric(value: unknown): Numeric {
  return typeof value === 'bigint' || typeof value === 'number' ? numericFromBigInt(BigInt(value)) : (value as Numeric);
}

function toFloat(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return Number(formatNumeric(value as Numeric));
}

function invalid(type: OrderedType, text: string): Error {
  return sgError('invalidTextRepresentation', { type: typeName(type.typeOid), value: text });
}

/** Coerces literal or parameter text to the column type's comparable value (integers compare as numeric, as `int > 2.5` does). */
function coerceText(type: OrderedType, text: string): unknown {
  switch (type.family) {
    case 'integer':
    case 'numeric': {
      const n = parseNumeric(text);
      if (n === null) throw invalid(type, text);
      return n;
    }
    case 'float': {
      const n = parseFloatText(text);
      if (n === null) throw invalid(type, text);
      return n;
    }
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (['t', 'true', 'y', 'yes', 'on', '1'].includes(t)) return 1;
      if (['f', 'false', 'n', 'no', 'off', '0'].includes(t)) return 0;
      throw invalid(type, text);
    }
    default:
      return orderedType(type.typeOid, 0, 'comparing', TEXT_AS_BYTES).decode(Buffer.from(text, 'utf8'));
  }
}

/** A comparator over two sides' values, choosing the common type as PostgreSQL's operator resolution would. */
function comparatorFor(left: Side, right: Side): (a: unknown, b: unknown) => number {
  const lt = left.type;
  const rt = right.type;
  if (lt !== null && rt !== null) {
    if (lt.family === rt.family && lt.family !== 'integer') return (a, b) => lt.compare(a, b);
    if (lt.family === 'integer' && rt.family === 'integer') return (a, b) => lt.compare(a, b);
    if (NUMERIC_FAMILIES.has(lt.family) && NUMERIC_FAMILIES.has(rt.family)) {
      return lt.family === 'float' || rt.family === 'float'
        ? (a, b) => compareFloat(toFloat(a), toFloat(b))
        : (a, b) => compareNumeric(toNumeric(a), toNumeric(b));
    }
    throw sgError('featureNotSupported', {
      feature: `comparing ${typeName(lt.typeOid)} with ${typeName(rt.typeOid)} in HAVING across shards`,
      hint: 'Cast one side so both have the same type.',
    });
  }
  if (lt === null && rt === null) return (a, b) => Buffer.compare(Buffer.from(a as string, 'utf8'), Buffer.from(b as string, 'utf8'));
  // One side is a column, the other text: the text was already coerced when the side was built.
  const type = (lt ?? rt)!;
  if (type.family === 'integer' || type.family === 'numeric') return (a, b) => compareNumeric(toNumeric(a), toNumeric(b));
  return (a, b) => type.compare(a, b);
}

const TESTS: Record<'=' | '<>' | '<' | '<=' | '>' | '>=', (c: number) => boolean> = {
  '=': (c) => c === 0,
  '<>': (c) => c !== 0,
  '<': (c) => c < 0,
  '<=': (c) => c <= 0,
  '>': (c) => c > 0,
  '>=': (c) => c >= 0,
};

/**
 * Compiles a HAVING predicate against the merged row description. Columns are
 * decoded by their type; literal and parameter text is coerced to the type of
 * the column it is compared with. Text compares as bytes only as far as
 * `text` allows: `=`/`<>` need byte equality, `<`… byte order; otherwise the
 * predicate is refused (0A000). `params` are the client's parameter values as text (0-based index); a
 * parameter that is not available as text is refused. Evaluation follows SQL
 * three-valued logic; a row is kept only when the predicate is true.
 */
export function compilePredicate(predicate: Predicate, fields: readonly FieldDescription[], params: readonly (string | null | undefined)[], text: TextRules): RowPredicate {
  const textOf = (operand: Operand): string | null => {
    if (operand.kind === 'literal') return operand.value;
    if (operand.kind === 'param') {
      const value = params[operand.index];
      if (value === undefined) {
        throw sgError('featureNotSupported', { feature: `HAVING parameter $${operand.index + 1} in binary format across shards`, hint: 'Send the parameter in text format.' });
      }
      return value;
    }
    throw sgError('internal', { reason: 'column operand has no text' });
  };
  // IS NULL compares nothing, so any collation will do.
  const columnSide = (operand: Operand, purpose: KeyPurpose | null): Side | null => {
    if (operand.kind !== 'column') return null;
    const field = fields[operand.column];
    if (field === undefined) throw sgError('internal', { reason: `HAVING refers to column ${operand.column} of ${fields.length}` });
    const type = orderedType(field.typeOid, field.format, purpose ?? 'comparing', purpose === null ? TEXT_AS_BYTES : text);
    const column = operand.column;
    return { type, value: (row) => (row[column] === null || row[column] === undefined ? null : type.decode(row[column]!)) };
  };
  const textSide = (operand: Operand, other: Side | null): Side => {
    const given = textOf(operand);
    const value = given === null ? null : other?.type ? coerceText(other.type, given) : given;
    return { type: null, value: () => value };
  };

  const compile = (p: Predicate): RowPredicate => {
    switch (p.kind) {
      case 'and': {
        const args = p.args.map(compile);
        return (row) => {
          let result: Truth = true;
          for (const arg of args) {
            const v = arg(row);
            if (v === false) return false;
            if (v === null) result = null;
          }
          return result;
        };
      }
      case 'or': {
        const args = p.args.map(compile);
        return (row) => {
          let result: Truth = false;
          for (const arg of args) {
            const v = arg(row);
            if (v === true) return true;
            if (v === null) result = null;
          }
          return result;
        };
      }
      case 'not': {
        const arg = compile(p.arg);
        return (row) => {
          const v = arg(row);
          return v === null ? null : !v;
        };
      }
      case 'isNull': {
        const side = columnSide(p.arg, null) ?? textSide(p.arg, null);
        return (row) => (side.value(row) === null) !== p.negated;
      }
      case 'compare': {
        const purpose: KeyPurpose = p.op === '=' || p.op === '<>' ? 'grouping' : 'comparing';
        if (purpose === 'comparing' && !text.order && p.left.kind !== 'column' && p.right.kind !== 'column') {
          throw sgError('featureNotSupported', { feature: 'comparing constants in HAVING across shards', hint: 'Compare an aggregate or group column, or filter by the sharding key.' });
        }
        const leftColumn = columnSide(p.left, purpose);
        const rightColumn = columnSide(p.right, purpose);
        const left = leftColumn ?? textSide(p.left, rightColumn);
        const right = rightColumn ?? textSide(p.right, leftColumn);
        const compare = comparatorFor(left, right);
        const test = TESTS[p.op];
        return (row) => {
          const a = left.value(row);
          const b = right.value(row);
          if (a === null || b === null) return null;
          return test(compare(a, b));
        };
      }
    }
  };
  return compile(predicate);
}
