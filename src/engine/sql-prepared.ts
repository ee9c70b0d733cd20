import { sgError } from '../errors/catalogue.js';
import type { ExecutePlan } from '../planner/plan.js';
import type { ClientStatement } from './session-api.js';
import type { ShardCursor } from './shard-cursor.js';

/**
 * A statement prepared with SQL PREPARE: kept by the session (never
 * prepared on a shard) and run on each EXECUTE as a protocol-level prepared
 * statement would be, planned with the arguments as its parameters.
 */
export interface SqlPreparedStatement {
  readonly sql: string;
  /** Every parameter's type OID (declared, or inferred by PostgreSQL when it described the statement). */
  readonly paramTypes: readonly number[];
  /** The same types as SQL (`format_type`), for casting arguments PostgreSQL must evaluate. */
  readonly typeSql: readonly string[];
  /** The PREPARE statement as the client sent it, and when (pg_prepared_statements). */
  readonly statement: string;
  readonly prepareTime: Date;
  /** EXECUTEs so far (pg_prepared_statements' plan counts). */
  runs: number;
}

/** Types whose input function reads a numeric literal as PostgreSQL's assignment of that literal would (int2, int4, int8, oid, float4, float8, numeric). */
const INTEGER_TAKERS = new Set([21, 23, 20, 26, 700, 701, 1700]);
const DECIMAL_TAKERS = new Set([700, 701, 1700]);

/** Reads the OID and SQL name of each declared type (42704 for an unknown one, as PostgreSQL's PREPARE). */
export async function resolveTypes(conn: ShardCursor, names: readonly string[]): Promise<number[]> {
  const out: number[] = [];
  for (const name of names) out.push(Number((await conn.rows('SELECT CAST(CAST($1 AS regtype) AS oid)', [name]))[0]![0]));
  return out;
}

/** `format_type` of each OID: type names PostgreSQL reads back in a CAST. */
export async function typeNames(conn: ShardCursor, oids: readonly number[]): Promise<string[]> {
  const out: string[] = [];
  for (const oid of oids) out.push((await conn.rows('SELECT format_type($1, NULL)', [String(oid)]))[0]![0] ?? 'text');
  return out;
}

/**
 * The text of each parameter of an EXECUTE: constants whose text the
 * parameter's type reads exactly as PostgreSQL would assign them (a quoted
 * literal or NULL for any type, a number for numeric types) are taken as
 * written; the others are cast to the parameter's type by PostgreSQL
 * (`evaluate`, one SELECT), so `EXECUTE p(1 + 1, now())` gets one server's
 * values. Throws 42601 for a wrong number of arguments.
 */
export async function executeParams(
  name: string,
  plan: ExecutePlan,
  prepared: SqlPreparedStatement,
  stmt: ClientStatement,
  evaluate: (sql: string, stmt: ClientStatement) => Promise<(string | null)[]>,
): Promise<ClientStatement> {
  const n = prepared.paramTypes.length;
  if (plan.args.length !== n) {
    throw sgError('executeParameterCount', { name }, { detail: `Expected ${n} parameters but got ${plan.args.length}.` });
  }
  const texts: (string | null)[] = [];
  const casts: { index: number; sql: string }[] = [];
  plan.args.forEach((arg, i) => {
    const type = prepared.paramTypes[i]!;
    if (arg.kind === 'constant' && (!arg.number || (/^-?\d+$/.test(arg.text ?? '') ? INTEGER_TAKERS : DECIMAL_TAKERS).has(type))) {
      texts.push(arg.text);
      return;
    }
    texts.push(null);
    casts.push({ index: i, sql: `CAST((${arg.kind === 'constant' ? (arg.text ?? 'NULL') : arg.sql}) AS ${prepared.typeSql[i]!})` });
  });
  if (casts.length > 0) {
    const values = await evaluate(`SELECT ${casts.map((c) => c.sql).join(', ')}`, stmt);
    casts.forEach((c, k) => (texts[c.index] = values[k] ?? null));
  }
  return {
    sql: prepared.sql,
    params: texts.map((t) => (t === null ? null : Buffer.from(t, 'utf8'))),
    paramFormats: [],
    paramTypes: prepared.paramTypes,
    ...(stmt.resultFormats ? { resultFormats: stmt.resultFormats } : {}),
  };
}
