import { parseSql } from './parser.js';

/** One statement of a multi-statement text. */
export interface SplitStatement {
  /** The statement's text, without the separating semicolon and surrounding blanks; comments before it are kept. */
  readonly sql: string;
  /** Index of `sql` in the given text (JavaScript string index): `text.slice(offset, offset + sql.length) === sql`. */
  readonly offset: number;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/**
 * Splits a simple Query's text into its statements, using PostgreSQL's own
 * grammar (so semicolons inside strings, dollar quotes and comments are not
 * separators). Empty statements (`;;`) are skipped; an empty, blank or
 * comment-only text gives an empty array. A syntax error anywhere throws a
 * PgError 42601 whose `position` is relative to the whole text.
 */
export function splitStatements(sql: string): SplitStatement[] {
  const parsed = parseSql(sql);
  if (parsed.length === 0) return [];
  // The parser counts UTF-8 bytes; map to string indexes only when it matters.
  const bytes = ASCII.test(sql) ? null : Buffer.from(sql, 'utf8');
  const toIndex = (byteOffset: number): number => (bytes === null ? byteOffset : bytes.subarray(0, byteOffset).toString('utf8').length);
  const out: SplitStatement[] = [];
  for (const p of parsed) {
    const start = toIndex(p.byteOffset);
    const end = p.byteLength === 0 ? sql.length : toIndex(p.byteOffset + p.byteLength);
    const raw = sql.slice(start, end);
    const lead = raw.length - raw.trimStart().length;
    const text = raw.trim();
    if (text === '') continue;
    out.push({ sql: text, offset: start + lead });
  }
  return out;
}
