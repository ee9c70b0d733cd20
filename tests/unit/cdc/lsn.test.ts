import { describe, expect, it } from 'vitest';
import { compareLsn, dateToPgTimestamp, formatLsn, lsn, parseLsn, pgTimestampToDate, type PgTimestamp } from '../../../src/cdc/index.js';

describe('LSN helpers', () => {
  it('parses X/Y into a 64-bit position', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsn('16/b374d848')).toBe(0x16b374d848n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(0xffffffffffffffffn);
  });

  it('formats as PostgreSQL prints pg_lsn: upper case, no leading zeros', () => {
    expect(formatLsn(lsn(0n))).toBe('0/0');
    expect(formatLsn(lsn(0x16b374d848n))).toBe('16/B374D848');
    expect(formatLsn(lsn(0x100000000n))).toBe('1/0');
    expect(formatLsn(parseLsn('00000001/0000000A'))).toBe('1/A');
  });

  it('refuses malformed text with 08P01', () => {
    for (const bad of ['', '0', '0/', '/0', 'x/1', '123456789/0', '0/123456789', '-1/0', '0/0 '])
      expect(() => parseLsn(bad), bad).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(() => lsn(-1n)).toThrow(RangeError);
    expect(() => lsn(1n << 64n)).toThrow(RangeError);
  });

  it('compares beyond 2^53 exactly', () => {
    const a = parseLsn('FFFFFFFF/FFFFFFFE');
    const b = parseLsn('FFFFFFFF/FFFFFFFF');
    expect(compareLsn(a, b)).toBe(-1);
    expect(compareLsn(b, a)).toBe(1);
    expect(compareLsn(a, parseLsn('ffffffff/fffffffe'))).toBe(0);
    expect([b, parseLsn('1/0'), parseLsn('0/FFFFFFFF')].sort(compareLsn).map(formatLsn)).toEqual(['0/FFFFFFFF', '1/0', 'FFFFFFFF/FFFFFFFF']);
  });

  it('converts timestamps from the PostgreSQL epoch (2000-01-01 UTC)', () => {
    expect(pgTimestampToDate(0n as PgTimestamp).toISOString()).toBe('2000-01-01T00:00:00.000Z');
    expect(pgTimestampToDate(1_500_999n as PgTimestamp).toISOString()).toBe('2000-01-01T00:00:01.500Z');
    expect(pgTimestampToDate(-1_000_000n as PgTimestamp).toISOString()).toBe('1999-12-31T23:59:59.000Z');
    expect(dateToPgTimestamp(new Date('2000-01-02T00:00:00Z'))).toBe(86_400_000_000n);
  });
});
