import { describe, expect, it } from 'vitest';
import { compilePredicate } from '../../../../src/engine/merge/having.js';
import { TEXT_AS_BYTES } from '../../../../src/engine/values.js';
import type { Operand, Predicate } from '../../../../src/planner/plan.js';
import { PgError } from '../../../../src/errors/pg-error.js';
import { field, OID, row } from './fixtures.js';

// Merged row: g text, count int8, avg numeric, fsum float8, flag bool
const fields = [field('g', OID.text), field('count', OID.int8), field('avg', OID.numeric), field('fsum', OID.float8), field('flag', OID.bool)];
const col = (column: number): Operand => ({ kind: 'column', column });
const lit = (value: string | null): Operand => ({ kind: 'literal', value });
const param = (index: number): Operand => ({ kind: 'param', index });
const cmp = (op: '=' | '<>' | '<' | '<=' | '>' | '>=', left: Operand, right: Operand): Predicate => ({ kind: 'compare', op, left, right });

function evaluate(p: Predicate, r = row('b', '3', '2.5000000000000000', '0.5', 't'), params: (string | null | undefined)[] = []): boolean | null {
  return compilePredicate(p, fields, params, TEXT_AS_BYTES)(r);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof PgError ? err.code : `not a PgError: ${String(err)}`;
  }
  return 'no error';
}

describe('HAVING comparisons', () => {
  it.each([
    ['=', '3', true],
    ['<>', '3', false],
    ['<', '4', true],
    ['<=', '3', true],
    ['>', '3', false],
    ['>=', '4', false],
  ] as const)('count %s %s', (op, value, expected) => {
    expect(evaluate(cmp(op, col(1), lit(value)))).toBe(expected);
  });

  it('compares integers with decimal literals as numeric', () => {
    expect(evaluate(cmp('>', col(1), lit('2.5')))).toBe(true);
    expect(evaluate(cmp('<', lit('3.01'), col(1)))).toBe(false);
  });

  it('compares numeric exactly, ignoring display scale', () => {
    expect(evaluate(cmp('=', col(2), lit('2.5')))).toBe(true);
    expect(evaluate(cmp('>', col(2), lit('2.4999999999999999999999')))).toBe(true);
  });

  it('compares columns of different numeric types', () => {
    expect(evaluate(cmp('>', col(1), col(2)))).toBe(true);
    expect(evaluate(cmp('<', col(3), col(2)))).toBe(true);
  });

  it('compares floats, text and bool after coercing the literal', () => {
    expect(evaluate(cmp('=', col(3), lit('5e-1')))).toBe(true);
    expect(evaluate(cmp('>', col(0), lit('a')))).toBe(true);
    expect(evaluate(cmp('<', col(0), lit('B')))).toBe(false); // C collation: 'B' < 'b'
    expect(evaluate(cmp('=', col(4), lit('true')))).toBe(true);
  });

  it('takes parameters as text', () => {
    expect(evaluate(cmp('>=', col(1), param(0)), undefined, ['3'])).toBe(true);
    expect(evaluate(cmp('>=', col(1), param(1)), undefined, ['0', null])).toBeNull();
    expect(codeOf(() => evaluate(cmp('>=', col(1), param(0)), undefined, [undefined]))).toBe('0A000');
  });

  it('raises 22P02 for a literal that is not of the column type', () => {
    expect(codeOf(() => evaluate(cmp('>', col(1), lit('many'))))).toBe('22P02');
  });

  it('refuses comparisons between unrelated types', () => {
    expect(codeOf(() => evaluate(cmp('=', col(0), col(1))))).toBe('0A000');
  });
});

describe('HAVING three-valued logic', () => {
  const nullRow = row('b', '3', null, '0.5', 't');
  const unknown = cmp('>', col(2), lit('1'));
  const yes = cmp('=', col(1), lit('3'));
  const no = cmp('=', col(1), lit('4'));

  it('comparisons with NULL are unknown', () => {
    expect(evaluate(unknown, nullRow)).toBeNull();
    expect(evaluate(cmp('=', col(1), lit(null)))).toBeNull();
    expect(evaluate({ kind: 'not', arg: unknown }, nullRow)).toBeNull();
  });

  it('AND: false wins over unknown, unknown over true', () => {
    expect(evaluate({ kind: 'and', args: [unknown, no] }, nullRow)).toBe(false);
    expect(evaluate({ kind: 'and', args: [unknown, yes] }, nullRow)).toBeNull();
    expect(evaluate({ kind: 'and', args: [yes, yes] }, nullRow)).toBe(true);
  });

  it('OR: true wins over unknown, unknown over false', () => {
    expect(evaluate({ kind: 'or', args: [unknown, yes] }, nullRow)).toBe(true);
    expect(evaluate({ kind: 'or', args: [unknown, no] }, nullRow)).toBeNull();
    expect(evaluate({ kind: 'or', args: [no, no] }, nullRow)).toBe(false);
  });

  it('NOT and IS [NOT] NULL', () => {
    expect(evaluate({ kind: 'not', arg: no })).toBe(true);
    expect(evaluate({ kind: 'isNull', negated: false, arg: col(2) }, nullRow)).toBe(true);
    expect(evaluate({ kind: 'isNull', negated: true, arg: col(2) }, nullRow)).toBe(false);
    expect(evaluate({ kind: 'isNull', negated: false, arg: lit(null) })).toBe(true);
  });
});
