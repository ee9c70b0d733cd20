import { describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { canonicalKey, compareKeys, hashShardIndex, integerKey, keyHash, modShardIndex, rangeShard, rangeShardsOverlapping } from '../../../src/planner/shard-key.js';

describe('hash rule', () => {
  // Pinned: rows already stored depend on these values. A change here moves data.
  it.each([
    ['1', 1428125071, 3],
    ['42', 686566589, 1],
    ['12345', 1900009723, 3],
    ['alice', 3927234078, 2],
    ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 339387023, 3],
    ['2026-01-01', 816680218, 2],
    ['é', 2387039943, 3],
    ['', 2872998923, 3],
  ])('keyHash(%j) = %i, shard %i of 4', (key, hash, shard) => {
    expect(keyHash(key)).toBe(hash);
    expect(hashShardIndex(key, 4)).toBe(shard);
  });

  it('hashes equal integers written differently to the same value', () => {
    expect(keyHash('+0042')).toBe(keyHash('42'));
    expect(keyHash(' 42 ')).toBe(keyHash('42'));
    expect(keyHash('-0')).toBe(keyHash('0'));
  });

  it('spreads sequential integers evenly', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 1; i <= 20_000; i++) counts[hashShardIndex(String(i), 4)]! += 1;
    for (const c of counts) expect(c).toBeGreaterThan(4_500);
  });
});

describe('canonicalKey', () => {
  it.each([
    ['007', '7'],
    ['+5', '5'],
    ['-0', '0'],
    ['-12', '-12'],
    ['1.50', '1.5'],
    ['2.0', '2'],
    ['-0.0', '0'],
    ['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
    ['{a0eebc999c0b4ef8bb6d6bb9bd380a11}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
    ['2026-01-01', '2026-01-01'],
    ['Alice', 'Alice'],
  ])('%j → %j', (input, out) => {
    expect(canonicalKey(input)).toBe(out);
  });
});

describe('mod rule', () => {
  it('takes the non-negative remainder', () => {
    expect(modShardIndex('5', 4)).toBe(1);
    expect(modShardIndex('-3', 4)).toBe(1);
    expect(modShardIndex('-4', 4)).toBe(0);
    expect(modShardIndex('+008', 4)).toBe(0);
  });
  it('is exact beyond 2^53', () => {
    expect(modShardIndex('9007199254740993', 4)).toBe(1);
    expect(modShardIndex('-9007199254740993', 4)).toBe(3);
  });
  it('rejects non-integers', () => {
    expect(modShardIndex('1.5', 4)).toBeNull();
    expect(modShardIndex('5e-1', 4)).toBeNull();
    expect(modShardIndex('abc', 4)).toBeNull();
    expect(modShardIndex('.', 4)).toBeNull();
    expect(modShardIndex('e5', 4)).toBeNull();
  });
  it('routes an integral number written with a fraction or an exponent as that integer', () => {
    for (const t of ['5.00', '5e0', '5.', '0.5e1', '500e-2', '+05.0', ' 5E+0 ']) expect(modShardIndex(t, 4), t).toBe(1);
    expect(modShardIndex('-3.000', 4)).toBe(1);
    expect(modShardIndex('9007199254740993.0', 4)).toBe(1);
    expect(modShardIndex('1e20', 7)).toBe(Number(10n ** 20n % 7n));
  });
  it('tells an integral number from a fraction and from text', () => {
    expect(integerKey('5.00')).toBe('5');
    expect(integerKey('-0.0e3')).toBe('0');
    expect(integerKey('-12e1')).toBe('-120');
    expect(integerKey('5.5')).toBe('fraction');
    expect(integerKey('1e-400')).toBe('fraction');
    expect(integerKey('1e999999')).toBeNull();
    expect(integerKey('five')).toBeNull();
  });
});

describe('range rule', () => {
  const ranges = [
    { below: '2026-01-01', shard: shardName('s0') },
    { below: '2027-01-01', shard: shardName('s1') },
    { shard: shardName('s2') },
  ];
  const numeric = [{ below: 100, shard: shardName('a') }, { below: 200, shard: shardName('b') }];

  it('picks the first entry whose below is greater', () => {
    expect(rangeShard('2025-12-31', ranges)).toBe('s0');
    expect(rangeShard('2026-01-01', ranges)).toBe('s1');
    expect(rangeShard('2030-01-01', ranges)).toBe('s2');
    expect(rangeShard('99', numeric)).toBe('a');
    expect(rangeShard('100', numeric)).toBe('b');
    expect(rangeShard('250', numeric)).toBeNull();
  });
  it('compares numerically when both sides are numbers', () => {
    expect(compareKeys('9', 10)).toBe(-1);
    expect(compareKeys('9', '10')).toBe(-1);
    expect(compareKeys('b', 'a')).toBe(1);
  });
  it('finds the entries an interval overlaps', () => {
    const lo = (value: string, inclusive = true) => ({ value, inclusive });
    expect(rangeShardsOverlapping(lo('2025-06-01'), lo('2026-03-01'), ranges)).toEqual(['s0', 's1']);
    expect(rangeShardsOverlapping(lo('2026-01-01'), null, ranges)).toEqual(['s1', 's2']);
    expect(rangeShardsOverlapping(null, lo('2026-01-01', false), ranges)).toEqual(['s0']);
    expect(rangeShardsOverlapping(null, lo('2026-01-01'), ranges)).toEqual(['s0', 's1']);
    expect(rangeShardsOverlapping(lo('150'), lo('500'), numeric)).toEqual(['b']);
  });
});
