import pg from 'pg';
import type { BenchOptions } from './bench-options.js';
import type { BenchCluster } from './pg-cluster.js';
import type { Cell, ResultRow, ResultTable } from './result-table.js';
import { shortReason, type BenchLog } from './select-only.js';

/** The table the cross-shard queries read; placed with `algorithm: mod` on `id`. */
export const ORDERS_TABLE = 'bench_orders';

/** The proxy's rule for ORDERS_TABLE: shard index = id mod shard count, so rows can be loaded on each shard directly. */
export const ORDERS_RULE = { key: 'id', algorithm: 'mod' } as const;

/** The TPC-H lineitem columns Q1 reads; placed with `algorithm: mod` on `l_orderkey`, one line per order. */
export const LINEITEM_TABLE = 'bench_lineitem';

/** The proxy's rule for LINEITEM_TABLE, like ORDERS_RULE: rows are loaded on each shard directly. */
export const LINEITEM_RULE = { key: 'l_orderkey', algorithm: 'mod' } as const;

/** The queries compared, each read in full by the client. */
export const CROSS_SHARD_QUERIES: readonly { readonly id: string; readonly label: string; readonly sql: string }[] = [
  {
    id: 'aggregate',
    label: 'aggregate: count, sum, avg, min, max over all rows',
    sql: `SELECT count(*), sum(amount), avg(amount), min(amount), max(amount) FROM ${ORDERS_TABLE}`,
  },
  {
    id: 'group-by',
    label: 'GROUP BY region (20 groups) ORDER BY region',
    sql: `SELECT region, count(*), sum(amount) FROM ${ORDERS_TABLE} GROUP BY region ORDER BY region`,
  },
  {
    id: 'agg-expression',
    label: 'expressions over aggregates: coalesce(sum), round(avg, 2), max - min over all rows',
    sql: `SELECT coalesce(sum(amount), 0), round(avg(amount), 2), max(amount) - min(amount) FROM ${ORDERS_TABLE}`,
  },
  {
    id: 'group-expression',
    label: 'GROUP BY region with round(avg), sum * 100.0 / count, HAVING sum / count, ORDER BY the expression LIMIT 5',
    sql:
      `SELECT region, round(avg(amount), 2) AS mean, sum(amount) * 100.0 / count(*) FROM ${ORDERS_TABLE} ` +
      'GROUP BY region HAVING sum(amount) / count(*) > 40000 ORDER BY mean DESC, region LIMIT 5',
  },
  {
    id: 'order-limit',
    label: 'ORDER BY amount DESC, id LIMIT 20',
    sql: `SELECT id, region, amount FROM ${ORDERS_TABLE} ORDER BY amount DESC, id LIMIT 20`,
  },
  {
    id: 'tpch-q1',
    label: 'TPC-H Q1 (pricing summary: 8 aggregates in 4 groups) over lineitem',
    sql:
      'SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, ' +
      'sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, ' +
      'avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order ' +
      `FROM ${LINEITEM_TABLE} WHERE l_shipdate <= date '1998-12-01' - interval '90' day ` +
      'GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus',
  },
  {
    id: 'update-in-subquery',
    label: 'UPDATE … WHERE id IN (SELECT … FROM lineitem): 11 keys found by a subquery over all shards, written on 4 shards (two-phase commit)',
    // Writes each row's own value: every run finds the same rows. IN is not a key equality, so the subquery runs first.
    sql: `UPDATE ${ORDERS_TABLE} SET amount = amount WHERE id IN (SELECT l_orderkey FROM ${LINEITEM_TABLE} WHERE l_orderkey % 997 = 7 AND l_orderkey <= 10000)`,
  },
];

const CREATE = `CREATE TABLE IF NOT EXISTS ${ORDERS_TABLE} (id bigint PRIMARY KEY, region int NOT NULL, amount int NOT NULL)`;

/** Row `id`'s columns, the same on every server: region 0..19, amount a scrambled 0..99999. */
const ROW_VALUES = 'g::bigint, (g % 20)::int, ((g * 7919) % 100000)::int';

const CREATE_LINEITEM =
  `CREATE TABLE IF NOT EXISTS ${LINEITEM_TABLE} (l_orderkey bigint PRIMARY KEY, l_quantity numeric(15,2) NOT NULL, ` +
  'l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, ' +
  'l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL)';

/**
 * Line `g`'s columns after TPC-H's rules (clause 4.2.3), scrambled from g so every server computes the same:
 * quantity 1..50, price quantity × 900..1899, discount 0..0.10, tax 0..0.08, ship date 1992-01-02..1998-12-01,
 * return flag R/A when received (ship + 1..30 days) by 1995-06-17 else N, line status O when shipped after it else F.
 */
const LINEITEM_VALUES =
  "g::bigint, (1 + g * 7 % 50)::numeric, ((1 + g * 7 % 50) * (900 + g * 13 % 1000))::numeric, (g * 3 % 11 / 100.0)::numeric, " +
  "(g * 5 % 9 / 100.0)::numeric, CASE WHEN d + (1 + g % 30)::int <= date '1995-06-17' THEN (CASE WHEN g % 2 = 0 THEN 'R' ELSE 'A' END) ELSE 'N' END, " +
  "CASE WHEN d > date '1995-06-17' THEN 'O' ELSE 'F' END, d";

/** The rows of LINEITEM_TABLE from a series `g` (SQL over `generate_series … g`), with `d` the ship date. */
const lineitemInsert = (series: string): string =>
  `INSERT INTO ${LINEITEM_TABLE} SELECT ${LINEITEM_VALUES} FROM ${series} g, LATERAL (SELECT date '1992-01-02' + (g * 7919 % 2526)::int AS d) s`;

/**
 * Loads rows 1..`rows` of ORDERS_TABLE and of LINEITEM_TABLE: all of them
 * on `single`, and on `shards[i]` the keys with key mod shards.length = i
 * (where the mod rules put them). Written directly on the servers, in
 * parallel, then analysed.
 */
export async function loadOrders(single: BenchCluster, shards: readonly BenchCluster[], database: string, rows: number): Promise<void> {
  const n = shards.length;
  await Promise.all([
    (async () => {
      await single.query(`DROP TABLE IF EXISTS ${ORDERS_TABLE}`, [], database);
      await single.query(CREATE, [], database);
      await single.query(`INSERT INTO ${ORDERS_TABLE} SELECT ${ROW_VALUES} FROM generate_series(1, $1::bigint) g`, [rows], database);
      await single.query(`ANALYZE ${ORDERS_TABLE}`, [], database);
      await single.query(`DROP TABLE IF EXISTS ${LINEITEM_TABLE}`, [], database);
      await single.query(CREATE_LINEITEM, [], database);
      await single.query(lineitemInsert('generate_series(1, $1::bigint)'), [rows], database);
      await single.query(`ANALYZE ${LINEITEM_TABLE}`, [], database);
    })(),
    ...shards.map(async (shard, i) => {
      await shard.query(`DROP TABLE IF EXISTS ${ORDERS_TABLE}`, [], database);
      await shard.query(CREATE, [], database);
      // g runs over the ids i, i+n, i+2n, … within 1..rows.
      await shard.query(
        `INSERT INTO ${ORDERS_TABLE} SELECT ${ROW_VALUES} FROM generate_series($1::bigint, $2::bigint, $3::bigint) g`,
        [i === 0 ? n : i, rows, n],
        database,
      );
      await shard.query(`ANALYZE ${ORDERS_TABLE}`, [], database);
      await shard.query(`DROP TABLE IF EXISTS ${LINEITEM_TABLE}`, [], database);
      await shard.query(CREATE_LINEITEM, [], database);
      await shard.query(lineitemInsert('generate_series($1::bigint, $2::bigint, $3::bigint)'), [i === 0 ? n : i, rows, n], database);
      await shard.query(`ANALYZE ${LINEITEM_TABLE}`, [], database);
    }),
  ]);
}

async function timeQuery(client: pg.Client, sql: string): Promise<{ ms: number; rows: unknown[] }> {
  const t0 = performance.now();
  const res = await client.query({ text: sql, rowMode: 'array' });
  return { ms: performance.now() - t0, rows: res.rows };
}

/**
 * Times each query N times through the proxy and directly on the server
 * holding all rows, alternating the two, after two warm-up runs each.
 * Reports median and p95 latency per query, and notes when the two answers
 * differ (they must not).
 */
export async function runCrossShardQueries(directUrl: string, proxyUrl: string, opts: BenchOptions, log: BenchLog): Promise<ResultTable> {
  const sides = [
    { name: 'one server', url: directUrl },
    { name: 'shardgate-4', url: proxyUrl },
  ];
  const clients = sides.map((s) => new pg.Client({ connectionString: s.url }));
  const rows: ResultRow[] = [];
  const notes = [
    `${opts.queryRows.toLocaleString('en-US')} rows (id bigint, region int, amount int), and as many TPC-H lineitem rows (the columns Q1 reads, one line per order key); 4 shards hold a quarter each, the one server all of them.`,
    `Latency of the whole query as node-pg sees it (simple protocol), ${opts.queryRuns} runs per side after 2 warm-up runs, the sides alternating.`,
  ];
  try {
    await Promise.all(clients.map((c) => c.connect()));
    for (const q of CROSS_SHARD_QUERIES) {
      const times: number[][] = sides.map(() => []);
      const answers: string[] = sides.map(() => '');
      const failures: (string | null)[] = sides.map(() => null);
      for (let run = -2; run < opts.queryRuns; run++) {
        for (let k = 0; k < sides.length; k++) {
          const i = (k + run + 2) % sides.length;
          if (failures[i] !== null) continue;
          try {
            const { ms, rows: result } = await timeQuery(clients[i]!, q.sql);
            if (run < 0) answers[i] = JSON.stringify(result);
            else times[i]!.push(ms);
          } catch (err) {
            failures[i] = shortReason(err);
            log(`cross-shard ${q.id} on ${sides[i]!.name} failed: ${failures[i]}`);
          }
        }
      }
      if (failures.every((f) => f === null) && answers[0] !== answers[1]) {
        notes.push(`${q.id}: the answers differ! one server: ${answers[0]!.slice(0, 200)}; shardgate-4: ${answers[1]!.slice(0, 200)}`);
      }
      for (const [p, suffix] of [
        [50, 'median'],
        [95, 'p95'],
      ] as const) {
        const cells: Record<string, Cell> = {};
        sides.forEach((s, i) => {
          const f = failures[i];
          cells[s.name] = f !== null ? { kind: 'missing', reason: `failed: ${f}` } : { kind: 'samples', samples: [nth(times[i]!, p)] };
        });
        rows.push({ id: `${q.id}-${suffix}`, label: `${q.label} — ${suffix}`, unit: 'ms', cells });
      }
      log(`cross-shard ${q.id}: ${sides.map((s, i) => `${s.name} ${nth(times[i]!, 50).toFixed(1)} ms`).join(', ')}`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  return { id: 'cross-shard', title: 'Cross-shard queries: 4 shards through ShardGate vs one server holding all rows', columns: sides.map((s) => s.name), baseline: 'one server', rows, notes };
}

function nth(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))]!;
}
