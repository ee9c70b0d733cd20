import { describe, expect, it } from 'vitest';
import { LruCache } from '../../../src/sql/lru-cache.js';

/** The obvious LRU: a Map whose insertion order is the recency order. */
class ReferenceLru {
  readonly map = new Map<number, number>();
  constructor(readonly max: number) {}
  get(k: number): number | undefined {
    const v = this.map.get(k);
    if (v === undefined) return undefined;
    this.map.delete(k);
    this.map.set(k, v);
    return v;
  }
  set(k: number, v: number): void {
    if (this.map.has(k)) this.map.delete(k);
    else if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as number);
    this.map.set(k, v);
  }
}

describe('LruCache', () => {
  it('keeps exactly the entries a reference LRU keeps under random reads and writes', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (const max of [1, 2, 3, 17]) {
      const c = new LruCache<number, number>(max);
      const r = new ReferenceLru(max);
      const mismatches: number[] = [];
      for (let i = 0; i < 5000; i++) {
        const k = rand(max * 3);
        if (rand(3) === 0) {
          c.set(k, i);
          r.set(k, i);
        } else if (c.get(k) !== r.get(k)) mismatches.push(i);
        if (c.size !== r.map.size) mismatches.push(i);
      }
      expect(mismatches).toEqual([]);
      for (const [k, v] of r.map) expect(c.get(k)).toBe(v);
    }
  });

  it('keeps a key read on every call while newer keys push the others out', () => {
    const c = new LruCache<string, number>(3);
    c.set('hot', 0);
    for (let i = 0; i < 100; i++) {
      expect(c.get('hot')).toBe(0);
      c.set(`k${i}`, i);
    }
    expect(c.get('hot')).toBe(0);
    expect(c.get('k99')).toBe(99);
    expect(c.get('k98')).toBe(98);
    expect(c.get('k97')).toBeUndefined();
    expect(c.size).toBe(3);
  });

  it('replaces the value of an existing key and marks it recent', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    c.set('a', 3);
    c.set('c', 4);
    expect(c.get('a')).toBe(3);
    expect(c.get('b')).toBeUndefined();
  });

  it('is empty after clear and fills again', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    c.clear();
    expect(c.size).toBe(0);
    expect(c.get('a')).toBeUndefined();
    c.set('c', 3);
    c.set('d', 4);
    c.set('e', 5);
    expect([c.get('c'), c.get('d'), c.get('e')]).toEqual([undefined, 4, 5]);
  });
});
