import type { A_Const, ColumnRef, FuncCall, Node, RangeVar, TypeCast } from 'libpg-query';

/**
 * Small, allocation-light accessors over libpg-query's JSON syntax tree. Every
 * node is an object with one key naming its type (`{ SelectStmt: {...} }`).
 */

export type { Node };

/** The node's type name, e.g. 'SelectStmt'. */
export function nodeType(node: Node): string {
  for (const key in node) return key;
  return '';
}

/** The value of a `String` node, or null for any other node. */
export function stringOf(node: Node | undefined): string | null {
  return node !== undefined && 'String' in node ? (node.String.sval ?? '') : null;
}

/** Names of a ColumnRef (`t.col` → ['t', 'col']); null when it ends in `*`. */
export function columnRefNames(ref: ColumnRef): string[] | null {
  const out: string[] = [];
  for (const f of ref.fields ?? []) {
    const s = stringOf(f);
    if (s === null) return null;
    out.push(s);
  }
  return out;
}

/** True for `*` and `t.*` in a select list. */
export function isStarRef(node: Node | undefined): boolean {
  if (node === undefined || !('ColumnRef' in node)) return false;
  const fields = node.ColumnRef.fields ?? [];
  const last = fields[fields.length - 1];
  return last !== undefined && 'A_Star' in last;
}

/** A constant's value as PostgreSQL text (null for NULL), and whether it was written as an integer. */
export interface ConstText {
  readonly text: string | null;
  readonly integer: boolean;
}

/**
 * Text of an A_Const. The parser omits zero and false values (protobuf
 * defaults), so `{ ival: {} }` is 0 and `{ boolval: {} }` is false.
 */
export function constText(c: A_Const): ConstText {
  if (c.isnull === true) return { text: null, integer: false };
  if (c.ival !== undefined) return { text: String(c.ival.ival ?? 0), integer: true };
  if (c.fval !== undefined) {
    const f = c.fval.fval ?? '0';
    return { text: f, integer: /^-?\d+$/.test(f) };
  }
  if (c.sval !== undefined) return { text: c.sval.sval ?? '', integer: false };
  if (c.boolval !== undefined) return { text: c.boolval.boolval === true ? 'true' : 'false', integer: false };
  if (c.bsval !== undefined) return { text: c.bsval.bsval ?? '', integer: false };
  return { text: null, integer: false };
}

/** Strips casts: `'5'::bigint` and `CAST($1 AS int)` → the inner node. */
export function uncast(node: Node): Node {
  let n = node;
  while ('TypeCast' in n) {
    const arg = (n.TypeCast as TypeCast).arg;
    if (arg === undefined) break;
    n = arg;
  }
  return n;
}

/** Lower-cased last name of a function (`pg_catalog.count` → 'count'). */
export function funcName(fc: FuncCall): string {
  const names = fc.funcname ?? [];
  return (stringOf(names[names.length - 1]) ?? '').toLowerCase();
}

/** True when two expressions are the same text-independent tree (locations ignored). */
export function sameExpr(a: Node, b: Node): boolean {
  return exprKey(a) === exprKey(b);
}

/** A string identifying an expression regardless of where it was written. */
export function exprKey(node: Node): string {
  return JSON.stringify(node, (key, value: unknown) => (key === 'location' ? undefined : value));
}

/**
 * A deep copy of a tree. Trees are plain JSON data (objects, arrays, strings,
 * numbers, booleans; no cycles), so a direct copy does what structuredClone
 * did at a fraction of its cost (it serializes and deserializes); own keys
 * holding `undefined` are kept, as structuredClone kept them.
 */
export function cloneTree<T>(node: T): T {
  return copyValue(node) as T;
}

function copyValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyValue(value[i]);
    return out;
  }
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(src)) out[key] = copyValue(src[key]);
  return out;
}

/**
 * Visits every node object in a tree, depth first. `visit` returns false to
 * skip the node's children.
 */
export function walkTree(root: unknown, visit: (type: string, value: Record<string, unknown>) => boolean | void): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const cur = stack.pop();
    if (cur === null || typeof cur !== 'object') continue;
    if (Array.isArray(cur)) {
      for (let i = cur.length - 1; i >= 0; i--) stack.push(cur[i]);
      continue;
    }
    const obj = cur as Record<string, unknown>;
    let descend = true;
    for (const key in obj) {
      const child = obj[key];
      // A node wrapper: its single key starts with an upper-case letter.
      if (key.charCodeAt(0) <= 90 && key.charCodeAt(0) >= 65 && child !== null && typeof child === 'object' && !Array.isArray(child)) {
        if (visit(key, child as Record<string, unknown>) === false) descend = false;
      }
    }
    if (!descend) continue;
    for (const key in obj) {
      const child = obj[key];
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
}

/**
 * PostgreSQL 15's keywords that cannot stand for a table or column name
 * unquoted everywhere (reserved, type/function-name and column-name
 * keywords: `pg_get_keywords()` catcode R, T and C). Unquoted, `user` would
 * be CURRENT_USER and `order` a syntax error.
 */
const KEYWORDS_TO_QUOTE = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization between bigint binary bit boolean both case cast char character check ' +
    'coalesce collate collation column concurrently constraint create cross current_catalog current_date current_role current_schema ' +
    'current_time current_timestamp current_user dec decimal default deferrable desc distinct do else end except exists extract false fetch ' +
    'float for foreign freeze from full grant greatest group grouping having ilike in initially inner inout int integer intersect interval ' +
    'into is isnull join lateral leading least left like limit localtime localtimestamp national natural nchar none normalize not notnull ' +
    'null nullif numeric offset on only or order out outer overlaps overlay placing position precision primary real references returning ' +
    'right row select session_user setof similar smallint some substring symmetric table tablesample then time timestamp to trailing treat ' +
    'trim true union unique user using values varchar variadic verbose when where window with xmlattributes xmlconcat xmlelement xmlexists ' +
    'xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable'
  ).split(' '),
);

/** `name` quoted as an SQL identifier only when needed: not lower-case letters, digits, `_`, `$`, or a keyword. */
export function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) && !KEYWORDS_TO_QUOTE.has(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** `text` as an SQL string literal. */
export function quoteLiteral(text: string): string {
  return text.includes('\\') ? `E'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` : `'${text.replace(/'/g, "''")}'`;
}

/** Every table reference (RangeVar-shaped object) in a tree, including those not wrapped as nodes (`relation` fields). */
export function findRangeVars(root: unknown): RangeVar[] {
  const out: RangeVar[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const cur = stack.pop();
    if (cur === null || typeof cur !== 'object') continue;
    if (Array.isArray(cur)) {
      for (let i = cur.length - 1; i >= 0; i--) stack.push(cur[i]);
      continue;
    }
    const obj = cur as Record<string, unknown>;
    if (typeof obj.relname === 'string') out.push(obj as RangeVar);
    const keys = Object.keys(obj);
    for (let i = keys.length - 1; i >= 0; i--) stack.push(obj[keys[i] as string]);
  }
  return out;
}

/** The fields of a node, untyped (for code that handles many node types alike). */
export function nodeFields(node: Node): Record<string, unknown> {
  return ((node as unknown as Record<string, Record<string, unknown>>)[nodeType(node)] ?? {}) as Record<string, unknown>;
}
