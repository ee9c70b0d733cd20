import { beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/planner/plan.js';
import { initParser, Planner } from '../../../src/planner/planner.js';
import { arrayLiteral } from '../../../src/engine/subquery-write.js';
import { configs } from './configs.js';

/**
 * The write of a SubqueryWritePlan, planned with the subquery's values as
 * the engine plans it, runs only on the shards that own those keys.
 */
const columns: Record<string, readonly string[]> = { orders: ['user_id', 'total', 'status'], accounts: ['id', 'name', 'vip'], trades: ['account_id', 'qty'] };
const ctx = { hintShard: null, columnsOf: (t: string) => columns[t] };

function subqueryWrite(planner: Planner, sql: string, params: readonly string[] = []): Extract<Plan, { kind: 'subqueryWrite' }> {
  const plan = planner.plan(sql, params, ctx);
  if (plan.kind !== 'subqueryWrite') throw new Error(`expected a subqueryWrite plan, got ${JSON.stringify(plan)}`);
  return plan;
}

function shardsOf(plan: Plan): string[] {
  if (plan.kind !== 'shards') throw new Error(`expected a shards plan, got ${plan.kind}`);
  return plan.statements.map((s) => s.shard);
}

beforeAll(async () => {
  await initParser();
});

describe('writes whose subqueries run first', () => {
  it('route the write by the subquery values to the shards owning those keys only', () => {
    const planner = new Planner(configs.main!);
    const plan = subqueryWrite(planner, 'UPDATE orders SET total = 0 WHERE user_id IN (SELECT id FROM accounts WHERE vip)');
    expect(plan.write).toBe('UPDATE orders SET total = 0 WHERE user_id = ANY ($1)');
    // orders is sharded by user_id mod 4.
    for (const [keys, shards] of [
      [['5'], ['s1']],
      [['5', '9', '13'], ['s1']],
      [['4', '6', '6', null], ['s0', 's2']],
      [['1', '2', '3', '4'], ['s0', 's1', 's2', 's3']],
    ] as const) {
      expect(shardsOf(planner.plan(plan.write, [arrayLiteral(keys)], ctx)), JSON.stringify(keys)).toEqual(shards);
    }
    // No key (an empty or all-NULL result): one shard, where the write matches no row.
    expect(shardsOf(planner.plan(plan.write, [arrayLiteral([])], ctx))).toHaveLength(1);
    expect(shardsOf(planner.plan(plan.write, [arrayLiteral([null])], ctx))).toHaveLength(1);
  });

  it('route text keys quoted as array elements by their own text', () => {
    const planner = new Planner(configs.main!);
    const plan = subqueryWrite(planner, "DELETE FROM accounts WHERE id IN (SELECT status FROM orders WHERE total > 5)");
    const odd = ['a"b', 'c\\d', 'e,f', 'NULL', ' g '];
    const expected = [...new Set(odd.map((k) => planner.shardForKey('accounts' as never, k)))].sort();
    expect(shardsOf(planner.plan(plan.write, [arrayLiteral(odd)], ctx))).toEqual(expected);
  });

  it('keep client parameters apart from the subqueries values', () => {
    const planner = new Planner(configs.main!);
    const plan = subqueryWrite(planner, 'UPDATE orders SET status = $1 WHERE user_id IN (SELECT account_id FROM trades WHERE qty > $3) AND total > $2', ['x', '1', '2']);
    // $3 is read only by the subquery: the write takes $1, $2 and the subquery's value, renumbered $3.
    expect(plan.write).toBe('UPDATE orders SET status = $1 WHERE user_id = ANY ($3) AND total > $2');
    expect(plan.writeParams).toEqual([0, 1, 3]);
    expect(plan.subqueries.map((s) => [s.sql, s.paramMap])).toEqual([['SELECT account_id FROM trades WHERE qty > $1', [2]]]);
  });

  it('take each text\'s own constants, also for texts of one shape (never served from the shape cache)', () => {
    const planner = new Planner(configs.main!);
    for (const name of ['x', 'y', 'z', 'w']) {
      const plan = subqueryWrite(planner, `UPDATE orders SET total = 1 WHERE status = '${name}!' AND user_id IN (SELECT id FROM accounts WHERE name = '${name}')`);
      expect(plan.subqueries[0]!.sql).toBe(`SELECT id FROM accounts WHERE name = '${name}'`);
      expect(plan.write).toBe(`UPDATE orders SET total = 1 WHERE status = '${name}!' AND user_id = ANY ($1)`);
    }
    // A refusal that depends on a constant ('abc' cannot be routed under mod) is that text's only.
    for (const key of ['5', 'abc', '7', 'abc', '9']) {
      const plan = planner.plan(`UPDATE accounts SET name = 'n' WHERE id IN (SELECT user_id FROM orders WHERE user_id = '${key}')`, [], ctx);
      expect(plan.kind, key).toBe(key === 'abc' ? 'refuse' : 'subqueryWrite');
    }
  });
});

describe('EXISTS, ARRAY(…), row IN and SET (a, b) = (SELECT …) run first', () => {
  const planner = (): Planner => new Planner(configs.main!);

  it('EXISTS and NOT EXISTS become a boolean parameter; the lifted SELECT stops at its first row', () => {
    const plan = subqueryWrite(planner(), 'DELETE FROM orders WHERE status = $1 AND NOT EXISTS (SELECT 1 FROM accounts WHERE vip AND name = $1)', ['x']);
    expect(plan.write).toBe('DELETE FROM orders WHERE status = $1 AND NOT ($2)');
    expect(plan.subqueries.map((s) => [s.kind, s.sql])).toEqual([['exists', 'SELECT 1 FROM accounts WHERE vip AND name = $1 LIMIT 1']]);
    // A LIMIT of its own is kept as written.
    expect(subqueryWrite(planner(), 'DELETE FROM orders WHERE EXISTS (SELECT * FROM accounts LIMIT 0)').subqueries[0]!.sql).toBe('SELECT * FROM accounts LIMIT 0');
  });

  it('ARRAY(…) becomes one array parameter', () => {
    const plan = subqueryWrite(planner(), 'UPDATE accounts SET name = array_to_string(ARRAY(SELECT status FROM orders ORDER BY status), $1) WHERE id = 3', [',']);
    expect(plan.write).toBe('UPDATE accounts SET name = array_to_string($2, $1) WHERE id = 3');
    expect(plan.subqueries.map((s) => s.kind)).toEqual(['array']);
  });

  it('a row IN reads its rows back with unnest, one array per column, and keeps PostgreSQL evaluating the row comparison', () => {
    const plan = subqueryWrite(planner(), 'DELETE FROM orders WHERE (user_id, status) NOT IN (SELECT id, name FROM accounts WHERE vip)');
    expect(plan.write).toBe('DELETE FROM orders WHERE NOT ((user_id, status) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))))');
    expect(plan.subqueries.map((s) => [s.kind, s.columns])).toEqual([['rows', 2]]);
    // A column count that does not match stays for PostgreSQL to report, and the write stays refused.
    expect(planner().plan('DELETE FROM orders WHERE (user_id, status) IN (SELECT id FROM accounts)', [], ctx).kind).toBe('refuse');
  });

  it('SET (a, b) = (SELECT …) reads one row back with unnest, assigned by PostgreSQL', () => {
    const plan = subqueryWrite(planner(), 'UPDATE orders SET (total, status) = (SELECT max(qty), min(account_id::text) FROM trades) WHERE user_id = 4');
    expect(plan.write).toBe('UPDATE orders SET (total, status) = (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))) WHERE user_id = 4');
    expect(plan.subqueries.map((s) => [s.kind, s.columns])).toEqual([['assign', 2]]);
    const write = planner().plan(plan.write, ['{1}', '{a}'], ctx);
    expect(shardsOf(write)).toEqual(['s0']);
  });
});
