import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/index.js';
import type { GatherPlan, Plan, SubqueryWritePlan, WriteSubquery } from '../planner/plan.js';
import type { FieldDescription, FormatCode } from '../protocol/fields.js';
import { portableTypeOid } from './insert-select.js';
import { runShardsPlan } from './run-shards.js';
import type { ClientStatement, ExecEvent } from './session-api.js';
import type { ShardCursor } from './shard-cursor.js';

/** What running a write's subqueries first needs from the session. */
export interface SubqueryWriteContext {
  /** The shard's connection in the statement's transaction; `write` marks the shard written. */
  readonly connection: (shard: ShardName, write: boolean) => Promise<ShardCursor>;
  readonly running: Set<ShardCursor>;
  readonly columnCounts: Map<string, number>;
  readonly compute?: () => Promise<ShardCursor>;
  /** Runs a GatherPlan on the statement's connections (throws its refusal where there is no compute connection). */
  readonly gather: (plan: GatherPlan, stmt: ClientStatement) => AsyncIterable<ExecEvent>;
  /** The planner, with the session's route context. */
  readonly plan: (sql: string, params: readonly (string | null | undefined)[]) => Plan;
}

/** A subquery's result as a parameter of the write: its text and type OID (0: unspecified). */
interface Value {
  readonly text: string | null;
  readonly type: number;
}

/** Array type of each built-in element type a subquery's column commonly has (pg_type.typarray). */
const ARRAY_OF = new Map<number, number>([
  [16, 1000], // bool
  [17, 1001], // bytea
  [18, 1002], // "char"
  [19, 1003], // name
  [20, 1016], // int8
  [21, 1005], // int2
  [23, 1007], // int4
  [25, 1009], // text
  [26, 1028], // oid
  [114, 199], // json
  [650, 651], // cidr
  [700, 1021], // float4
  [701, 1022], // float8
  [790, 791], // money
  [829, 1040], // macaddr
  [869, 1041], // inet
  [1042, 1014], // bpchar
  [1043, 1015], // varchar
  [1082, 1182], // date
  [1083, 1183], // time
  [1114, 1115], // timestamp
  [1184, 1185], // timestamptz
  [1186, 1187], // interval
  [1266, 1270], // timetz
  [1560, 1561], // bit
  [1562, 1563], // varbit
  [1700, 1231], // numeric
  [2950, 2951], // uuid
  [3802, 3807], // jsonb
]);

/**
 * Runs a SubqueryWritePlan inside the caller's transaction:
 * 1. each subquery, as the SELECT it was planned as (merged or gathered),
 *    in text format, on the statement's connections (read, not written);
 * 2. its rows become parameters: for `x op ANY|ALL ($n)` an array literal
 *    of the column's array type holding every value (NULLs and duplicates
 *    kept: `= ANY` over them is exactly IN over the rows); for a scalar
 *    subquery its one value (NULL without rows, 21000 with two or more);
 *    for EXISTS a boolean; for ARRAY(…) the array of its values in their
 *    order; for a row IN and `SET (a, b) = (SELECT …)` one array per column
 *    (read back by `unnest` in the write);
 * 3. the write is planned with the client's parameters and these (so a
 *    `key = ANY($n)` routes to the shards holding those keys only) and run,
 *    its events (RETURNING rows, command tag) passed through.
 * Nothing is written before every subquery has run, so an error in one
 * (21000 included) leaves every shard as it was.
 */
export async function* subqueryWriteEvents(
  plan: SubqueryWritePlan,
  stmt: ClientStatement,
  params: readonly (string | null | undefined)[],
  ctx: SubqueryWriteContext,
): AsyncGenerator<ExecEvent, void, undefined> {
  const values: Value[] = [];
  for (const sq of plan.subqueries) values.push(...(await runSubquery(sq, stmt, params, ctx)));
  // The client's parameters followed by the subqueries' values, then only those the write uses (plan.writeParams).
  const n = params.length;
  const texts = [...params, ...values.map((v) => v.text)];
  const buffers = [...Array.from({ length: n }, (_, i) => stmt.params?.[i] ?? null), ...values.map((v) => (v.text === null ? null : Buffer.from(v.text, 'utf8')))];
  const formats = [...perParam(stmt.paramFormats ?? [], n), ...values.map((): FormatCode => 0)];
  const types = [...Array.from({ length: n }, (_, i) => stmt.paramTypes?.[i] ?? 0), ...values.map((v) => v.type)];
  const writeParams = plan.writeParams.map((i) => texts[i]);
  const write = ctx.plan(plan.write, writeParams);
  if (write.kind === 'refuse') throw write.error;
  if (write.kind !== 'shards') throw sgError('internal', { reason: `the write of a statement whose subqueries ran first was planned as ${write.kind}` });
  const writeStmt: ClientStatement = {
    sql: plan.write,
    params: plan.writeParams.map((i) => buffers[i] ?? null),
    paramFormats: plan.writeParams.map((i) => formats[i] ?? 0),
    paramTypes: plan.writeParams.map((i) => types[i] ?? 0),
    ...(stmt.resultFormats !== undefined ? { resultFormats: stmt.resultFormats } : {}),
  };
  yield* runShardsPlan(write, writeStmt, writeParams, {
    connection: (shard) => ctx.connection(shard, true),
    running: ctx.running,
    columnCounts: ctx.columnCounts,
    ...(ctx.compute !== undefined ? { compute: ctx.compute } : {}),
  });
}

/** Each client parameter's format code (Bind allows none: text; one: for all; or one each). */
function perParam(formats: readonly FormatCode[], n: number): FormatCode[] {
  return Array.from({ length: n }, (_, i) => (formats.length === 0 ? 0 : formats.length === 1 ? (formats[0] as FormatCode) : (formats[i] ?? 0)));
}

/** The parameters one subquery's result becomes (WriteSubquery['kind']): one, or one array per column for 'rows' and 'assign'. */
async function runSubquery(sq: WriteSubquery, stmt: ClientStatement, params: readonly (string | null | undefined)[], ctx: SubqueryWriteContext): Promise<Value[]> {
  const formats = perParam(stmt.paramFormats ?? [], params.length);
  const types = stmt.paramTypes ?? [];
  const sub: ClientStatement = {
    sql: sq.sql,
    params: sq.paramMap.map((i) => stmt.params?.[i] ?? null),
    paramFormats: sq.paramMap.map((i) => formats[i] ?? 0),
    paramTypes: sq.paramMap.map((i) => types[i] ?? 0),
    resultFormats: [0],
  };
  const events =
    sq.plan.kind === 'shards'
      ? runShardsPlan(sq.plan, sub, sq.paramMap.map((i) => params[i]), {
          connection: (shard) => ctx.connection(shard, false),
          running: ctx.running,
          columnCounts: ctx.columnCounts,
          ...(ctx.compute !== undefined ? { compute: ctx.compute } : {}),
        })
      : ctx.gather(sq.plan, sub);
  let fields: readonly FieldDescription[] = [];
  const rows: (string | null)[][] = [];
  for await (const ev of events) {
    if (ev.kind === 'fields') fields = ev.fields;
    else if (ev.kind === 'rows') for (const row of ev.rows) rows.push(row.map((v) => (v === null || v === undefined ? null : v.toString('utf8'))));
  }
  // 705: `unknown` (a string constant), which the write must resolve itself, as one server would.
  const oids = fields.map((f) => (f.typeOid === 705 ? 0 : portableTypeOid(f.typeOid)));
  const texts = rows.map((r) => r[0] ?? null);
  switch (sq.kind) {
    case 'scalar':
      if (texts.length > 1) throw sgError('subqueryMoreThanOneRow');
      return [{ text: texts[0] ?? null, type: oids[0] ?? 0 }];
    case 'list':
      return [{ text: arrayLiteral(texts), type: ARRAY_OF.get(oids[0] ?? 0) ?? 0 }];
    case 'exists':
      return [{ text: rows.length > 0 ? 't' : 'f', type: BOOL }];
    case 'array':
      return [{ text: arrayLiteral(texts), type: arrayType(oids[0] ?? 0, fields[0]) }];
    case 'rows':
    case 'assign': {
      // SET (a, b) = (SELECT …): two rows are enough for PostgreSQL to raise 21000 where it assigns, as it would with all of them.
      const kept = sq.kind === 'assign' ? rows.slice(0, 2) : rows;
      return Array.from({ length: sq.columns ?? 1 }, (_, j) => ({ text: arrayLiteral(kept.map((r) => r[j] ?? null)), type: arrayType(oids[j] ?? 0, fields[j]) }));
    }
  }
}

const BOOL = 16;
const ARRAY_TYPES = new Set(ARRAY_OF.values());

/**
 * The array type of a subquery's column, for a parameter that must carry
 * its type (ARRAY(…), the arrays `unnest` reads). A column of another type
 * (an array, which ARRAY(…) would make multi-dimensional, a domain, an
 * extension's type) is refused with 0A000 before anything is written.
 */
function arrayType(oid: number, field: FieldDescription | undefined): number {
  const type = ARRAY_OF.get(oid);
  if (type !== undefined && !ARRAY_TYPES.has(oid)) return type;
  throw sgError('unsupportedCrossShard', {
    reason: `the subquery's column ${field?.name ?? ''} (type oid ${field?.typeOid ?? 0}) has no built-in array type a parameter can carry`,
    hint: 'Cast the column to a built-in scalar type (int, bigint, numeric, text, date, timestamp, uuid, …).',
  });
}

/** A one-dimensional array literal of these element texts: each quoted (`"`, `\` escaped), NULL bare. */
export function arrayLiteral(items: readonly (string | null)[]): string {
  return `{${items.map((t) => (t === null ? 'NULL' : `"${t.replace(/[\\"]/g, (c) => `\\${c}`)}"`)).join(',')}}`;
}
