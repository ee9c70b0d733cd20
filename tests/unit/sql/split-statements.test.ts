import { beforeAll, describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import { initParser } from '../../../src/sql/parser.js';
import { splitStatements } from '../../../src/sql/split-statements.js';

beforeAll(async () => {
  await initParser();
});

function syntaxError(sql: string): PgError {
  try {
    splitStatements(sql);
  } catch (e) {
    if (e instanceof PgError) return e;
    throw e;
  }
  throw new Error('expected a syntax error');
}

describe('splitStatements', () => {
  it('returns one entry per statement with its offset', () => {
    const text = 'SELECT 1;  INSERT INTO t VALUES (1) ;\nSELECT 2';
    const parts = splitStatements(text);
    expect(parts).toEqual([
      { sql: 'SELECT 1', offset: 0 },
      { sql: 'INSERT INTO t VALUES (1)', offset: 11 },
      { sql: 'SELECT 2', offset: 38 },
    ]);
    for (const p of parts) expect(text.slice(p.offset, p.offset + p.sql.length)).toBe(p.sql);
  });

  it('keeps semicolons inside strings, dollar quotes and comments', () => {
    const text = "SELECT ';'; DO $$ BEGIN PERFORM 1; END $$; SELECT 1 /* ; */";
    expect(splitStatements(text).map((p) => p.sql)).toEqual(["SELECT ';'", 'DO $$ BEGIN PERFORM 1; END $$', 'SELECT 1 /* ; */']);
  });

  it('skips empty statements and keeps a leading comment with its statement', () => {
    const text = 'SELECT 1;; /* shardgate:shard=s1 */ SELECT 2;';
    expect(splitStatements(text)).toEqual([
      { sql: 'SELECT 1', offset: 0 },
      { sql: '/* shardgate:shard=s1 */ SELECT 2', offset: 11 },
    ]);
  });

  it('gives string offsets for multibyte text', () => {
    const text = "SELECT 'é😀'; SELECT 'ü'";
    const parts = splitStatements(text);
    expect(parts.map((p) => p.sql)).toEqual(["SELECT 'é😀'", "SELECT 'ü'"]);
    for (const p of parts) expect(text.slice(p.offset, p.offset + p.sql.length)).toBe(p.sql);
  });

  it.each(['', '   ', '-- only a comment', '/* c */ ;; ;'])('returns nothing for %j', (text) => {
    expect(splitStatements(text)).toEqual([]);
  });

  it('reports syntax errors with 42601 and PostgreSQL\'s 1-based position', () => {
    const e = syntaxError('SELECT 1; SELEC 2');
    expect(e.code).toBe('42601');
    expect(e.fields.position).toBe('11');
    expect(syntaxError('SELECT 1 +').fields.position).toBe('11');
    expect(syntaxError("SELECT 'ééé' FROM t WHERE").fields.position).toBe('26');
  });
});
