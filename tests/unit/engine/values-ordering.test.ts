import { describe, expect, it } from 'vitest';
import { compareNullable, orderedType, TEXT_AS_BYTES, TEXT_UNKNOWN, TypeOid } from '../../../src/engine/values.js';
import type { FormatCode } from '../../../src/protocol/fields.js';
import { PgError } from '../../../src/errors/pg-error.js';

/** Sorts text values by a type's text-format order. */
function sortText(typeOid: number, values: string[]): string[] {
  const type = orderedType(typeOid, 0, 'ordering', TEXT_AS_BYTES);
  return [...values].sort((a, b) => type.compare(type.decode(Buffer.from(a)), type.decode(Buffer.from(b))));
}

function keyOf(typeOid: number, format: FormatCode, raw: Buffer): string {
  const type = orderedType(typeOid, format, 'grouping', TEXT_AS_BYTES);
  return type.key(type.decode(raw));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof PgError ? err.code : `not a PgError: ${String(err)}`;
  }
  return undefined;
}

describe('text format ordering', () => {
  it('orders integers numerically, not lexically', () => {
    expect(sortText(TypeOid.int4, ['10', '-3', '2', '-20', '0'])).toEqual(['-20', '-3', '0', '2', '10']);
    expect(sortText(TypeOid.int8, ['9223372036854775807', '-9223372036854775808', '9223372036854775806'])).toEqual([
      '-9223372036854775808',
      '9223372036854775806',
      '9223372036854775807',
    ]);
    expect(sortText(TypeOid.oid, ['4294967295', '17'])).toEqual(['17', '4294967295']);
  });

  it('orders numeric exactly, with NaN last', () => {
    expect(sortText(TypeOid.numeric, ['NaN', '10.5', '-1', '10.05', '100000000000000000000.1', '100000000000000000000', 'Infinity'])).toEqual([
      '-1',
      '10.05',
      '10.5',
      '100000000000000000000',
      '100000000000000000000.1',
      'Infinity',
      'NaN',
    ]);
  });

  it('orders floats with NaN greater than Infinity', () => {
    expect(sortText(TypeOid.float8, ['NaN', '1e+100', '-Infinity', '2.5', 'Infinity', '-0'])).toEqual(['-Infinity', '-0', '2.5', '1e+100', 'Infinity', 'NaN']);
  });

  it('orders text as UTF-8 bytes (C collation)', () => {
    expect(sortText(TypeOid.text, ['b', 'B', 'a', 'é', 'ab', ''])).toEqual(['', 'B', 'a', 'ab', 'b', 'é']);
    expect(sortText(TypeOid.varchar, ['z', 'Z'])).toEqual(['Z', 'z']);
  });

  it('ignores trailing spaces of char(n)', () => {
    const type = orderedType(TypeOid.bpchar, 0, 'ordering', TEXT_AS_BYTES);
    expect(type.compare(type.decode(Buffer.from('ab  ')), type.decode(Buffer.from('ab')))).toBe(0);
    expect(keyOf(TypeOid.bpchar, 0, Buffer.from('ab  '))).toBe(keyOf(TypeOid.bpchar, 0, Buffer.from('ab')));
  });

  it('orders dates including BC, far future and infinity', () => {
    expect(sortText(TypeOid.date, ['2024-01-02', 'infinity', '0044-03-15 BC', '12000-01-01', '-infinity', '2023-12-31', '0001-01-01'])).toEqual([
      '-infinity',
      '0044-03-15 BC',
      '0001-01-01',
      '2023-12-31',
      '2024-01-02',
      '12000-01-01',
      'infinity',
    ]);
  });

  it('orders timestamptz by instant, whatever offset was printed', () => {
    // 01:30-05 is 06:30 UTC, 02:10-04 is 06:10 UTC, 12:05+05:30 is 06:35 UTC.
    expect(sortText(TypeOid.timestamptz, ['2024-03-10 01:30:00-05', '2024-03-10 02:10:00-04', '2024-03-10 06:20:00+00', '2024-03-10 12:05:00+05:30'])).toEqual([
      '2024-03-10 02:10:00-04',
      '2024-03-10 06:20:00+00',
      '2024-03-10 01:30:00-05',
      '2024-03-10 12:05:00+05:30',
    ]);
  });

  it('orders timestamp and time with fractions', () => {
    expect(sortText(TypeOid.timestamp, ['2024-01-01 00:00:00.5', '2024-01-01 00:00:00.25', '2024-01-01 00:00:00', '2023-12-31 23:59:59.999999'])).toEqual([
      '2023-12-31 23:59:59.999999',
      '2024-01-01 00:00:00',
      '2024-01-01 00:00:00.25',
      '2024-01-01 00:00:00.5',
    ]);
    expect(sortText(TypeOid.time, ['10:00:00.5', '09:59:59', '10:00:00', '24:00:00'])).toEqual(['09:59:59', '10:00:00', '10:00:00.5', '24:00:00']);
  });

  it('refuses date text that is not in the ISO DateStyle', () => {
    expect(codeOf(() => orderedType(TypeOid.date, 0, 'ordering', TEXT_AS_BYTES).decode(Buffer.from('01/02/2024')))).toBe('0A000');
    expect(codeOf(() => orderedType(TypeOid.timestamptz, 0, 'ordering', TEXT_AS_BYTES).decode(Buffer.from('2024-01-01 00:00:00')))).toBe('0A000');
  });

  it('orders bool, uuid and bytea', () => {
    expect(sortText(TypeOid.bool, ['t', 'f'])).toEqual(['f', 't']);
    expect(sortText(TypeOid.uuid, ['ffffffff-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000001'])).toEqual([
      '00000000-0000-0000-0000-000000000001',
      'ffffffff-0000-0000-0000-000000000000',
    ]);
    expect(sortText(TypeOid.bytea, ['\\x0102', '\\x01', '\\xff'])).toEqual(['\\x01', '\\x0102', '\\xff']);
    const bytea = orderedType(TypeOid.bytea, 0, 'ordering', TEXT_AS_BYTES);
    expect(bytea.compare(bytea.decode(Buffer.from('\\001\\\\a')), bytea.decode(Buffer.from('\\x015c61')))).toBe(0);
  });
});

describe('binary format ordering', () => {
  it('decodes to the same values as text', () => {
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(-5);
    expect(orderedType(TypeOid.int4, 1, 'ordering', TEXT_AS_BYTES).decode(int4)).toBe(-5);
    const int8 = Buffer.alloc(8);
    int8.writeBigInt64BE(-5n);
    expect(orderedType(TypeOid.int8, 1, 'ordering', TEXT_AS_BYTES).decode(int8)).toBe(orderedType(TypeOid.int8, 0, 'ordering', TEXT_AS_BYTES).decode(Buffer.from('-5')));
    const date = Buffer.alloc(4);
    date.writeInt32BE(1);
    expect(orderedType(TypeOid.date, 1, 'ordering', TEXT_AS_BYTES).decode(date)).toBe(orderedType(TypeOid.date, 0, 'ordering', TEXT_AS_BYTES).decode(Buffer.from('2000-01-02')));
    const ts = Buffer.alloc(8);
    ts.writeBigInt64BE(86_400_000_000n + 1_500_000n);
    expect(orderedType(TypeOid.timestamptz, 1, 'ordering', TEXT_AS_BYTES).decode(ts)).toBe(orderedType(TypeOid.timestamptz, 0, 'ordering', TEXT_AS_BYTES).decode(Buffer.from('2000-01-02 01:00:01.5+01')));
    expect(orderedType(TypeOid.timestamp, 1, 'ordering', TEXT_AS_BYTES).decode(Buffer.from('7fffffffffffffff', 'hex'))).toBe(Infinity);
  });

  it('orders binary floats and keys -0 with 0', () => {
    const type = orderedType(TypeOid.float8, 1, 'ordering', TEXT_AS_BYTES);
    const enc = (v: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return b;
    };
    expect(type.compare(type.decode(enc(NaN)), type.decode(enc(Infinity)))).toBe(1);
    expect(keyOf(TypeOid.float8, 1, enc(-0))).toBe(keyOf(TypeOid.float8, 1, enc(0)));
  });
});

describe('unsupported types', () => {
  it('refuses interval and unknown types with 0A000', () => {
    expect(codeOf(() => orderedType(TypeOid.interval, 0, 'ordering', TEXT_AS_BYTES))).toBe('0A000');
    expect(codeOf(() => orderedType(114, 0, 'grouping', TEXT_AS_BYTES))).toBe('0A000');
    expect(codeOf(() => orderedType(TypeOid.interval, 1, 'ordering', TEXT_AS_BYTES))).toBe('0A000');
  });
});

describe('text under a collation that is not byte order', () => {
  const textTypes = [TypeOid.text, TypeOid.varchar, TypeOid.bpchar, TypeOid.name];
  it('refuses ordering and comparing text unless the collation orders as bytes (0A000)', () => {
    for (const oid of textTypes) {
      expect(codeOf(() => orderedType(oid, 0, 'ordering', TEXT_UNKNOWN))).toBe('0A000');
      expect(codeOf(() => orderedType(oid, 0, 'comparing', { order: false, equality: true }))).toBe('0A000');
      expect(codeOf(() => orderedType(oid, 0, 'grouping', TEXT_UNKNOWN))).toBe('0A000');
    }
  });
  it('groups text by byte equality when only equality is known (deterministic collations)', () => {
    const type = orderedType(TypeOid.text, 0, 'grouping', { order: false, equality: true });
    expect(type.key(type.decode(Buffer.from('a')))).not.toBe(type.key(type.decode(Buffer.from('A'))));
  });
  it('keeps ordering types without a collation whatever the text rules', () => {
    for (const oid of [TypeOid.int4, TypeOid.numeric, TypeOid.bytea, TypeOid.uuid, TypeOid.date, TypeOid.char]) {
      expect(orderedType(oid, 0, 'ordering', TEXT_UNKNOWN).typeOid).toBe(oid);
    }
  });
});

describe('NULL placement', () => {
  const type = orderedType(TypeOid.int4, 0, 'ordering', TEXT_AS_BYTES);
  it('puts NULLs first or last independently of DESC', () => {
    expect(compareNullable(type, null, 1, false, false)).toBe(1);
    expect(compareNullable(type, null, 1, false, true)).toBe(-1);
    expect(compareNullable(type, null, 1, true, true)).toBe(-1);
    expect(compareNullable(type, null, 1, true, false)).toBe(1);
    expect(compareNullable(type, null, null, true, false)).toBe(0);
    expect(compareNullable(type, 2, 1, true, false)).toBe(-1);
  });
});
