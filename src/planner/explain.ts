import type { DefElem, ExplainStmt } from 'libpg-query';
import { sgError } from '../errors/catalogue.js';
import type { PgError } from '../errors/pg-error.js';
import { quoteLiteral } from '../sql/ast.js';
import type { AggregateSpec, Count, MergeSpec, ShardsPlan } from './plan.js';

/** EXPLAIN's options as PostgreSQL's grammar takes them back: `(ANALYZE true, FORMAT 'text')`; '' when none. */
export function explainOptions(e: ExplainStmt): string {
  const parts: string[] = [];
  for (const o of e.options ?? []) {
    if (!('DefElem' in o)) continue;
    const d = o.DefElem as DefElem;
    const name = (d.defname ?? '').toUpperCase();
    if (!/^[A-Z_]+$/.test(name)) continue;
    const arg = d.arg as { String?: { sval?: string }; Integer?: { ival?: number }; Boolean?: { boolval?: boolean }; Float?: { fval?: string } } | undefined;
    if (arg === undefined) parts.push(name);
    else if (arg.String !== undefined) parts.push(`${name} ${quoteLiteral(arg.String.sval ?? '')}`);
    else if (arg.Boolean !== undefined) parts.push(`${name} ${arg.Boolean.boolval === true ? 'true' : 'false'}`);
    else if (arg.Integer !== undefined) parts.push(`${name} ${Math.trunc(arg.Integer.ival ?? 0)}`);
    else if (arg.Float !== undefined && /^[0-9.eE+-]+$/.test(arg.Float.fval ?? '')) parts.push(`${name} ${arg.Float.fval}`);
  }
  return parts.length === 0 ? '' : `(${parts.join(', ')})`;
}

/** The FORMAT option's value, lower case; 'text' when absent. */
function explainFormat(e: ExplainStmt): string {
  for (const o of e.options ?? []) {
    if ('DefElem' in o && o.DefElem.defname === 'format') {
      const arg = o.DefElem.arg as { String?: { sval?: string } } | undefined;
      return (arg?.String?.sval ?? 'text').toLowerCase();
    }
  }
  return 'text';
}

function count(c: Count): string {
  return c.kind === 'value' ? String(c.value) : `$${c.index + 1}`;
}

function aggregateText(a: AggregateSpec): string {
  const funcs = a.columns.map((c) => (c.kind === 'avg' ? `avg(sum of column ${c.sum + 1} ÷ count of column ${c.count + 1})` : `${c.kind}(column ${c.column + 1})`));
  const by = a.groupBy.length === 0 ? 'one group' : `groups by column${a.groupBy.length === 1 ? '' : 's'} ${a.groupBy.map((g) => g + 1).join(', ')}`;
  const having = a.having !== null || a.havingSql !== undefined ? ', then HAVING' : '';
  const exprs = a.expressions ?? [];
  const computed = exprs.length === 0 ? '' : `, then compute column${exprs.length === 1 ? '' : 's'} ${exprs.map((e) => e.column + 1).join(', ')} from them`;
  const where = exprs.length > 0 || a.havingSql !== undefined ? ' (in PostgreSQL, on a compute connection)' : '';
  return `combine partial aggregates ${funcs.join(', ')} into ${by}${having}${computed}${where}`;
}

/** What the proxy does with the shards' rows, one line per step; columns are 1-based positions of the shard query's select list. */
function mergeSteps(merge: MergeSpec | null): string[] {
  if (merge === null) return ['Combine: append the shards\' rows'];
  const steps: string[] = [];
  if (merge.aggregate !== null) steps.push(aggregateText(merge.aggregate));
  if (merge.distinct) steps.push('remove duplicate rows');
  if (merge.orderBy.length > 0 && merge.orderChosen !== true) {
    steps.push(
      `merge the shards' ordered streams by ${merge.orderBy.map((k) => `column ${k.column + 1}${k.descending ? ' DESC' : ''}${k.nullsFirst !== k.descending ? (k.nullsFirst ? ' NULLS FIRST' : ' NULLS LAST') : ''}`).join(', ')}`,
    );
  } else if (merge.aggregate === null && !merge.distinct) {
    steps.push("append the shards' rows");
  }
  if (merge.offset !== null) steps.push(`skip ${count(merge.offset)}`);
  if (merge.limit !== null) steps.push(`keep ${count(merge.limit)}`);
  if (merge.visibleColumns < 0) steps.push(`drop the last ${-merge.visibleColumns} column${merge.visibleColumns === -1 ? '' : 's'} (added for the merge)`);
  else steps.push(`return column${merge.visibleColumns === 1 ? '' : 's'} 1${merge.visibleColumns > 1 ? `–${merge.visibleColumns}` : ''}`);
  return [`Combine: ${steps.join('; ')}`];
}

/**
 * EXPLAIN of a statement `plan` runs on several shards: the same shards, each
 * asked for the EXPLAIN of its own part (the rewritten statement it would
 * run, with the client's options), under a header with ShardGate's plan:
 * the shards, the route and the combining step. Other formats than TEXT
 * are refused: one JSON or XML document cannot hold several plans and ours.
 * `writes`: EXPLAIN ANALYZE of a statement that writes (it runs it).
 */
export function explainAcrossShards(plan: ShardsPlan, e: ExplainStmt, sql: string, writes: boolean): ShardsPlan | PgError {
  const format = explainFormat(e);
  if (format !== 'text') {
    return sgError('unsupportedCrossShard', { reason: `EXPLAIN (FORMAT ${format.toUpperCase()}) of a statement that runs on several shards`, hint: 'Use FORMAT TEXT, or filter the statement to one shard.' });
  }
  const options = explainOptions(e);
  const shards = plan.statements.map((s) => s.shard);
  const kind = plan.merge === null ? 'Append' : 'Merge';
  return {
    ...plan,
    command: 'EXPLAIN',
    // Only EXPLAIN ANALYZE runs the statement.
    writes,
    ddl: false,
    merge: null,
    // A part that needs no rewrite is the client's own text, EXPLAIN and options included.
    statements: plan.statements.map((s) => (s.sql === sql ? s : { ...s, sql: `EXPLAIN ${options === '' ? '' : `${options} `}${s.sql}` })),
    explain: {
      header: [`ShardGate ${kind}  (shards: ${shards.join(', ')}; route: ${plan.route})`, `  ${mergeSteps(plan.merge)[0]!}`],
      labels: plan.statements.map((s) => `  ->  Shard ${s.shard}${s.sql === sql ? '' : `  (runs: ${s.sql.replace(/\s+/g, ' ')})`}`),
    },
  };
}
