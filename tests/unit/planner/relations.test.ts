import type { Node, SelectStmt } from 'libpg-query';
import { describe, expect, it } from 'vitest';
import { RelationCollector } from '../../../src/planner/relations.js';
import { routeRelations, RouteError, ShardSpace } from '../../../src/planner/routing.js';
import { configs } from './configs.js';

/**
 * Shapes the grammar of today does not produce, built by hand: the collector
 * must refuse them (fail closed) rather than route by the tables it happened
 * to see. Shapes PostgreSQL does produce are golden cases.
 */

const config = configs.main!;
const space = new ShardSpace(config);
const accounts: Node = { RangeVar: { relname: 'accounts', inh: true, relpersistence: 'p' } };

function selectFrom(fromClause: Node[], extra: Partial<SelectStmt> = {}): SelectStmt {
  return { targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }], fromClause, op: 'SETOP_NONE', ...extra };
}

function refusalCode(sel: SelectStmt): string | null {
  const facts = new RelationCollector(config).select(sel).facts();
  try {
    routeRelations(facts, [], space);
    return null;
  } catch (e) {
    if (e instanceof RouteError) return e.error.code;
    throw e;
  }
}

describe('relation collector fails closed', () => {
  it('routes a plain table (the baseline of the cases below)', () => {
    expect(refusalCode(selectFrom([accounts]))).toBeNull();
  });

  it('refuses a FROM item of an unknown kind wrapping a table', () => {
    const unknown = { RangeSomethingNew: { relation: accounts } } as unknown as Node;
    expect(refusalCode(selectFrom([unknown]))).toBe('0A000');
  });

  it('refuses a TABLESAMPLE whose relation is not a plain table', () => {
    const sample = { RangeTableSample: { relation: { RangeSubselect: { subquery: { SelectStmt: selectFrom([accounts]) } } }, method: [{ String: { sval: 'system' } }] } } as Node;
    expect(refusalCode(selectFrom([sample]))).toBe('0A000');
  });

  it('refuses a table reference inside an expression, outside any subquery', () => {
    const sel = selectFrom([], { targetList: [{ ResTarget: { val: { FuncCall: { funcname: [{ String: { sval: 'f' } }], args: [accounts] } } } }] });
    expect(refusalCode(sel)).toBe('0A000');
  });

  it('refuses a FROM item nested inside a function in FROM', () => {
    const fn = { RangeFunction: { functions: [{ List: { items: [{ FuncCall: { funcname: [{ String: { sval: 'f' } }], args: [accounts] } }, {}] } }] } } as Node;
    expect(refusalCode(selectFrom([fn]))).toBe('0A000');
  });

  it('refuses a subquery in FROM that is not a SELECT', () => {
    const sub = { RangeSubselect: { subquery: { SomethingNewStmt: { relation: accounts } } } } as unknown as Node;
    expect(refusalCode(selectFrom([sub]))).toBe('0A000');
  });
});
