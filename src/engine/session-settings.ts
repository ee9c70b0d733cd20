import type { ShardCursor } from './shard-cursor.js';

/** What `apply` returns when the connection's settings already agree: nothing to wait for. */
const APPLIED: Promise<void> = Promise.resolve();

/**
 * A session's PostgreSQL settings (SET, startup parameters) and how they are
 * carried to whichever backend connection serves the session.
 *
 * Each setting is kept as the exact statement that applies it (`SET name TO
 * value` or a `set_config` call for raw startup values). A connection's
 * `settings` map holds the statements last applied on it, so comparing the two
 * maps says what to send: SET for what differs, RESET for what the connection
 * has and the session does not.
 */

/**
 * Marks a connection setting whose value is unknown (it was changed inside a
 * transaction that may still roll back). Equal to no statement, so the next
 * session using the connection always sets or resets it again.
 */
export const UNKNOWN_SETTING = '\u0000unknown';

/** Settings PostgreSQL reports to the client with ParameterStatus, lower-case name → reported name. */
export const REPORTED_SETTINGS: ReadonlyMap<string, string> = new Map([
  ['client_encoding', 'client_encoding'],
  ['datestyle', 'DateStyle'],
  ['timezone', 'TimeZone'],
  ['intervalstyle', 'IntervalStyle'],
  ['application_name', 'application_name'],
  ['standard_conforming_strings', 'standard_conforming_strings'],
  ['integer_datetimes', 'integer_datetimes'],
]);

/** Quotes a setting name for SET/RESET when it is not a plain (optionally dotted) identifier. */
export function settingIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** A SQL string literal. */
export function sqlLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The statement applying a SET whose value is SQL text (as in `SET name TO value`). */
export function setStatement(name: string, valueSql: string): string {
  return `SET ${settingIdent(name)} TO ${valueSql}`;
}

/** The statement applying a raw value (as given at startup, not SQL syntax). */
export function rawSetStatement(name: string, raw: string): string {
  return `SELECT pg_catalog.set_config(${sqlLiteral(name)}, ${sqlLiteral(raw)}, false)`;
}

const UTF8_NAMES = new Set(['utf8', 'utf-8', 'unicode']);

/** Startup parameters sorted into what the session keeps. */
export interface StartupSettings {
  readonly applicationName: string;
  readonly clientEncoding: string;
  /** Setting name (lower case) → raw value, to apply on shards. */
  readonly settings: ReadonlyMap<string, string>;
}

/**
 * Reads the startup packet's parameters: application_name and client_encoding
 * are kept (UTF-8 is what shards speak anyway), `options` is split into its
 * `-c name=value` / `--name=value` entries, and every other parameter is a
 * setting as PostgreSQL treats it.
 */
export function parseStartup(parameters: Readonly<Record<string, string>> = {}): StartupSettings {
  const settings = new Map<string, string>();
  let applicationName = '';
  let clientEncoding = 'UTF8';
  const put = (name: string, value: string): void => {
    const key = name.toLowerCase().replace(/-/g, '_');
    if (key === 'application_name') applicationName = value;
    else if (key === 'client_encoding') clientEncoding = value;
    else settings.set(key, value);
  };
  for (const [name, value] of Object.entries(parameters)) {
    if (name === 'user' || name === 'database' || name === 'replication') continue;
    if (name === 'options') {
      for (const [k, v] of parseOptions(value)) put(k, v);
      continue;
    }
    put(name, value);
  }
  if (!UTF8_NAMES.has(clientEncoding.toLowerCase())) settings.set('client_encoding', clientEncoding);
  else clientEncoding = 'UTF8';
  if (applicationName !== '') settings.set('application_name', applicationName);
  return { applicationName, clientEncoding, settings };
}

/** Splits a startup `options` string: whitespace separates words, a backslash escapes the next character. */
function parseOptions(options: string): [string, string][] {
  const words: string[] = [];
  let word = '';
  let any = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      word += options[++i];
      any = true;
    } else if (/\s/.test(ch)) {
      if (any) words.push(word);
      word = '';
      any = false;
    } else {
      word += ch;
      any = true;
    }
  }
  if (any) words.push(word);
  const out: [string, string][] = [];
  for (let i = 0; i < words.length; i++) {
    let w = words[i]!;
    if (w === '-c' && i + 1 < words.length) w = words[++i]!;
    else if (w.startsWith('-c')) w = w.slice(2);
    else if (w.startsWith('--')) w = w.slice(2);
    else continue;
    const eq = w.indexOf('=');
    if (eq > 0) out.push([w.slice(0, eq), w.slice(eq + 1)]);
  }
  return out;
}

/** The statements that bring a connection from `current` to `wanted`, or '' when they agree. */
export function settingsDiff(wanted: ReadonlyMap<string, string>, current: ReadonlyMap<string, string>): string {
  const out: string[] = [];
  for (const [name, stmt] of wanted) if (current.get(name) !== stmt) out.push(stmt);
  for (const name of current.keys()) if (!wanted.has(name)) out.push(`RESET ${settingIdent(name)}`);
  return out.join('; ');
}

/**
 * The session-level settings of one client session. Snapshots let a
 * transaction (or savepoint) that rolls back restore what was set inside it,
 * as PostgreSQL does.
 */
export class SessionSettings {
  #values = new Map<string, string>();

  constructor(startup?: ReadonlyMap<string, string>) {
    for (const [name, raw] of startup ?? []) this.#values.set(name, rawSetStatement(name, raw));
  }

  get size(): number {
    return this.#values.size;
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  names(): string[] {
    return [...this.#values.keys()];
  }

  /** Records `SET name TO valueSql`; null resets the setting to the server default. */
  set(name: string, valueSql: string | null): void {
    if (valueSql === null) this.#values.delete(name);
    else this.#values.set(name, setStatement(name, valueSql));
  }

  clear(): void {
    this.#values.clear();
  }

  snapshot(): ReadonlyMap<string, string> {
    return new Map(this.#values);
  }

  restore(snapshot: ReadonlyMap<string, string>): void {
    this.#values = new Map(snapshot);
  }

  /**
   * Makes the connection's settings equal to the session's with one round
   * trip (none when they already agree). The connection's map changes only
   * after the shard accepted every statement: a multi-statement simple query
   * is all-or-nothing.
   */
  apply(conn: ShardCursor): Promise<void> {
    const sql = settingsDiff(this.#values, conn.settings);
    return sql === '' ? APPLIED : this.#apply(conn, sql);
  }

  async #apply(conn: ShardCursor, sql: string): Promise<void> {
    await conn.exec(sql);
    conn.settings.clear();
    for (const [name, stmt] of this.#values) conn.settings.set(name, stmt);
  }
}
