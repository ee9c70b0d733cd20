import { beforeAll, describe, expect, it } from 'vitest';
import { initParser } from '../../../src/sql/parser.js';
import { singleStatement } from '../../../src/sql/single-statement.js';
import { splitStatements } from '../../../src/sql/split-statements.js';

beforeAll(async () => {
  await initParser();
});

/** Statements with every construct the scan must step over correctly. */
const BODIES = [
  'SELECT 1',
  'SELECT abalance FROM pgbench_accounts WHERE aid = 48213',
  "SELECT ';' AS semi, 'it''s' AS q",
  'SELECT "a;b" FROM "T""x"',
  'SELECT 1 /* ; */ + 2',
  'SELECT 1 /* nested /* ; */ still */ + 2',
  'SELECT 1 -- ; trailing\n + 2',
  "/* shardgate:shard=s1 */ SELECT * FROM t WHERE k = 'x'",
  '-- leading comment\nSELECT 2',
  'UPDATE t SET v = v + $1 WHERE id = $2',
  "INSERT INTO t (a, b) VALUES (1, 'x'), (2, U&'d\\0061t')",
  "SELECT B'101', X'ff', N'n'",
  'SELECT a$b FROM t',
  "SELECT E'a\\';b'",
  'DO $$ BEGIN PERFORM 1; END $$',
  'SELECT $tag$;$tag$',
  'SELECT\u00a01',
];

const WRAPPERS: ((s: string) => string)[] = [
  (s) => s,
  (s) => `${s};`,
  (s) => `  ${s} ;  `,
  (s) => `\n\t${s};;\n`,
  (s) => `${s}; -- done`,
  (s) => `${s} /* c */;`,
  (s) => `${s}; /* c */ ;`,
  (s) => `${s} -- no semicolon`,
  (s) => `${s} -- ends at a carriage return\r;`,
  (s) => `${s}; SELECT 2`,
  (s) => `${s}; ${s}`,
  (s) => `; ${s}`,
];

describe('singleStatement', () => {
  it('agrees with the parser-based split wherever it answers, and answers for the common statements', () => {
    let answered = 0;
    for (const body of BODIES) {
      for (const wrap of WRAPPERS) {
        const text = wrap(body);
        const fast = singleStatement(text);
        if (fast === null) continue;
        answered++;
        let split;
        try {
          split = splitStatements(text);
        } catch {
          // A syntax error: the statement's own parse reports it (with its position shifted by the offset).
          continue;
        }
        expect([fast], JSON.stringify(text)).toEqual(split);
        expect(text.slice(fast.offset, fast.offset + fast.sql.length)).toBe(fast.sql);
      }
    }
    expect(answered).toBeGreaterThan(80);
    expect(singleStatement('SELECT abalance FROM pgbench_accounts WHERE aid = 48213;')).toEqual({
      sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213',
      offset: 0,
    });
  });

  it('leaves to the parser what it does not model: several statements, dollar quotes, E strings, blanks only', () => {
    for (const text of [
      'SELECT 1; SELECT 2',
      // A -- comment ends at a carriage return too, as in PostgreSQL: a second statement follows it.
      'SELECT 1 -- c\r; SELECT 2',
      '; SELECT 1',
      'DO $$ BEGIN PERFORM 1; END $$',
      "SELECT E'a\\';b'",
      'SELECT a$b FROM t',
      '',
      '   ',
      '-- only a comment',
      '/* unterminated',
      "SELECT 'unterminated",
      '\u00a0SELECT 1',
    ]) {
      expect(singleStatement(text), JSON.stringify(text)).toBeNull();
    }
  });

  it('keeps a leading comment (a shard hint) with its statement, as the parser does', () => {
    const text = ' /* shardgate:shard=s1 */ SELECT 2;';
    expect(singleStatement(text)).toEqual({ sql: '/* shardgate:shard=s1 */ SELECT 2', offset: 1 });
    expect(splitStatements(text)).toEqual([{ sql: '/* shardgate:shard=s1 */ SELECT 2', offset: 1 }]);
  });
});
