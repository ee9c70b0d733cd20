import { describe, expect, it } from 'vitest';
import { StatementCache } from '../../../src/backend/statement-cache.js';

describe('StatementCache', () => {
  it('keys by SQL and parameter types', () => {
    expect(StatementCache.key('SELECT $1', [23])).not.toBe(StatementCache.key('SELECT $1', [25]));
    expect(StatementCache.key('SELECT 1', [])).toBe(StatementCache.key('SELECT 1', undefined));
  });

  it('evicts the least recently used beyond its bound', () => {
    const c = new StatementCache(2);
    const a = c.add('a').name;
    const b = c.add('b').name;
    expect(c.get('a')).toBe(a); // a is now the most recent
    const added = c.add('c');
    expect(added.evicted).toEqual([b]);
    expect(c.get('b')).toBeUndefined();
    expect(c.size).toBe(2);
  });

  it('gives every statement a new name, even after delete or clear', () => {
    const c = new StatementCache(4);
    const first = c.add('a').name;
    c.delete('a');
    const second = c.add('a').name;
    c.clear();
    const third = c.add('a').name;
    expect(new Set([first, second, third]).size).toBe(3);
    expect(c.size).toBe(1);
  });
});
