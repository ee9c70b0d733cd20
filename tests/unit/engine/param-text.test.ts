import { describe, expect, it } from 'vitest';
import { paramToText, routingParams } from '../../../src/engine/param-text.js';

function numeric(ndigits: number[], weight: number, sign: number, dscale: number): Buffer {
  const b = Buffer.alloc(8 + 2 * ndigits.length);
  b.writeInt16BE(ndigits.length, 0);
  b.writeInt16BE(weight, 2);
  b.writeUInt16BE(sign, 4);
  b.writeInt16BE(dscale, 6);
  ndigits.forEach((d, i) => b.writeInt16BE(d, 8 + 2 * i));
  return b;
}

describe('paramToText', () => {
  it('converts binary integers', () => {
    const b2 = Buffer.alloc(2);
    b2.writeInt16BE(-7);
    const b4 = Buffer.alloc(4);
    b4.writeInt32BE(123456);
    const b8 = Buffer.alloc(8);
    b8.writeBigInt64BE(-9007199254740993n);
    expect([paramToText(21, b2), paramToText(23, b4), paramToText(20, b8)]).toEqual(['-7', '123456', '-9007199254740993']);
  });

  it('converts binary numeric as PostgreSQL prints it', () => {
    expect(paramToText(1700, numeric([1, 2345], 1, 0, 0))).toBe('12345');
    expect(paramToText(1700, numeric([12, 3400], 0, 0x4000, 3))).toBe('-12.340');
    expect(paramToText(1700, numeric([5000], -1, 0, 1))).toBe('0.5');
    expect(paramToText(1700, numeric([], 0, 0, 2))).toBe('0.00');
    expect(paramToText(1700, numeric([], 0, 0xc000, 0))).toBe('NaN');
  });

  it('converts uuid, text, date and timestamp', () => {
    expect(paramToText(2950, Buffer.from('0123456789abcdef0123456789abcdef', 'hex'))).toBe('01234567-89ab-cdef-0123-456789abcdef');
    expect(paramToText(25, Buffer.from('héllo'))).toBe('héllo');
    const d = Buffer.alloc(4);
    d.writeInt32BE(-1);
    expect(paramToText(1082, d)).toBe('1999-12-31');
    const ts = Buffer.alloc(8);
    ts.writeBigInt64BE(1_500_000n);
    expect(paramToText(1114, ts)).toBe('2000-01-01 00:00:01.5');
    ts.writeBigInt64BE(-1n);
    expect(paramToText(1184, ts)).toBe('1999-12-31 23:59:59.999999+00');
  });

  it('gives undefined for unknown types and malformed values', () => {
    expect(paramToText(700, Buffer.alloc(4))).toBeUndefined();
    expect(paramToText(23, Buffer.alloc(3))).toBeUndefined();
  });
});

describe('routingParams', () => {
  it('decodes text parameters and converts binary ones by type', () => {
    const b4 = Buffer.alloc(4);
    b4.writeInt32BE(42);
    const out = routingParams({ sql: 'x', params: [Buffer.from('7'), b4, null, Buffer.alloc(4)], paramFormats: [0, 1, 0, 1], paramTypes: [0, 23, 0, 700] });
    expect(out).toEqual(['7', '42', null, undefined]);
  });
});
