import { describe, expect, it } from 'vitest';
import {
  addNumeric,
  compareNumeric,
  decodeNumericBinary,
  divideNumeric,
  encodeNumericBinary,
  formatNumeric,
  numericKey,
  parseNumeric,
} from '../../../src/engine/values.js';
import type { Numeric } from '../../../src/engine/values.js';
import { PgError } from '../../../src/errors/pg-error.js';

function num(text: string): Numeric {
  const n = parseNumeric(text);
  if (n === null) throw new Error(`bad numeric ${text}`);
  return n;
}

/** numeric_send bytes built by hand: ndigits, weight, sign, dscale, digits. */
function binary(weight: number, sign: number, dscale: number, digits: number[]): Buffer {
  const out = Buffer.alloc(8 + 2 * digits.length);
  out.writeInt16BE(digits.length, 0);
  out.writeInt16BE(weight, 2);
  out.writeUInt16BE(sign, 4);
  out.writeInt16BE(dscale, 6);
  digits.forEach((d, i) => out.writeInt16BE(d, 8 + 2 * i));
  return out;
}

describe('numeric text', () => {
  it.each(['0', '1', '-1', '12.340', '0.001', '-0.50', '123456789012345678901234567890.123456789', 'NaN', 'Infinity', '-Infinity'])(
    'round-trips %s exactly',
    (text) => {
      expect(formatNumeric(num(text))).toBe(text);
    },
  );

  it('reads literal forms numeric_in accepts', () => {
    expect(formatNumeric(num('1e3'))).toBe('1000');
    expect(formatNumeric(num(' +1.5e-3 '))).toBe('0.0015');
    expect(formatNumeric(num('.5'))).toBe('0.5');
    expect(parseNumeric('1.2.3')).toBeNull();
    expect(parseNumeric('abc')).toBeNull();
    expect(parseNumeric('')).toBeNull();
  });
});

describe('numeric binary', () => {
  it('decodes numeric_send layouts', () => {
    expect(formatNumeric(decodeNumericBinary(binary(1, 0, 3, [1, 2345, 6780])))).toBe('12345.678');
    expect(formatNumeric(decodeNumericBinary(binary(-1, 0x4000, 2, [5000])))).toBe('-0.50');
    expect(formatNumeric(decodeNumericBinary(binary(2, 0, 0, [1])))).toBe('100000000');
    expect(formatNumeric(decodeNumericBinary(binary(0, 0, 2, [])))).toBe('0.00');
    expect(formatNumeric(decodeNumericBinary(binary(0, 0xc000, 0, [])))).toBe('NaN');
    expect(formatNumeric(decodeNumericBinary(binary(0, 0xd000, 0, [])))).toBe('Infinity');
    expect(formatNumeric(decodeNumericBinary(binary(0, 0xf000, 0, [])))).toBe('-Infinity');
  });

  it('encodes what PostgreSQL sends', () => {
    expect(encodeNumericBinary(num('12345.678'))).toEqual(binary(1, 0, 3, [1, 2345, 6780]));
    expect(encodeNumericBinary(num('-0.50'))).toEqual(binary(-1, 0x4000, 2, [5000]));
    expect(encodeNumericBinary(num('100000000'))).toEqual(binary(2, 0, 0, [1]));
    expect(encodeNumericBinary(num('0.0001'))).toEqual(binary(-1, 0, 4, [1]));
  });

  it.each(['0', '0.00', '-7', '0.000000001', '98765432109876543210.0123456789', 'NaN', 'Infinity', '-Infinity'])('round-trips %s', (text) => {
    expect(formatNumeric(decodeNumericBinary(encodeNumericBinary(num(text))))).toBe(text);
  });
});

describe('numeric order and equality', () => {
  it('orders -Infinity < finite < Infinity < NaN', () => {
    const sorted = ['NaN', '1', '-Infinity', 'Infinity', '-2.5', '1.0001', '0'].map(num).sort(compareNumeric).map(formatNumeric);
    expect(sorted).toEqual(['-Infinity', '-2.5', '0', '1', '1.0001', 'Infinity', 'NaN']);
  });

  it('treats 1.0 and 1.00 and -0.0 and 0 as equal', () => {
    expect(compareNumeric(num('1.0'), num('1.00'))).toBe(0);
    expect(numericKey(num('1.0'))).toBe(numericKey(num('1.00')));
    expect(numericKey(num('-0.0'))).toBe(numericKey(num('0')));
    expect(numericKey(num('10'))).not.toBe(numericKey(num('1')));
  });
});

describe('numeric arithmetic', () => {
  it('adds exactly, keeping the larger display scale', () => {
    expect(formatNumeric(addNumeric(num('0.1'), num('0.20')))).toBe('0.30');
    expect(formatNumeric(addNumeric(num('99999999999999999999'), num('1')))).toBe('100000000000000000000');
    expect(formatNumeric(addNumeric(num('NaN'), num('1')))).toBe('NaN');
    expect(formatNumeric(addNumeric(num('Infinity'), num('-Infinity')))).toBe('NaN');
    expect(formatNumeric(addNumeric(num('Infinity'), num('5')))).toBe('Infinity');
  });

  // Expected texts are what PostgreSQL 15 prints for `a::numeric / b::numeric`.
  it.each([
    ['5', '2', '2.5000000000000000'],
    ['1', '3', '0.33333333333333333333'],
    ['3', '3', '1.00000000000000000000'],
    ['2', '3', '0.66666666666666666667'],
    ['12345678', '3', '4115226.000000000000'],
    ['1.50', '7', '0.21428571428571428571'],
    ['0.0001', '3', '0.000033333333333333333333'],
    ['-5', '2', '-2.5000000000000000'],
    ['-7', '3', '-2.3333333333333333'],
    ['99999', '10000', '9.9999000000000000'],
    ['100000000000000000000', '7', '14285714285714285714'],
    ['0.00000001', '3', '0.0000000033333333333333333333'],
    ['-2.5', '2', '-1.25000000000000000000'],
    ['0', '5', '0.00000000000000000000'],
    ['1', '10000', '0.000100000000000000000000'],
    ['9999', '1', '9999.0000000000000000'],
    ['12345.678', '1000', '12.3456780000000000'],
    ['-0.000005', '2', '-0.000002500000000000000000'],
  ])('%s / %s = %s as in PostgreSQL', (a, b, expected) => {
    expect(formatNumeric(divideNumeric(num(a), num(b)))).toBe(expected);
  });

  it('divides special values like PostgreSQL and refuses division by zero', () => {
    expect(formatNumeric(divideNumeric(num('NaN'), num('2')))).toBe('NaN');
    expect(formatNumeric(divideNumeric(num('-Infinity'), num('2')))).toBe('-Infinity');
    let caught: unknown;
    try {
      divideNumeric(num('1'), num('0'));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PgError);
    expect((caught as PgError).code).toBe('22012');
  });
});
