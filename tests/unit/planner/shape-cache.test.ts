import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ShardName } from '../../../src/config/names.js';
import { shardName } from '../../../src/config/names.js';
import type { ShardGateConfig } from '../../../src/config/types.js';
import type { RouteContext } from '../../../src/planner/planner.js';
import { initParser, Planner } from '../../../src/planner/planner.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { statementShape } from '../../../src/sql/statement-shape.js';
import { configs } from './configs.js';

/**
 * The shape cache must never change a plan: a planner that already holds a
 * statement's shape plans every text of it exactly as a fresh planner does
 * with a full parse and analysis (its first text of a shape always takes
 * the full path).
 */

beforeAll(async () => {
  await initParser();
});

interface Source {
  readonly query: string;
  readonly config: string;
  readonly columns?: Readonly<Record<string, readonly string[]>>;
}

const goldenDir = join(dirname(fileURLToPath(import.meta.url)), 'golden');

/** Golden statements without parameters (the shape cache serves texts without `$`). */
function goldenSources(): Source[] {
  const out: Source[] = [];
  for (const f of readdirSync(goldenDir).filter((x) => x.endsWith('.json')).sort()) {
    const c = JSON.parse(readFileSync(join(goldenDir, f), 'utf8')) as { query: string; params?: unknown[]; config?: string; tableColumns?: Record<string, string[]> };
    if ((c.params?.length ?? 0) > 0) continue;
    out.push({ query: c.query, config: c.config ?? 'main', ...(c.tableColumns === undefined ? {} : { columns: c.tableColumns }) });
  }
  return out;
}

const EXTRA: Record<string, readonly string[]> = {
  main: [
    'SELECT * FROM accounts WHERE id = 5',
    'SELECT name, balance FROM accounts WHERE id IN (1, 2, 3)',
    "SELECT * FROM accounts WHERE id = 'abc' OR id = 'def'",
    'SELECT id FROM accounts WHERE id = ANY(ARRAY[1, 2])',
    "SELECT id FROM accounts WHERE id = ANY('{1,2}')",
    'SELECT * FROM orders WHERE user_id = 10 ORDER BY created_at LIMIT 10 OFFSET 20',
    'SELECT * FROM orders WHERE user_id IN (1, 2, 3, 4) ORDER BY 1 LIMIT 5',
    'SELECT user_id, count(*) FROM orders WHERE user_id > 5 GROUP BY user_id HAVING count(*) > 2',
    'SELECT user_id, sum(amount) FROM orders WHERE user_id IN (1, 2) GROUP BY 1 HAVING sum(amount) > 10.5 ORDER BY 2 DESC LIMIT 3',
    'SELECT avg(amount) FROM orders WHERE user_id IN (3, 4)',
    "SELECT 'label' AS l, id FROM accounts WHERE id = 7",
    'SELECT amount + 1 FROM orders WHERE user_id IN (1, 2) ORDER BY amount + 1',
    "SELECT * FROM events WHERE created_at >= '2025-06-01' AND created_at < '2026-06-01'",
    "SELECT * FROM events WHERE created_at BETWEEN date '2025-01-01' AND date '2027-06-01'",
    "SELECT * FROM events WHERE created_at = '2026-02-01'::date",
    "SELECT * FROM metrics WHERE ts < '2026-01-01' ORDER BY ts DESC LIMIT 3",
    "INSERT INTO accounts (id, name) VALUES (1, 'a')",
    "INSERT INTO accounts (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    'INSERT INTO orders (user_id, amount) VALUES (7, 10.5) ON CONFLICT (id) DO UPDATE SET amount = 3',
    'INSERT INTO orders (user_id, amount) SELECT 5, amount FROM orders WHERE user_id = 5',
    'INSERT INTO orders (user_id, amount) SELECT user_id, amount FROM order_items WHERE user_id = 6',
    "INSERT INTO countries (code, name) VALUES ('FR', 'France')",
    'UPDATE accounts SET balance = balance + 100 WHERE id = 42',
    'UPDATE accounts SET id = 5 WHERE id = 4',
    'UPDATE orders SET amount = amount - 5 WHERE user_id IN (1, 2)',
    "UPDATE countries SET name = 'x' WHERE code = 'FR'",
    'DELETE FROM accounts WHERE id = 9 RETURNING name',
    'DELETE FROM trades WHERE account_id BETWEEN 1 AND 100',
    'SELECT o.amount FROM orders o JOIN order_items i ON i.user_id = o.user_id WHERE o.user_id = 77',
    'SELECT * FROM orders o, accounts a WHERE o.user_id = 3 AND a.id = 4',
    'SELECT * FROM accounts WHERE id = (SELECT max(id) FROM accounts WHERE id < 100)',
    'WITH x AS (SELECT * FROM orders WHERE user_id = 8) SELECT * FROM x WHERE amount > 1.5',
    'SELECT id FROM accounts WHERE id = 1 UNION ALL SELECT id FROM accounts WHERE id = 2',
    'SELECT id FROM accounts WHERE id = 1 UNION SELECT id FROM accounts WHERE id = 2',
    'SELECT * FROM notes WHERE id = 1',
    'SELECT * FROM accounts a JOIN notes n ON n.id = a.id WHERE a.id = 12',
    '/* shardgate:shard=s2 */ SELECT * FROM accounts WHERE id = 1',
    'SELECT * FROM accounts WHERE id = 1 -- trailing comment',
    'SELECT * FROM accounts WHERE id = -5',
    'SELECT * FROM accounts WHERE id = - 5',
    'SELECT * FROM accounts WHERE id = +5',
    'SELECT * FROM accounts WHERE id = 1 FOR UPDATE',
    'SELECT * FROM accounts WHERE id = 1 LIMIT 1',
    'SELECT * FROM accounts WHERE id = 1 LIMIT 1 OFFSET 0',
    'SELECT DISTINCT name FROM accounts WHERE id IN (1, 2, 3, 4, 5, 6)',
    "SELECT * FROM orders WHERE user_id = 5 AND note LIKE 'a%' ESCAPE '!'",
    "SELECT * FROM accounts WHERE name = 'x' AND id = 99999999999",
    "SELECT pg_notify('c', 'x') FROM accounts WHERE id = 1",
    "SELECT * FROM currencies WHERE code = 'EUR'",
    'SELECT count(*) FROM accounts WHERE id > 10',
    "SELECT * FROM accounts WHERE id = 3 AND name IS NULL AND active = TRUE AND note <> 'x'",
    'SELECT a.id, c.name FROM accounts a JOIN countries c ON c.code = a.country WHERE a.id = 44',
    'VALUES (1, 2)',
    "SELECT 1 FROM accounts WHERE id = 7; ",
  ],
  pgbench: [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;',
    'UPDATE pgbench_accounts SET abalance = abalance + -4500 WHERE aid = 8;',
    'UPDATE pgbench_tellers SET tbalance = tbalance + 2 WHERE tid = 3;',
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, -40, CURRENT_TIMESTAMP);',
    'SELECT a.abalance FROM pgbench_accounts a JOIN pgbench_branches b ON b.bid = a.aid WHERE a.aid = 5',
  ],
  ranges: [
    'SELECT * FROM readings WHERE sensor = 150',
    'SELECT * FROM readings WHERE sensor >= 50 AND sensor < 120',
    "SELECT * FROM readings WHERE sensor = '250'",
    'INSERT INTO readings (sensor, v) VALUES (10, 1), (150, 2)',
    'SELECT * FROM readings WHERE sensor IN (5, 105) ORDER BY sensor',
  ],
};

/** A small seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s >>> 13;
    return (s >>> 0) / 2 ** 32;
  };
}

const STRINGS = ['', 'x', "O''Brien", 'a\\b', '\\', "''", 'é ü', '2024-06-01', '2026-03-05 10:00', '2027-12-31', '{1,2,3}', '{}', '12', '-5', '007', '1.50', 'FR', 'EUR',
  '6ba7b810-9dad-11d1-80b4-00c04fd430c8', '6BA7B8109DAD11D180B400C04FD430C8', ' 42 ', 'NULL', "a'' OR 1=1 --", 'tab\there', 'line\nbreak', 'x%', '100', '199', '200'];
/** Integers that fit in int4 (the parser's ICONST). */
const INTEGERS = ['0', '1', '2', '3', '5', '7', '42', '99', '100', '101', '150', '199', '200', '250', '007', '2147483647', '65536', '12345'];
/** Other numbers (FCONST): beyond int4, decimals, exponents. */
const OTHER_NUMBERS = ['2147483648', '99999999999999999999', '1.5', '10.50', '.5', '1e3', '0.0', '100.0', '199.99', '4294967297'];

/**
 * Texts of the same statement with other constants. `sameShape`: each
 * literal gets a random value of its own class (the texts share the
 * statement's shape); otherwise values are sometimes of another kind,
 * signed differently, or TRUE/FALSE/NULL (texts of other shapes).
 */
function variants(query: string, count: number, next: () => number, sameShape: boolean): string[] {
  const shape = statementShape(query);
  if (shape === null) return [];
  const segments = shape.key.split(/\0[ifIFs]/);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const ofClass = (cls: string): string => {
    if (cls === 's') return `'${pick(STRINGS)}'`;
    const n = pick(cls === 'i' || cls === 'I' ? INTEGERS : OTHER_NUMBERS);
    return cls === 'I' || cls === 'F' ? `-${n}` : n;
  };
  const out: string[] = [];
  for (let n = 0; n < count; n++) {
    let text = segments[0] as string;
    for (let k = 0; k < shape.literals.length; k++) {
      const cls = shape.classes[k] as string;
      let lit = ofClass(cls);
      if (!sameShape) {
        const r = next();
        if (r < 0.1) lit = pick(['NULL', 'TRUE', 'FALSE']);
        else if (r < 0.3) lit = ofClass(pick(['i', 'f', 's', 'I', 'F']));
      }
      // No minus right after a minus: `--` starts a comment.
      if (lit.startsWith('-') && text.endsWith('-')) lit = lit.slice(1);
      text += lit + (segments[k + 1] as string);
    }
    out.push(text);
  }
  return out;
}

function ctxFor(source: Source, hint: ShardName | null): RouteContext {
  const columns = source.columns;
  return { hintShard: hint, ...(columns === undefined ? {} : { columnsOf: (table: string) => columns[table] }) };
}

/** A plan as JSON text (key order included): PgErrors keep the fields a client sees. */
function planText(planner: Planner, sql: string, ctx: RouteContext): string {
  return JSON.stringify(planner.plan(sql, [], ctx), (_key, value: unknown) => (value instanceof PgError ? { ...value.fields } : value));
}


describe('shape cache', () => {
  const sources: Source[] = [...goldenSources(), ...Object.entries(EXTRA).flatMap(([config, qs]) => qs.map((query) => ({ query, config })))];

  it('plans every text of a known shape exactly as a fresh planner does with a full analysis', () => {
    const next = rng(20240611);
    const warm = new Map<string, Planner>();
    let compared = 0;
    for (const source of sources) {
      const config = configs[source.config] as ShardGateConfig;
      let w = warm.get(source.config);
      if (w === undefined) {
        w = new Planner(config);
        warm.set(source.config, w);
      }
      w.plan(source.query, [], ctxFor(source, null));
      for (const text of [...variants(source.query, 12, next, true), ...variants(source.query, 6, next, false)]) {
        const hint = next() < 0.1 ? shardName('s1') : null;
        const ctx = ctxFor(source, hint);
        const expected = planText(new Planner(config), text, ctx);
        expect(planText(w, text, ctx), text).toBe(expected);
        // Once more: the shape's analysis is now built (or the text cached), and must still agree.
        expect(planText(w, text, ctx), text).toBe(expected);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(2000);
    const hits = [...warm.values()].reduce((n, p) => n + p.cacheStats.shapeHits, 0);
    // Most texts are served from their shape: the comparison is not only of full analyses.
    expect(hits).toBeGreaterThan(compared / 2);
  });

  it('describes a text of a known shape on the shard a full analysis names', () => {
    const next = rng(99);
    for (const source of sources.filter((s) => s.config === 'main')) {
      const w = new Planner(configs.main as ShardGateConfig);
      const texts = variants(source.query, 4, next, next() < 0.7);
      w.plan(source.query, [], ctxFor(source, null));
      for (const text of texts) {
        const fresh = new Planner(configs.main as ShardGateConfig);
        const ctx = ctxFor(source, null);
        let expected: unknown;
        try {
          expected = fresh.describeShards(text, ctx);
        } catch (e) {
          expected = (e as { code?: string }).code;
        }
        let actual: unknown;
        try {
          actual = w.describeShards(text, ctx);
        } catch (e) {
          actual = (e as { code?: string }).code;
        }
        expect(actual, text).toEqual(expected);
      }
    }
  });
});

describe('shape cache counters', () => {
  const noHint = { hintShard: null };

  it('takes the full path for the first text of a shape, builds the shape on the second, and serves the rest from it', () => {
    const p = new Planner(configs.pgbench as ShardGateConfig);
    const text = (aid: number): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`;
    p.plan(text(1), [], noHint);
    expect(p.cacheStats).toEqual({ hits: 0, misses: 1, shapeHits: 0 });
    p.plan(text(2), [], noHint);
    expect(p.cacheStats).toEqual({ hits: 0, misses: 2, shapeHits: 0 });
    for (let aid = 3; aid < 103; aid++) p.plan(text(aid), [], noHint);
    expect(p.cacheStats).toEqual({ hits: 0, misses: 2, shapeHits: 100 });
    // Parsed texts are cached by text; texts served from their shape are not.
    p.plan(text(1), [], noHint);
    p.plan(text(2), [], noHint);
    p.plan(text(50), [], noHint);
    expect(p.cacheStats).toEqual({ hits: 2, misses: 2, shapeHits: 101 });
    expect(p.describeShard(text(7), noHint)).toBe('s0');
    expect(p.cacheStats.shapeHits).toBe(102);
  });

  it('routes each text of a shape by its own key value', () => {
    const p = new Planner(configs.main as ShardGateConfig);
    const shards = new Set<string>();
    for (let user = 0; user < 8; user++) {
      const plan = p.plan(`SELECT * FROM orders WHERE user_id = ${user}`, [], noHint);
      expect(plan.kind === 'shards' && plan.statements.map((s) => [s.shard, s.sql])).toEqual([[`s${user % 4}`, `SELECT * FROM orders WHERE user_id = ${user}`]]);
      shards.add(plan.kind === 'shards' ? (plan.statements[0]?.shard ?? '') : '');
    }
    expect(shards.size).toBe(4);
    expect(p.cacheStats.shapeHits).toBe(6);
  });

  it('never serves a shape whose literal is not one constant of the tree', () => {
    const p = new Planner(configs.main as ShardGateConfig);
    for (let id = 1; id < 6; id++) p.plan(`SELECT * FROM accounts WHERE id = - ${id}`, [], noHint);
    expect(p.cacheStats).toEqual({ hits: 0, misses: 5, shapeHits: 0 });
  });

  it('takes the full path when the plan rewrites the text (the rewrite holds the constants)', () => {
    const p = new Planner(configs.main as ShardGateConfig);
    for (let n = 1; n < 6; n++) {
      const plan = p.plan(`SELECT id FROM accounts WHERE name <> 'x${n}' ORDER BY id LIMIT 3 OFFSET 2`, [], noHint);
      expect(plan.kind === 'shards' && plan.statements[0]?.sql).toContain(`'x${n}'`);
    }
    expect(p.cacheStats).toEqual({ hits: 0, misses: 5, shapeHits: 0 });
  });

  it('keeps a variant per set of constants the merge is planned from (LIMIT here)', () => {
    const p = new Planner(configs.main as ShardGateConfig);
    for (let n = 0; n < 6; n++) {
      const limit = 1 + (n % 2);
      for (const id of [10, 11]) p.plan(`SELECT id FROM accounts WHERE id = ${id + n * 100} LIMIT ${limit}`, [], noHint);
    }
    // First text: full path; then one parsed text per LIMIT value; the other 9 from their variant.
    expect(p.cacheStats).toEqual({ hits: 0, misses: 3, shapeHits: 9 });
  });
});
