import { describe, expect, it } from 'vitest';
import { StatementCache } from '../../../src/backend/statement-cache.js';

describe('StatementCache', () => {
  it('keys by SQL and parameter types', () => {
    expect(StatementCache.key('SELECT $1', [23])).not.toBe(StatementCache.key('SELECT $1', [25]));
    expect(StatementCache.key('SELECT 1', [])).toBe(StatementCache.key('SELECT 1', undefined));
  });

  /** Names `key` (its second use). */
  const named = (c: StatementCache, key: string): { name: string; evicted: readonly string[] } => {
    expect(c.add(key)).toEqual({ name: '', evicted: [] });
    return c.add(key);
  };

  it('runs a statement unnamed on its first use and names it on its second', () => {
    const c = new StatementCache(4);
    expect(c.add('SELECT 1 WHERE x = 41')).toEqual({ name: '', evicted: [] });
    expect(c.get('SELECT 1 WHERE x = 41')).toBeUndefined();
    const second = c.add('SELECT 1 WHERE x = 41');
    expect(second.name).toMatch(/^sg_\d+$/);
    expect(c.get('SELECT 1 WHERE x = 41')).toBe(second.name);
    // Texts used once never take a name, so they evict nothing.
    for (let i = 0; i < 100; i++) expect(c.add(`SELECT 1 WHERE x = ${i}`).evicted).toEqual([]);
    expect(c.size).toBe(1);
    expect(c.get('SELECT 1 WHERE x = 41')).toBe(second.name);
  });

  it('evicts the least recently used beyond its bound', () => {
    const c = new StatementCache(2);
    const a = named(c, 'a').name;
    const b = named(c, 'b').name;
    expect(c.get('a')).toBe(a); // a is now the most recent
    const added = named(c, 'c');
    expect(added.evicted).toEqual([b]);
    expect(c.get('b')).toBeUndefined();
    expect(c.size).toBe(2);
  });

  it('gives every statement a new name, even after delete or clear', () => {
    const c = new StatementCache(4);
    const first = named(c, 'a').name;
    c.delete('a');
    const second = named(c, 'a').name;
    c.clear();
    const third = named(c, 'a').name;
    expect(new Set([first, second, third]).size).toBe(3);
    expect(c.size).toBe(1);
  });
});
