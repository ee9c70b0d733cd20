import { describe, expect, it } from 'vitest';
import { arrayLiteral, fromResultText, toParamText } from '../../../src/library/js-values.js';

describe('library values', () => {
  it('turns JavaScript values into PostgreSQL text', () => {
    expect(toParamText(null)).toBeNull();
    expect(toParamText(undefined)).toBeNull();
    expect(toParamText(12n)).toBe('12');
    expect(toParamText(true)).toBe('true');
    expect(toParamText(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)))).toBe('2026-01-02T03:04:05.000Z');
    expect(toParamText(Buffer.from([1, 255]))).toBe('\\x01ff');
    expect(toParamText({ a: [1] })).toBe('{"a":[1]}');
  });

  it('writes array literals with quoting and nesting', () => {
    expect(arrayLiteral([1, null, 'a "b"', 'c\\d', [2, 3]])).toBe('{"1",NULL,"a \\"b\\"","c\\\\d",{"2","3"}}');
  });

  it('parses results like node-pg', () => {
    expect(fromResultText(23, '42')).toBe(42);
    expect(fromResultText(20, '9007199254740993')).toBe('9007199254740993');
    expect(fromResultText(16, 't')).toBe(true);
    expect(fromResultText(3802, '{"a":1}')).toEqual({ a: 1 });
    expect(fromResultText(25, 'x')).toBe('x');
  });
});
