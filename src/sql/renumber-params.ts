import type { Node } from 'libpg-query';
import { walkTree } from './ast.js';
import { deparseNode } from './parser.js';

/**
 * Renumbers the parameters `node` uses to $1..$k, in the order of their
 * original numbers, and deparses it. `paramMap[k-1]` is the 0-based client
 * parameter the new `$k` stands for (ShardStatement.paramMap): a statement
 * that lost some of its parameters (a HAVING evaluated by the merge, a row
 * of an INSERT sent to another shard) is sent only those it still uses, so
 * the server neither counts extra ones nor has to guess an unused one's type.
 * Changes `node` in place.
 */
export function renumberParams(node: Node): { sql: string; paramMap: readonly number[] } {
  const refs: { number?: number }[] = [];
  walkTree(node, (type, value) => {
    if (type === 'ParamRef') refs.push(value as { number?: number });
    return true;
  });
  const used = [...new Set(refs.map((r) => r.number ?? 1))].sort((a, b) => a - b);
  const renumber = new Map(used.map((n, i) => [n, i + 1]));
  for (const r of refs) r.number = renumber.get(r.number ?? 1) ?? 1;
  return { sql: deparseNode(node), paramMap: used.map((n) => n - 1) };
}

/** The highest parameter number `node` uses ($n), 0 when none: how many parameters a client sends with it. */
export function paramCount(node: Node): number {
  let max = 0;
  walkTree(node, (type, value) => {
    if (type === 'ParamRef') max = Math.max(max, (value as { number?: number }).number ?? 1);
    return true;
  });
  return max;
}
