/**
 * Character-level pieces of PostgreSQL's lexer shared by the scans that avoid
 * a full parse (single-statement.ts, statement-shape.ts). Each takes the
 * index of the construct's first character and returns the index after it.
 */

const SPACE = 32;
const TAB = 9;
const LF = 10;
const FF = 12;
const CR = 13;

/** PostgreSQL's blanks: space, tab, line feed, carriage return, form feed. */
export function isSpace(c: number): boolean {
  return c === SPACE || c === LF || c === TAB || c === CR || c === FF;
}

/** Index after a `--` comment starting at `i`: it ends at a line feed or carriage return, as in PostgreSQL. */
export function skipLineComment(sql: string, i: number): number {
  let j = i + 2;
  const n = sql.length;
  while (j < n) {
    const c = sql.charCodeAt(j);
    if (c === LF || c === CR) return j + 1;
    j++;
  }
  return n;
}

/** Index after a (possibly nested) block comment starting at `i`, or -1 when it is not closed. */
export function skipBlockComment(sql: string, i: number): number {
  let depth = 1;
  let j = i + 2;
  const n = sql.length;
  while (j < n) {
    const c = sql.charCodeAt(j);
    if (c === 42 && j + 1 < n && sql.charCodeAt(j + 1) === 47) {
      depth--;
      j += 2;
      if (depth === 0) return j;
    } else if (c === 47 && j + 1 < n && sql.charCodeAt(j + 1) === 42) {
      depth++;
      j += 2;
    } else j++;
  }
  return -1;
}

/** Index after the `'…'` string starting at `i` (`''` inside is a quote), or -1 when it is not closed. */
export function skipString(sql: string, i: number): number {
  return skipQuoted(sql, i, "'");
}

/** Index after the `"…"` identifier starting at `i`, or -1 when it is not closed. */
export function skipQuotedIdent(sql: string, i: number): number {
  return skipQuoted(sql, i, '"');
}

function skipQuoted(sql: string, i: number, quote: string): number {
  let j = i + 1;
  for (;;) {
    const q = sql.indexOf(quote, j);
    if (q < 0) return -1;
    if (sql[q + 1] === quote) {
      j = q + 2;
      continue;
    }
    return q + 1;
  }
}
