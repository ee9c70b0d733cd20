import { isSpace, skipBlockComment, skipLineComment, skipQuotedIdent, skipString } from './lexical.js';

/**
 * The text after the first `keyword` written as a bare word outside
 * parentheses, strings, quoted identifiers and comments, without the blanks
 * that follow it; null when there is none. Used to take the statement out of
 * `PREPARE name (types) AS statement` (keyword AS) and `DECLARE name … CURSOR
 * FOR query` (keyword FOR) exactly as the client wrote it. Both keywords are
 * reserved in PostgreSQL's grammar, so neither can be an unquoted name or
 * type before the statement; type names with parentheses (`numeric(10,2)`)
 * are skipped by the depth count.
 */
export function textAfterKeyword(sql: string, keyword: string): string | null {
  const word = keyword.toLowerCase();
  const n = sql.length;
  let depth = 0;
  let i = 0;
  while (i < n) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') i = skipLineComment(sql, i);
    else if (c === '/' && sql[i + 1] === '*') i = skipBlockComment(sql, i);
    else if (c === "'") i = skipString(sql, i);
    else if (c === '"') i = skipQuotedIdent(sql, i);
    else if (c === '(') {
      depth++;
      i++;
    } else if (c === ')') {
      depth--;
      i++;
    } else if (isWordChar(c)) {
      let j = i + 1;
      while (j < n && isWordChar(sql[j]!)) j++;
      if (depth === 0 && sql.slice(i, j).toLowerCase() === word) {
        while (j < n && isSpace(sql.charCodeAt(j))) j++;
        return sql.slice(j);
      }
      i = j;
    } else i++;
    if (i < 0) return null;
  }
  return null;
}

function isWordChar(c: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
}
