import type { ClosePortalStmt, CopyStmt, DeallocateStmt, DefElem, ExecuteStmt, FetchStmt, Node, PrepareStmt, TransactionStmt, VariableSetStmt } from 'libpg-query';
import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { constText, quoteIdent, quoteLiteral, stringOf } from '../sql/ast.js';
import { deparseNode } from '../sql/parser.js';
import { textAfterKeyword } from '../sql/text-after-keyword.js';
import type { ClosePlan, CopyFromPlan, DeallocatePlan, ExecuteArg, ExecutePlan, FetchPlan, Plan, SetPlan, TransactionPlan } from './plan.js';
import type { Placement } from './relations.js';

/** Plans of transaction control, settings, SHOW and session-level SQL objects: answered by the session, not routed by tables. */

const TX_OPS: Record<string, { op: TransactionPlan['op']; command: string }> = {
  TRANS_STMT_BEGIN: { op: 'begin', command: 'BEGIN' },
  TRANS_STMT_START: { op: 'begin', command: 'START TRANSACTION' },
  TRANS_STMT_COMMIT: { op: 'commit', command: 'COMMIT' },
  TRANS_STMT_ROLLBACK: { op: 'rollback', command: 'ROLLBACK' },
  TRANS_STMT_SAVEPOINT: { op: 'savepoint', command: 'SAVEPOINT' },
  TRANS_STMT_RELEASE: { op: 'release', command: 'RELEASE' },
  TRANS_STMT_ROLLBACK_TO: { op: 'rollbackTo', command: 'ROLLBACK' },
  TRANS_STMT_PREPARE: { op: 'prepare', command: 'PREPARE TRANSACTION' },
  TRANS_STMT_COMMIT_PREPARED: { op: 'commitPrepared', command: 'COMMIT PREPARED' },
  TRANS_STMT_ROLLBACK_PREPARED: { op: 'rollbackPrepared', command: 'ROLLBACK PREPARED' },
};

/** Transaction options in canonical SQL: 'ISOLATION LEVEL SERIALIZABLE, READ ONLY'. */
export function transactionOptions(options: readonly Node[] | undefined): string {
  const out: string[] = [];
  for (const o of options ?? []) {
    if (!('DefElem' in o)) continue;
    const d = o.DefElem;
    const arg = d.arg !== undefined && 'A_Const' in d.arg ? constText(d.arg.A_Const).text : null;
    if (d.defname === 'transaction_isolation') out.push(`ISOLATION LEVEL ${(arg ?? '').toUpperCase()}`);
    else if (d.defname === 'transaction_read_only') out.push(arg === '1' ? 'READ ONLY' : 'READ WRITE');
    else if (d.defname === 'transaction_deferrable') out.push(arg === '1' ? 'DEFERRABLE' : 'NOT DEFERRABLE');
  }
  return out.join(', ');
}

export function transactionPlan(t: TransactionStmt): Plan {
  const kind = t.kind ?? 'TRANS_STMT_BEGIN';
  const entry = TX_OPS[kind];
  if (entry === undefined) return { kind: 'refuse', error: sgError('featureNotSupported', { feature: kind, hint: '' }) };
  if (t.chain === true) {
    return { kind: 'refuse', error: sgError('featureNotSupported', { feature: `${entry.command} AND CHAIN`, hint: `Run ${entry.command} and then BEGIN.` }) };
  }
  const name = t.savepoint_name ?? t.gid ?? null;
  return { kind: 'transaction', op: entry.op, name, options: transactionOptions(t.options), command: entry.command };
}

/** SET / RESET / SET LOCAL. The value is SQL text as PostgreSQL would accept it back. */
export function setPlan(s: VariableSetStmt, sql: string): SetPlan {
  const local = s.is_local === true;
  const kind = s.kind ?? 'VAR_SET_VALUE';
  if (kind === 'VAR_RESET_ALL') return { kind: 'set', name: null, value: null, local, sql, command: 'RESET' };
  const name = (s.name ?? '').toLowerCase();
  if (kind === 'VAR_RESET') return { kind: 'set', name, value: null, local, sql, command: 'RESET' };
  if (kind === 'VAR_SET_VALUE') {
    const value = (s.args ?? []).map(settingValue).join(', ');
    return { kind: 'set', name, value, local, sql, command: 'SET' };
  }
  if (kind === 'VAR_SET_MULTI') return { kind: 'set', name, value: transactionOptions(s.args), local, sql, command: 'SET' };
  return { kind: 'set', name, value: null, local, sql, command: 'SET' };
}

function settingValue(n: Node): string {
  if ('A_Const' in n) {
    const c = constText(n.A_Const);
    if (n.A_Const.sval !== undefined) return `'${(c.text ?? '').replace(/'/g, "''")}'`;
    return c.text ?? 'NULL';
  }
  return deparseNode(n);
}

/** Options of a COPY … FROM STDIN that the engine needs to split rows, with PostgreSQL's defaults. */
export function copyFromPlan(c: CopyStmt, sql: string, table: string, placement: Placement, shards: readonly ShardName[]): Plan {
  const opts = new Map<string, Node | undefined>();
  for (const o of c.options ?? []) if ('DefElem' in o) opts.set((o.DefElem as DefElem).defname ?? '', o.DefElem.arg);
  const text = (name: string): string | null => {
    if (!opts.has(name)) return null;
    const arg = opts.get(name);
    if (arg === undefined) return 'true';
    if ('A_Const' in arg) return constText(arg.A_Const).text;
    return stringOf(arg) ?? ('Integer' in arg ? String(arg.Integer.ival ?? 0) : ('Boolean' in arg ? String(arg.Boolean.boolval === true) : null));
  };
  const formatText = (text('format') ?? 'text').toLowerCase();
  if (formatText !== 'text' && formatText !== 'csv' && formatText !== 'binary') {
    return { kind: 'refuse', error: sgError('featureNotSupported', { feature: `COPY format ${formatText}`, hint: 'Use FORMAT text, csv or binary.' }) };
  }
  const format = formatText;
  const csv = format === 'csv';
  const header = text('header');
  const quote = text('quote') ?? '"';
  let shardSql = sql;
  // FREEZE needs the table created or truncated in the same transaction on the shard; the routed rows do not need it.
  if (opts.has('freeze')) shardSql = copyFromStdinSql(c, (o) => o.defname !== 'freeze');
  const plan: CopyFromPlan = {
    kind: 'copyFrom',
    table: table as CopyFromPlan['table'],
    rule: placement === 'sharded' ? 'sharded' : placement === 'broadcast' ? 'broadcast' : 'unlisted',
    columns: (c.attlist ?? []).map((a) => stringOf(a) ?? ''),
    format,
    delimiter: text('delimiter') ?? (csv ? ',' : '\t'),
    nullString: text('null') ?? (csv ? '' : '\\N'),
    header: header !== null && !['false', 'off', '0'].includes(header.toLowerCase()),
    quote,
    escape: text('escape') ?? quote,
    sql: shardSql,
    shards,
  };
  return plan;
}

/** `COPY table (cols) FROM STDIN WITH (options)` text, keeping the options `keep` accepts. */
function copyFromStdinSql(c: CopyStmt, keep: (o: DefElem) => boolean): string {
  const rel = c.relation ?? {};
  const name = (rel.schemaname === undefined ? '' : `${quoteIdent(rel.schemaname)}.`) + quoteIdent(rel.relname ?? '');
  const cols = (c.attlist ?? []).map((a) => quoteIdent(stringOf(a) ?? ''));
  const options: string[] = [];
  for (const o of c.options ?? []) {
    if (!('DefElem' in o) || !keep(o.DefElem)) continue;
    const arg = o.DefElem.arg;
    const word = (o.DefElem.defname ?? '').toUpperCase();
    options.push(arg === undefined ? word : `${word} ${optionValue(arg)}`);
  }
  const where = c.whereClause === undefined ? '' : ` WHERE ${deparseNode(c.whereClause)}`;
  return `COPY ${name}${cols.length > 0 ? ` (${cols.join(', ')})` : ''} FROM STDIN${options.length > 0 ? ` WITH (${options.join(', ')})` : ''}${where}`;
}

function optionValue(arg: Node): string {
  if ('String' in arg) return quoteLiteral(arg.String.sval ?? '');
  if ('Integer' in arg) return String(arg.Integer.ival ?? 0);
  if ('Float' in arg) return arg.Float.fval ?? '0';
  if ('Boolean' in arg) return arg.Boolean.boolval === true ? 'true' : 'false';
  if ('A_Star' in arg) return '*';
  if ('List' in arg) return `(${(arg.List.items ?? []).map((i) => quoteIdent(stringOf(i) ?? '')).join(', ')})`;
  return deparseNode(arg);
}

/**
 * SQL PREPARE: the name, the declared types as SQL and the statement's own
 * text (what follows AS). The statement is not routed here: it is planned on
 * each EXECUTE, with the arguments' values.
 */
export function preparePlan(p: PrepareStmt, sql: string): Plan {
  const statement = textAfterKeyword(sql, 'AS');
  if (statement === null || p.query === undefined) return { kind: 'refuse', error: sgError('syntaxError', { message: 'PREPARE without AS statement' }) };
  const paramTypes = (p.argtypes ?? []).map((t) => deparseNode(t));
  return { kind: 'prepare', name: p.name ?? '', paramTypes, statement };
}

/** SQL EXECUTE: each argument as a constant's text or an expression PostgreSQL evaluates. */
export function executePlan(e: ExecuteStmt): ExecutePlan {
  const args = (e.params ?? []).map((a): ExecuteArg => {
    if ('A_Const' in a && a.A_Const.boolval === undefined && a.A_Const.bsval === undefined) {
      const c = a.A_Const;
      return { kind: 'constant', text: constText(c).text, number: c.ival !== undefined || c.fval !== undefined };
    }
    return { kind: 'expression', sql: deparseNode(a) };
  });
  return { kind: 'execute', name: e.name ?? '', args };
}

export function deallocatePlan(d: DeallocateStmt): DeallocatePlan {
  return { kind: 'deallocate', name: d.isall === true ? null : (d.name ?? '') };
}

/** FETCH ALL and BACKWARD ALL: the grammar's FETCH_ALL (LONG_MAX, as the 32-bit parser gives it). */
const FETCH_ALL = 2147483647;

const FETCH_DIRECTIONS: Record<string, FetchPlan['direction']> = {
  FETCH_FORWARD: 'forward',
  FETCH_BACKWARD: 'backward',
  FETCH_ABSOLUTE: 'absolute',
  FETCH_RELATIVE: 'relative',
};

/** FETCH / MOVE (NEXT, PRIOR, FIRST, LAST are FORWARD 1, BACKWARD 1, ABSOLUTE 1, ABSOLUTE -1 in the grammar). */
export function fetchPlan(f: FetchStmt): FetchPlan {
  const direction = FETCH_DIRECTIONS[f.direction ?? 'FETCH_FORWARD'] ?? 'forward';
  const howMany = Number(f.howMany ?? 1);
  const all = (direction === 'forward' || direction === 'backward') && howMany >= FETCH_ALL;
  return { kind: 'fetch', name: f.portalname ?? '', move: f.ismove === true, direction, count: all ? null : howMany };
}

export function closePlan(c: ClosePortalStmt): ClosePlan {
  return { kind: 'close', name: c.portalname ?? null };
}
