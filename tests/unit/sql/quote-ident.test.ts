import { beforeAll, describe, expect, it } from 'vitest';
import { initParser, parseSql } from '../../../src/sql/parser.js';
import { quoteIdent } from '../../../src/sql/ast.js';

describe('quoteIdent', () => {
  beforeAll(async () => {
    await initParser();
  });

  it('leaves plain lower-case names alone and quotes everything else', () => {
    expect(quoteIdent('orders')).toBe('orders');
    expect(quoteIdent('a_1$')).toBe('a_1$');
    expect(quoteIdent('Orders')).toBe('"Orders"');
    expect(quoteIdent('my table')).toBe('"my table"');
    expect(quoteIdent('say "hi"')).toBe('"say ""hi"""');
    expect(quoteIdent('1st')).toBe('"1st"');
  });

  it('quotes keywords, so that the name is read back as the same name', () => {
    for (const name of ['user', 'order', 'select', 'current_date', 'int', 'values', 'between', 'table']) {
      const sql = `SELECT ${quoteIdent(name)} FROM ${quoteIdent(name)}`;
      const tree = JSON.stringify(parseSql(sql));
      // Read back as a column reference and a table of that exact name, not a keyword or a function.
      expect(tree).toContain(`"ColumnRef":{"fields":[{"String":{"sval":"${name}"}}]`);
      expect(tree).toContain(`"relname":"${name}"`);
    }
  });
});
