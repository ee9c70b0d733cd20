import { loadModule, parseSync } from 'libpg-query';
import type { Node, ParseResult, RawStmt } from 'libpg-query';
import { deparseSync } from 'pgsql-deparser';
import { sgError } from '../errors/catalogue.js';

let loaded: Promise<void> | null = null;
let ready = false;

/**
 * Loads the PostgreSQL parser (WASM). Await it once at start-up before any
 * other function of this folder runs; calling it again is free.
 */
export async function initParser(): Promise<void> {
  loaded ??= loadModule().then(() => {
    ready = true;
  });
  await loaded;
}

/** One parsed statement and where it sits in the text, in UTF-8 bytes as the parser counts. */
export interface ParsedStatement {
  readonly stmt: Node;
  readonly byteOffset: number;
  /** Length in bytes; 0 means "to the end of the text". */
  readonly byteLength: number;
}

interface LibPgQueryError {
  readonly message: string;
  readonly sqlDetails?: { readonly message: string; readonly cursorPosition: number };
}

/**
 * Parses SQL text with PostgreSQL's own grammar. An empty, blank or
 * comment-only text gives no statements. A syntax error is thrown as a
 * PgError 42601 whose `position` is the 1-based character offset PostgreSQL
 * itself would report.
 */
export function parseSql(sql: string): readonly ParsedStatement[] {
  if (!ready) throw new Error('initParser() must be awaited before parsing SQL');
  if (sql.trim() === '') return [];
  let result: ParseResult;
  try {
    result = parseSync(sql) as ParseResult;
  } catch (e) {
    const err = e as LibPgQueryError;
    // libpg-query reports a 0-based character offset; PostgreSQL's field is 1-based.
    const position = err.sqlDetails === undefined ? undefined : err.sqlDetails.cursorPosition + 1;
    throw sgError('syntaxError', { message: err.sqlDetails?.message ?? err.message }, position === undefined ? {} : { position });
  }
  return (result.stmts ?? []).map((raw: RawStmt) => ({
    stmt: raw.stmt as Node,
    byteOffset: raw.stmt_location ?? 0,
    byteLength: raw.stmt_len ?? 0,
  }));
}

/** SQL text for a statement or expression node (PostgreSQL syntax, single line). */
export function deparseNode(node: Node): string {
  return deparseSync(node);
}
