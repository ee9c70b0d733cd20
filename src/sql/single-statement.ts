import { isSpace, skipBlockComment, skipLineComment, skipQuotedIdent, skipString } from './lexical.js';
import type { SplitStatement } from './split-statements.js';

/**
 * The one statement of a simple Query's text, found by a scan of its
 * characters instead of a parse: what `splitStatements` returns for a text
 * holding exactly one statement (with or without trailing semicolons,
 * blanks and comments). Null when the text holds no statement, more than
 * one, or anything the scan does not model exactly (dollar quotes,
 * backslash-escaped strings, an unterminated quote or comment): the caller
 * then splits with the parser. Almost every client statement takes this
 * path, which saves a full parse per simple Query.
 */
export function singleStatement(text: string): SplitStatement | null {
  const n = text.length;
  let i = 0;
  /** The statement's first character: comments before it belong to it (as the parser reports it). */
  let start = -1;
  let sawToken = false;
  /** Index just after the statement's last character before the first top-level semicolon. */
  let end = -1;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x3b /* ; */) {
      if (!sawToken) return null; // an empty statement first: let the parser decide
      end = i;
      break;
    }
    if (c === 0x2d /* - */ && text.charCodeAt(i + 1) === 0x2d) {
      if (start < 0) start = i;
      i = skipLineComment(text, i);
      continue;
    }
    if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2a /* * */) {
      if (start < 0) start = i;
      const after = skipBlockComment(text, i);
      if (after < 0) return null;
      i = after;
      continue;
    }
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (start < 0) start = i;
    sawToken = true;
    if (c === 0x27 /* ' */) {
      const prev = i > 0 ? text.charCodeAt(i - 1) : 0;
      // E'…' strings take backslash escapes; leave them to the parser.
      if (prev === 0x45 || prev === 0x65) return null;
      const after = skipString(text, i);
      if (after < 0) return null;
      i = after;
      continue;
    }
    if (c === 0x22 /* " */) {
      const after = skipQuotedIdent(text, i);
      if (after < 0) return null;
      i = after;
      continue;
    }
    if (c === 0x24 /* $ */) {
      // $1 is a parameter; anything else may open a dollar quote.
      const d = text.charCodeAt(i + 1);
      if (!(d >= 0x30 && d <= 0x39)) return null;
    }
    if (c === 0x5c /* \ */) return null;
    i++;
  }
  if (!sawToken) return null;
  if (end < 0) return statement(text.slice(start), start);
  // After the semicolon only more semicolons, blanks and comments may follow.
  for (let j = end + 1; j < n; ) {
    const c = text.charCodeAt(j);
    if (c === 0x3b || isSpace(c)) {
      j++;
    } else if (c === 0x2d && text.charCodeAt(j + 1) === 0x2d) {
      j = skipLineComment(text, j);
    } else if (c === 0x2f && text.charCodeAt(j + 1) === 0x2a) {
      const after = skipBlockComment(text, j);
      if (after < 0) return null;
      j = after;
    } else {
      return null;
    }
  }
  return statement(text.slice(start, end), start);
}

/** The statement as `splitStatements` trims it; null where JavaScript's trim and the scan's idea of a blank differ (Unicode spaces). */
function statement(raw: string, offset: number): SplitStatement | null {
  const sql = raw.trimEnd();
  return sql.trimStart() === sql ? { sql, offset } : null;
}
