import { describe, expect, it } from 'vitest';
import { compareFloat, decodeFloat, encodeFloat4, encodeFloat8, formatFloat4, formatFloat8, parseFloatText } from '../../../src/engine/values.js';

describe('float8out', () => {
  // Expected texts are PostgreSQL 15's output with the default extra_float_digits.
  it.each([
    [1e15, '1e+15'],
    [1e14, '100000000000000'],
    [1.2345678901234568e17, '1.2345678901234568e+17'],
    [1e-5, '1e-05'],
    [0.0001, '0.0001'],
    [1e100, '1e+100'],
    [5e-324, '5e-324'],
    [0.1 + 0.2, '0.30000000000000004'],
    [3.75, '3.75'],
    [-2.5, '-2.5'],
    [0, '0'],
    [-0, '-0'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
  ])('formats %d as %s', (value, expected) => {
    expect(formatFloat8(value)).toBe(expected);
    expect(encodeFloat8(value, 0).toString()).toBe(expected);
  });

  it('encodes binary as IEEE 754 big-endian', () => {
    expect(encodeFloat8(1.5, 1)).toEqual(Buffer.from([0x3f, 0xf8, 0, 0, 0, 0, 0, 0]));
    expect(decodeFloat(encodeFloat8(-2.25, 1), 1)).toBe(-2.25);
  });
});

describe('float4out', () => {
  // PostgreSQL 15: 1e6::float4, 100000::float4, 1e-5::float4, 1.5e-4::float4, 1.1::float4 + 2.2::float4, 3.4e38::float4, '-0'::float4.
  it.each([
    [1e6, '1e+06'],
    [100000, '100000'],
    [123456, '123456'],
    [1e-5, '1e-05'],
    [1.5e-4, '0.00015'],
    [Math.fround(Math.fround(1.1) + Math.fround(2.2)), '3.3000002'],
    [3.4e38, '3.4e+38'],
    [-0, '-0'],
    [Math.fround(2 / 3), '0.6666667'],
  ])('formats %d as %s', (value, expected) => {
    expect(formatFloat4(value)).toBe(expected);
  });

  it('encodes binary as 4 bytes', () => {
    expect(encodeFloat4(1.5, 1)).toEqual(Buffer.from([0x3f, 0xc0, 0, 0]));
    expect(encodeFloat4(1.5, 0).toString()).toBe('1.5');
  });
});

describe('float parsing and order', () => {
  it('reads PostgreSQL float text', () => {
    expect(parseFloatText('NaN')).toBeNaN();
    expect(parseFloatText('-Infinity')).toBe(-Infinity);
    expect(parseFloatText('1e-05')).toBe(1e-5);
    expect(parseFloatText('x1')).toBeNull();
  });

  it('sorts NaN above everything and equal to itself, -0 equal to 0', () => {
    expect([NaN, Infinity, 1, -Infinity, NaN, 0].sort(compareFloat)).toEqual([-Infinity, 0, 1, Infinity, NaN, NaN]);
    expect(compareFloat(NaN, NaN)).toBe(0);
    expect(compareFloat(-0, 0)).toBe(0);
  });
});
