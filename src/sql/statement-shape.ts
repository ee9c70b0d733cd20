import type { A_Const, Node } from 'libpg-query';
import { constText, walkTree } from './ast.js';
import { isSpace, skipBlockComment, skipLineComment, skipQuotedIdent, skipString } from './lexical.js';

/**
 * A statement's text with its constants taken out: two texts that differ only
 * in the values of their numeric and string literals have the same `key`.
 *
 * The scanner understands a deliberately small part of PostgreSQL's lexical
 * grammar and gives up (returns null) on anything else, so that within one
 * key every text produces the same token stream for PostgreSQL's parser and
 * differs only in the values of the literal tokens:
 * - a literal is a plain `'…'` string (standard-conforming: a backslash is an
 *   ordinary character, `''` is a quote), a decimal number (`12`, `1.5`, `.5`,
 *   `1e5`), or such a number directly after a unary minus (`= -5`);
 * - the class of each literal is part of the key (marker `\0` + class letter;
 *   PostgreSQL text never contains NUL): `i` an integer that fits in int4
 *   (PostgreSQL's ICONST), `f` any other number (FCONST), `I`/`F` the same
 *   after a unary minus, `s` a string (SCONST);
 * - quoted identifiers and comments are kept in the key as written;
 * - anything else that could change the tokens or how a literal is read gives
 *   up: `$` (parameters, dollar quotes), prefixed strings (`E''`, `B''`,
 *   `X''`, `N''`, `U&''`, `U&""`), a string followed by another string (the
 *   parser joins them), a number followed by a letter, digit, `_` or `.`
 *   (`0x1F`, `1_000`, `5e`), a string holding `/*` (a shard hint there would be
 *   read by the planner), characters outside ASCII outside strings, quoted
 *   identifiers and comments, a second statement after `;`, unterminated
 *   quotes or comments, and statements that do not start with SELECT,
 *   INSERT, UPDATE, DELETE, WITH, VALUES or `(`.
 *
 * TRUE, FALSE and NULL are keywords here, not literals: `x IS NULL` has no
 * constant, so they stay in the key.
 *
 * Whether a literal token really became one constant of the parse tree (and
 * not, say, a type modifier or half of `- 5`) is not decided here: callers
 * check each literal against the tree with `bindLiteralSlots` before relying
 * on the key.
 */
export interface StatementShape {
  /** The text with every literal replaced by its class marker. */
  readonly key: string;
  /** Each literal's value as PostgreSQL's parser makes it (the A_Const text), in text order. */
  readonly literals: readonly string[];
  /** Where each literal starts in the text (string index; the minus sign of a negative number). */
  readonly starts: readonly number[];
  /** Each literal's class letter (see above), in text order. */
  readonly classes: string;
}

/** Texts longer than this are not shaped: their keys would make large cache entries. */
export const MAX_SHAPED_LENGTH = 8192;

const FIRST_WORDS = new Set(['select', 'insert', 'update', 'delete', 'with', 'values']);
/**
 * Keywords after which `-` is a unary minus (so `-5` is one negative
 * constant). Any other word is taken as an operand (`a -5` is a subtraction);
 * a wrong guess only makes the tree check fail for the shape.
 */
const PREFIX_WORDS = new Set([
  'select', 'where', 'and', 'or', 'not', 'then', 'else', 'when', 'case', 'returning', 'having', 'on', 'between', 'limit', 'offset', 'distinct', 'all',
  'like', 'ilike', 'escape', 'by', 'in', 'values', 'set', 'any', 'some', 'array',
]);

/** Length of the longest word in FIRST_WORDS and PREFIX_WORDS ('returning'). */
const LONGEST_WORD = 9;

const INT4_MAX = '2147483647';

/** What the previous token was, to tell a unary minus from a binary one. */
const enum Prev {
  Start,
  Operand,
  Open,
  Operator,
  Keyword,
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** A-Z, a-z, _ (identifier start). */
function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}

function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c);
}

/** PostgreSQL's operator characters. */
function isOperatorChar(c: number): boolean {
  switch (c) {
    case 43: // +
    case 45: // -
    case 42: // *
    case 47: // /
    case 60: // <
    case 62: // >
    case 61: // =
    case 126: // ~
    case 33: // !
    case 64: // @
    case 35: // #
    case 37: // %
    case 94: // ^
    case 38: // &
    case 124: // |
    case 96: // `
    case 63: // ?
      return true;
    default:
      return false;
  }
}

/**
 * The shape of one statement's text, or null when the text holds anything
 * the scanner does not fully understand (see StatementShape).
 */
export function statementShape(sql: string): StatementShape | null {
  const n = sql.length;
  if (n > MAX_SHAPED_LENGTH) return null;
  const literals: string[] = [];
  const starts: number[] = [];
  let classes = '';
  let key = '';
  let copied = 0;
  let prev = Prev.Start;
  let ended = false;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const next = i + 1 < n ? sql.charCodeAt(i + 1) : -1;
    if (c === 45 && next === 45) {
      i = skipLineComment(sql, i);
      continue;
    }
    if (c === 47 && next === 42) {
      const end = skipBlockComment(sql, i);
      if (end < 0) return null;
      i = end;
      continue;
    }
    // Only blanks and comments may follow the statement's semicolon.
    if (ended) return null;
    if (prev === Prev.Start && c !== 40 && !isIdentStart(c)) return null;
    if (c === 39) {
      // A prefix letter or `&` right before the quote makes it another kind of string (E'', B'', X'', N'', U&'').
      const before = i > 0 ? sql.charCodeAt(i - 1) : -1;
      if (isIdentChar(before) || before === 38 || prev === Prev.Start) return null;
      const end = skipString(sql, i);
      if (end < 0) return null;
      const body = sql.slice(i + 1, end - 1);
      if (body.includes('/*')) return null;
      // Strings separated by a line break are one constant to PostgreSQL: give up on any string followed by a quote.
      if (sql.charCodeAt(skipBlanks(sql, end)) === 39) return null;
      key += sql.slice(copied, i) + '\0s';
      copied = end;
      literals.push(body.includes("''") ? body.replace(/''/g, "'") : body);
      starts.push(i);
      classes += 's';
      prev = Prev.Operand;
      i = end;
      continue;
    }
    const numberStart = isDigit(c) || (c === 46 && isDigit(next));
    const negative = c === 45 && (isDigit(next) || (next === 46 && isDigit(i + 2 < n ? sql.charCodeAt(i + 2) : -1))) && (prev === Prev.Open || prev === Prev.Operator || prev === Prev.Keyword);
    if (numberStart || negative) {
      if (prev === Prev.Start) return null;
      const from = negative ? i + 1 : i;
      const before = sql.charCodeAt(i - 1);
      if (c === 46 && (isIdentChar(before) || before === 34 || before === 41 || before === 93)) return null;
      const num = scanNumber(sql, from);
      if (num === null) return null;
      const cls = negative ? num.cls.toUpperCase() : num.cls;
      key += sql.slice(copied, i) + '\0' + cls;
      copied = num.end;
      literals.push(negative ? negate(num.value, num.cls) : num.value);
      starts.push(i);
      classes += cls;
      prev = Prev.Operand;
      i = num.end;
      continue;
    }
    if (isIdentStart(c)) {
      let end = i + 1;
      while (end < n && isIdentChar(sql.charCodeAt(end))) end++;
      if (end < n && sql.charCodeAt(end) === 36) return null;
      // Only short words can be keywords of interest: longer identifiers are operands without a lookup.
      const word = end - i <= LONGEST_WORD ? sql.slice(i, end).toLowerCase() : '';
      if (prev === Prev.Start && !FIRST_WORDS.has(word)) return null;
      prev = PREFIX_WORDS.has(word) ? Prev.Keyword : Prev.Operand;
      i = end;
      continue;
    }
    if (c === 34) {
      if (i > 0 && sql.charCodeAt(i - 1) === 38) return null;
      const end = skipQuotedIdent(sql, i);
      if (end < 0) return null;
      prev = Prev.Operand;
      i = end;
      continue;
    }
    if (c === 40 || c === 44 || c === 91) prev = Prev.Open;
    else if (c === 41 || c === 93) prev = Prev.Operand;
    else if (c === 59) ended = true;
    else if (isOperatorChar(c) || c === 58 || c === 46) prev = Prev.Operator;
    else return null;
    i++;
  }
  if (literals.length === 0) return null;
  key += sql.slice(copied);
  return { key, literals, starts, classes };
}

/** Index after blanks and comments from `i` (the text's length at its end, or on an unclosed comment). */
function skipBlanks(sql: string, i: number): number {
  let j = i;
  const n = sql.length;
  while (j < n) {
    const c = sql.charCodeAt(j);
    if (isSpace(c)) j++;
    else if (c === 45 && sql.charCodeAt(j + 1) === 45) j = skipLineComment(sql, j);
    else if (c === 47 && sql.charCodeAt(j + 1) === 42) {
      const end = skipBlockComment(sql, j);
      if (end < 0) return n;
      j = end;
    } else break;
  }
  return j;
}

/**
 * A decimal number starting at `i`: its end, its class (`i` for an integer
 * that fits in int4, else `f`) and its value as PostgreSQL's parser gives it
 * (an int4 as its decimal value; anything else as written). Null when the
 * number is followed by a character that would make it another token or an
 * error (`1e`, `0x1F`, `1_000`, `1..2`, `12abc`).
 */
function scanNumber(sql: string, i: number): { end: number; cls: 'i' | 'f'; value: string } | null {
  const n = sql.length;
  let j = i;
  while (j < n && isDigit(sql.charCodeAt(j))) j++;
  let float = false;
  if (j < n && sql.charCodeAt(j) === 46) {
    float = true;
    j++;
    while (j < n && isDigit(sql.charCodeAt(j))) j++;
  }
  const e = j < n ? sql.charCodeAt(j) : -1;
  if (e === 101 || e === 69) {
    let k = j + 1;
    const sign = k < n ? sql.charCodeAt(k) : -1;
    if (sign === 43 || sign === 45) k++;
    if (!(k < n && isDigit(sql.charCodeAt(k)))) return null;
    while (k < n && isDigit(sql.charCodeAt(k))) k++;
    float = true;
    j = k;
  }
  if (j < n) {
    const after = sql.charCodeAt(j);
    if (isIdentChar(after) || after === 46 || after === 36 || after > 127) return null;
  }
  const text = sql.slice(i, j);
  if (float) return { end: j, cls: 'f', value: text };
  let z = 0;
  while (z < text.length - 1 && text.charCodeAt(z) === 48) z++;
  const digits = z === 0 ? text : text.slice(z);
  if (digits.length > 10 || (digits.length === 10 && digits > INT4_MAX)) return { end: j, cls: 'f', value: text };
  return { end: j, cls: 'i', value: digits };
}

/** The value of `-number` as the parser folds it: int4 negated (`-0` is 0), other numbers with a `-` written before them. */
function negate(value: string, cls: 'i' | 'f'): string {
  if (cls === 'f') return `-${value}`;
  return value === '0' ? '0' : `-${value}`;
}

/** Literal slots of analysed trees: A_Const node → index of its literal in the statement's shape. */
const slots = new WeakMap<A_Const, number>();

/**
 * The index in its statement's shape of the literal this constant was
 * written as, when the tree was bound with `bindLiteralSlots`; undefined for
 * every other constant.
 */
export function literalSlot(c: A_Const): number | undefined {
  return slots.get(c);
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/**
 * Checks that every literal of `shape` (the shape of `sql`) is one constant
 * of `tree` (the parse of `sql`): a constant starting exactly where the
 * literal does, of the literal's class, with the value the shape read. When
 * all are, marks those constants with their literal's index (`literalSlot`)
 * and returns true; otherwise marks nothing and returns false. Constants not
 * written as literals (TRUE, NULL, `extract(year …)`) are left alone: their
 * text is part of the shape's key.
 */
export function bindLiteralSlots(tree: Node, sql: string, shape: StatementShape): boolean {
  const byOffset = new Map<number, number>();
  const starts = shape.starts;
  if (ASCII.test(sql)) {
    for (let k = 0; k < starts.length; k++) byOffset.set(starts[k] as number, k);
  } else {
    // The parser reports UTF-8 byte offsets.
    let bytes = 0;
    let from = 0;
    for (let k = 0; k < starts.length; k++) {
      const at = starts[k] as number;
      bytes += Buffer.byteLength(sql.slice(from, at), 'utf8');
      from = at;
      byOffset.set(bytes, k);
    }
  }
  const found: [A_Const, number][] = [];
  const seen = new Uint8Array(starts.length);
  let ok = true;
  walkTree(tree, (type, value) => {
    if (!ok) return false;
    if (type !== 'A_Const') return true;
    const c = value as A_Const;
    const k = byOffset.get(c.location ?? 0);
    if (k === undefined) return true;
    const cls = shape.classes[k];
    const kindOk = cls === 's' ? c.sval !== undefined : cls === 'i' || cls === 'I' ? c.ival !== undefined : c.fval !== undefined;
    if (!kindOk || constText(c).text !== shape.literals[k]) {
      ok = false;
      return false;
    }
    seen[k] = 1;
    found.push([c, k]);
    return true;
  });
  if (!ok || seen.includes(0)) return false;
  for (const [c, k] of found) slots.set(c, k);
  return true;
}
