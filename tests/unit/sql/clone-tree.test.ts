import { beforeAll, describe, expect, it } from 'vitest';
import { cloneTree } from '../../../src/sql/ast.js';
import { deparseNode, initParser, parseSql } from '../../../src/sql/parser.js';

beforeAll(async () => {
  await initParser();
});

describe('cloneTree', () => {
  it('copies a parse tree deeply: equal, deparses alike, shares no object with the original', () => {
    const stmt = parseSql("SELECT a, sum(b) FROM t WHERE k IN (1, 2) AND s = 'x' GROUP BY a ORDER BY 2 DESC LIMIT 5")[0]!.stmt;
    const copy = cloneTree(stmt);
    expect(copy).toEqual(stmt);
    expect(deparseNode(copy)).toBe(deparseNode(stmt));
    const objects = new Set<unknown>();
    const collect = (v: unknown): void => {
      if (v === null || typeof v !== 'object') return;
      objects.add(v);
      for (const child of Object.values(v)) collect(child);
    };
    collect(stmt);
    const shared: unknown[] = [];
    const check = (v: unknown): void => {
      if (v === null || typeof v !== 'object') return;
      if (objects.has(v)) shared.push(v);
      for (const child of Object.values(v)) check(child);
    };
    check(copy);
    expect(shared).toEqual([]);
  });

  it('keeps own keys holding undefined, and arrays as arrays', () => {
    const copy = cloneTree({ a: undefined, b: [1, { c: 'x' }], d: null, e: false });
    expect(Object.keys(copy)).toEqual(['a', 'b', 'd', 'e']);
    expect(Array.isArray(copy.b)).toBe(true);
    expect(copy).toEqual({ a: undefined, b: [1, { c: 'x' }], d: null, e: false });
  });
});
