import type { Node } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { initParser, parseSql } from '../../../src/sql/parser.js';
import { bindLiteralSlots, statementShape } from '../../../src/sql/statement-shape.js';

beforeAll(async () => {
  await initParser();
});

function parseOne(sql: string): Node {
  const parsed = parseSql(sql);
  expect(parsed).toHaveLength(1);
  return (parsed[0] as { stmt: Node }).stmt;
}

/** A small seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s >>> 13;
    return (s >>> 0) / 2 ** 32;
  };
}

describe('statementShape', () => {
  it('takes the literals out of the text, with their classes and values as the parser reads them', () => {
    const s = statementShape("SELECT abalance FROM pgbench_accounts WHERE aid = 48213 AND name = 'O''Brien' AND x = -7 AND y = 1.50 AND z = 2147483648;");
    expect(s).not.toBeNull();
    expect(s?.key).toBe("SELECT abalance FROM pgbench_accounts WHERE aid = \0i AND name = \0s AND x = \0I AND y = \0f AND z = \0f;");
    expect(s?.literals).toEqual(['48213', "O'Brien", '-7', '1.50', '2147483648']);
    expect(s?.classes).toBe('isIff');
  });

  it('gives texts that differ only in constants of the same class the same key', () => {
    const a = statementShape("UPDATE t SET a = 'x', b = 12 WHERE id = 5");
    const b = statementShape("UPDATE t SET a = 'it''s \\ here', b = 0 WHERE id = 000123");
    expect(a?.key).toBe(b?.key);
    expect(b?.literals).toEqual(["it's \\ here", '0', '123']);
  });

  it('separates classes that are different tokens for the parser', () => {
    const keys = ['SELECT * FROM t WHERE id = 5', 'SELECT * FROM t WHERE id = 5000000000', "SELECT * FROM t WHERE id = '5'", 'SELECT * FROM t WHERE id = -5'].map((q) => statementShape(q)?.key);
    expect(new Set(keys).size).toBe(4);
    // An integer beyond int4 is the same token as a decimal (FCONST).
    expect(statementShape('SELECT * FROM t WHERE id = 5.0')?.key).toBe(keys[1]);
  });

  it('keeps TRUE, FALSE, NULL, quoted identifiers and comments in the key', () => {
    const s = statementShape('/* shardgate:shard=s1 */ SELECT "a""b" FROM t -- note\nWHERE c IS NULL AND d = TRUE AND id = 3');
    expect(s?.key).toBe('/* shardgate:shard=s1 */ SELECT "a""b" FROM t -- note\nWHERE c IS NULL AND d = TRUE AND id = \0i');
    expect(s?.literals).toEqual(['3']);
  });

  it('reads a minus after an operator, a parenthesis, a comma or a keyword as part of the number, and after an operand as a subtraction', () => {
    expect(statementShape('SELECT a FROM t WHERE a IN (-1, -2.5) AND b = a -3')?.literals).toEqual(['-1', '-2.5', '3']);
    expect(statementShape('SELECT -0, -00, 0 FROM t')?.literals).toEqual(['0', '0', '0']);
  });

  const fallbacks: [string, string][] = [
    ['parameters', 'SELECT * FROM t WHERE id = $1'],
    ['dollar quotes', 'SELECT $$x$$ FROM t WHERE id = 1'],
    ['E strings', "SELECT * FROM t WHERE a = E'x' AND id = 1"],
    ['U& strings', "SELECT * FROM t WHERE a = U&'x' AND id = 1"],
    ['U& identifiers', 'SELECT U&"x" FROM t WHERE id = 1'],
    ['bit strings', "SELECT * FROM t WHERE a = B'101' AND id = 1"],
    ['hex strings', "SELECT * FROM t WHERE a = X'1F' AND id = 1"],
    ['national strings', "SELECT * FROM t WHERE a = N'x' AND id = 1"],
    ['strings continued on the next line', "SELECT * FROM t WHERE a = 'x'\n'y' AND id = 1"],
    ['a hint inside a string', "SELECT '/* shardgate:shard=s1 */' FROM t WHERE id = 1"],
    ['hex numbers', 'SELECT * FROM t WHERE id = 0x1F'],
    ['numbers with underscores', 'SELECT * FROM t WHERE id = 1_000'],
    ['trailing junk after a number', 'SELECT * FROM t WHERE id = 12abc'],
    ['an exponent without digits', 'SELECT * FROM t WHERE id = 1e'],
    ['two dots', 'SELECT * FROM t WHERE id = 1..2'],
    ['multiple statements', 'SELECT * FROM t WHERE id = 1; SELECT 2'],
    ['SET', "SET search_path = 'x'"],
    ['SHOW', 'SHOW work_mem'],
    ['transaction control', "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT 1"],
    ['DDL', 'CREATE TABLE t (id int DEFAULT 5)'],
    ['COPY', "COPY t FROM STDIN WITH (DELIMITER ',')"],
    ['EXPLAIN', 'EXPLAIN SELECT * FROM t WHERE id = 1'],
    ['PREPARE', 'PREPARE p AS SELECT * FROM t WHERE id = 1'],
    ['an unterminated string', "SELECT * FROM t WHERE a = 'x"],
    ['an unterminated comment', 'SELECT * FROM t WHERE id = 1 /* x'],
    ['characters outside ASCII in identifiers', 'SELECT * FROM tëst WHERE id = 1'],
    ['identifiers with $', 'SELECT * FROM t$x WHERE id = 1'],
    ['no literal at all', 'SELECT * FROM t WHERE id IS NULL'],
    ['a statement starting with a literal', "'x'"],
  ];
  for (const [what, sql] of fallbacks) {
    it(`gives up on ${what}`, () => {
      expect(statementShape(sql)).toBeNull();
    });
  }

  it('accepts characters outside ASCII inside strings, quoted identifiers and comments', () => {
    const s = statementShape('SELECT "naïve" FROM t /* é */ WHERE name = \'Zoë\' AND id = 2');
    expect(s?.literals).toEqual(['Zoë', '2']);
  });
});

describe('bindLiteralSlots', () => {
  it('binds every literal to the constant the parser made of it, also after characters outside ASCII', () => {
    for (const sql of ["SELECT 'é', x FROM t WHERE a = 'ü' AND b = -7 AND c = 1.5e3", "INSERT INTO t (a, b) VALUES (1, 'x'), (-2, 'ÿ')", "SELECT date '2024-01-01', 'x'::varchar(10) FROM t"]) {
      const shape = statementShape(sql);
      expect(shape, sql).not.toBeNull();
      expect(bindLiteralSlots(parseOne(sql), sql, shape!), sql).toBe(true);
    }
  });

  it('refuses a literal that did not become one constant at its place', () => {
    const cases = [
      'SELECT a FROM t WHERE b = - 5', // the folded constant starts at the minus sign
      'SELECT a FROM t WHERE b = -5::int', // -(5::int): the minus is an operator
      'SELECT a FROM t WHERE b = a @-5', // @- is one operator
      'SELECT CAST(a AS float(10)) FROM t', // float(10) is a type, not a constant
    ];
    for (const sql of cases) {
      const shape = statementShape(sql);
      expect(shape, sql).not.toBeNull();
      expect(bindLiteralSlots(parseOne(sql), sql, shape!), sql).toBe(false);
    }
  });

  it('reads random literal values exactly as the parser does', () => {
    const next = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
    const pieces = ["'", "''", '\\', ' ', 'a', 'Z', '0', '9', '-', '.', 'é', '€', '😀', '%', '_', '"', '/', '*', ';', '\n', '\t', 'e', '{', '}', ','];
    const number = (): string => {
      const digits = (k: number): string => Array.from({ length: k }, () => String(Math.floor(next() * 10))).join('');
      return pick([
        () => digits(1 + Math.floor(next() * 12)),
        () => `${digits(1 + Math.floor(next() * 4))}.${digits(Math.floor(next() * 4))}`,
        () => `.${digits(1 + Math.floor(next() * 3))}`,
        () => `${digits(1 + Math.floor(next() * 3))}e${pick(['', '+', '-'])}${digits(1 + Math.floor(next() * 2))}`,
        () => pick(['2147483647', '2147483648', '0', '00', '007', '9999999999', '4294967296']),
      ])();
    };
    const literal = (): string => {
      if (next() < 0.5) {
        const body = Array.from({ length: Math.floor(next() * 8) }, () => pick(pieces)).join('').replace(/'/g, "''");
        return body.includes('/*') ? "'x'" : `'${body}'`;
      }
      return `${next() < 0.3 ? '-' : ''}${number()}`;
    };
    for (let n = 0; n < 400; n++) {
      const sql = `SELECT ${literal()}, a FROM t WHERE b = ${literal()} AND c IN (${literal()}, ${literal()}) AND d BETWEEN ${literal()} AND ${literal()}`;
      const shape = statementShape(sql);
      expect(shape, sql).not.toBeNull();
      expect(bindLiteralSlots(parseOne(sql), sql, shape!), sql).toBe(true);
    }
  });
});
