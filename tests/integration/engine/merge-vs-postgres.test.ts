import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { PgCluster } from '../../harness/cluster.js';
import { mergeStreams, mergedFields } from '../../../src/engine/merge/merge-streams.js';
import { TEXT_AS_BYTES } from '../../../src/engine/values.js';
import type { FieldDescription, RawRow } from '../../../src/protocol/fields.js';
import type { MergeSpec, SortKey, AggregateSpec } from '../../../src/planner/plan.js';
import { shardName, tableName } from '../../../src/config/names.js';
import type { ShardGateConfig } from '../../../src/config/types.js';
import { initParser, Planner } from '../../../src/planner/planner.js';

/**
 * The merge against PostgreSQL itself: a table is split into four "shards"
 * (tables t0..t3 on one server), the rewritten statement runs on each, the
 * results are merged, and the outcome must equal the same query over the
 * whole table byte for byte, in text and in binary format.
 */

const SHARDS = 4;

interface Case {
  readonly name: string;
  /** The client's query over the whole table `t`. */
  readonly control: string;
  /** The shard statement; `{t}` becomes the shard's table. */
  readonly shard: string;
  readonly spec: MergeSpec;
  readonly params?: readonly string[];
  /** Without ORDER BY the order is unspecified: compare sorted rows. */
  readonly unordered?: boolean;
}

const asc = (column: number): SortKey => ({ column, descending: false, nullsFirst: false });
const desc = (column: number): SortKey => ({ column, descending: true, nullsFirst: true });
const base = (partial: Partial<MergeSpec> & { visibleColumns: number }): MergeSpec => ({ aggregate: null, distinct: false, orderBy: [], offset: null, limit: null, ...partial });
const agg = (partial: Partial<AggregateSpec>): AggregateSpec => ({ groupBy: [], columns: [], having: null, ...partial });

const cases: Case[] = [
  {
    name: 'ORDER BY int DESC with LIMIT and OFFSET',
    control: 'SELECT id, v FROM t ORDER BY v DESC, id LIMIT 10 OFFSET 5',
    shard: 'SELECT id, v FROM {t} ORDER BY v DESC, id LIMIT 15',
    spec: base({ visibleColumns: 2, orderBy: [desc(1), asc(0)], offset: { kind: 'value', value: 5 }, limit: { kind: 'value', value: 10 } }),
  },
  {
    name: 'ORDER BY text with hidden sort columns',
    control: 'SELECT v FROM t ORDER BY g, id',
    shard: 'SELECT v, g, id FROM {t} ORDER BY g, id',
    spec: base({ visibleColumns: 1, orderBy: [asc(1), asc(2)] }),
  },
  {
    name: 'ORDER BY date NULLS FIRST',
    control: 'SELECT id, d FROM t ORDER BY d NULLS FIRST, id',
    shard: 'SELECT id, d FROM {t} ORDER BY d NULLS FIRST, id',
    spec: base({ visibleColumns: 2, orderBy: [{ column: 1, descending: false, nullsFirst: true }, asc(0)] }),
  },
  {
    name: 'ORDER BY numeric and float',
    control: 'SELECT n, f, id FROM t ORDER BY n, f DESC, id',
    shard: 'SELECT n, f, id FROM {t} ORDER BY n, f DESC, id',
    spec: base({ visibleColumns: 3, orderBy: [asc(0), desc(1), asc(2)] }),
  },
  {
    name: 'ORDER BY with LIMIT and OFFSET parameters',
    control: 'SELECT id FROM t ORDER BY id LIMIT $1 OFFSET $2',
    shard: 'SELECT id FROM {t} ORDER BY id LIMIT $1::bigint + $2::bigint',
    spec: base({ visibleColumns: 1, orderBy: [asc(0)], limit: { kind: 'param', index: 0 }, offset: { kind: 'param', index: 1 } }),
    params: ['7', '20'],
  },
  {
    name: 'plain aggregates over int, bigint, numeric, float, text and date',
    control: 'SELECT count(*), count(v), sum(v), min(v), max(v), avg(v), sum(b), avg(b), sum(n), avg(n), sum(f), avg(f), min(g), max(g), min(d), max(d) FROM t',
    shard:
      'SELECT count(*), count(v), sum(v), min(v), max(v), sum(v), sum(b), sum(b), sum(n), sum(n), sum(f), sum(f), min(g), max(g), min(d), max(d), count(v), count(b), count(n), count(f) FROM {t}',
    spec: base({
      visibleColumns: 16,
      aggregate: agg({
        columns: [
          { kind: 'count', column: 0 },
          { kind: 'count', column: 1 },
          { kind: 'sum', column: 2 },
          { kind: 'min', column: 3 },
          { kind: 'max', column: 4 },
          { kind: 'avg', column: 5, sum: 5, count: 16 },
          { kind: 'sum', column: 6 },
          { kind: 'avg', column: 7, sum: 7, count: 17 },
          { kind: 'sum', column: 8 },
          { kind: 'avg', column: 9, sum: 9, count: 18 },
          { kind: 'sum', column: 10 },
          { kind: 'avg', column: 11, sum: 11, count: 19 },
          { kind: 'min', column: 12 },
          { kind: 'max', column: 13 },
          { kind: 'min', column: 14 },
          { kind: 'max', column: 15 },
        ],
      }),
    }),
  },
  {
    name: 'plain aggregates over no rows',
    control: 'SELECT count(*), sum(v), avg(v), avg(n), max(g) FROM t WHERE id < 0',
    shard: 'SELECT count(*), sum(v), sum(v), sum(n), max(g), count(v), count(n) FROM {t} WHERE id < 0',
    spec: base({
      visibleColumns: 5,
      aggregate: agg({
        columns: [
          { kind: 'count', column: 0 },
          { kind: 'sum', column: 1 },
          { kind: 'avg', column: 2, sum: 2, count: 5 },
          { kind: 'avg', column: 3, sum: 3, count: 6 },
          { kind: 'max', column: 4 },
        ],
      }),
    }),
  },
  {
    name: 'GROUP BY text streamed in group order',
    control: 'SELECT g, count(*), sum(v), avg(v), avg(n), min(d) FROM t GROUP BY g ORDER BY g',
    shard: 'SELECT g, count(*), sum(v), sum(v), sum(n), min(d), count(v), count(n) FROM {t} GROUP BY g ORDER BY g',
    spec: base({
      visibleColumns: 6,
      orderBy: [asc(0)],
      aggregate: agg({
        groupBy: [0],
        columns: [
          { kind: 'count', column: 1 },
          { kind: 'sum', column: 2 },
          { kind: 'avg', column: 3, sum: 3, count: 6 },
          { kind: 'avg', column: 4, sum: 4, count: 7 },
          { kind: 'min', column: 5 },
        ],
      }),
    }),
  },
  {
    name: 'GROUP BY with HAVING, ORDER BY an aggregate and LIMIT',
    control: 'SELECT k, count(*), avg(v) FROM t GROUP BY k HAVING count(*) > 30 AND avg(v) > $1 ORDER BY avg(v) DESC, k LIMIT 8',
    shard: 'SELECT k, count(*), sum(v), count(v) FROM {t} GROUP BY k',
    params: ['45'],
    spec: base({
      visibleColumns: 3,
      orderBy: [desc(2), asc(0)],
      limit: { kind: 'value', value: 8 },
      aggregate: agg({
        groupBy: [0],
        columns: [
          { kind: 'count', column: 1 },
          { kind: 'avg', column: 2, sum: 2, count: 3 },
        ],
        having: {
          kind: 'and',
          args: [
            { kind: 'compare', op: '>', left: { kind: 'column', column: 1 }, right: { kind: 'literal', value: '30' } },
            { kind: 'compare', op: '>', left: { kind: 'column', column: 2 }, right: { kind: 'param', index: 0 } },
          ],
        },
      }),
    }),
  },
  {
    name: 'GROUP BY date without ORDER BY',
    control: 'SELECT d, count(*), max(f), min(n) FROM t GROUP BY d',
    shard: 'SELECT d, count(*), max(f), min(n) FROM {t} GROUP BY d',
    unordered: true,
    spec: base({
      visibleColumns: 4,
      aggregate: agg({
        groupBy: [0],
        columns: [
          { kind: 'count', column: 1 },
          { kind: 'max', column: 2 },
          { kind: 'min', column: 3 },
        ],
      }),
    }),
  },
  {
    name: 'DISTINCT sorted',
    control: 'SELECT DISTINCT g, v % 3 FROM t ORDER BY g, v % 3',
    shard: 'SELECT DISTINCT g, v % 3 FROM {t} ORDER BY g, v % 3',
    spec: base({ visibleColumns: 2, distinct: true, orderBy: [asc(0), asc(1)] }),
  },
  {
    name: 'DISTINCT unsorted over numeric',
    control: 'SELECT DISTINCT round(n) FROM t',
    shard: 'SELECT DISTINCT round(n) FROM {t}',
    unordered: true,
    spec: base({ visibleColumns: 1, distinct: true }),
  },
];

/**
 * Select lists with `*`, planned by the planner itself: its shard statement
 * runs unchanged in schemas s0..s3 (each holding that shard's `t` and `p`,
 * `cat` being a broadcast table in public), with the merge spec it produced.
 */
interface PlannedCase {
  readonly name: string;
  readonly query: string;
  readonly params?: readonly string[];
  readonly unordered?: boolean;
}

const plannedCases: PlannedCase[] = [
  { name: 'SELECT * ORDER BY a column of the *', query: 'SELECT * FROM t ORDER BY id' },
  { name: 'SELECT * ORDER BY DESC with LIMIT and OFFSET', query: 'SELECT * FROM t ORDER BY v DESC, id LIMIT 10 OFFSET 5' },
  { name: 'SELECT * ORDER BY NULLS LAST with LIMIT and OFFSET parameters', query: 'SELECT * FROM t ORDER BY n DESC NULLS LAST, id LIMIT $1 OFFSET $2', params: ['7', '3'] },
  { name: 'SELECT * ORDER BY an expression not selected', query: 'SELECT * FROM t ORDER BY v % 7, g DESC, id' },
  { name: 'SELECT * with LIMIT only', query: 'SELECT * FROM t WHERE id <= 12 LIMIT 50', unordered: true },
  { name: 'qualified * joined to a broadcast table, ORDER BY both', query: 'SELECT t.*, c.label FROM t JOIN cat AS c ON c.k = t.k ORDER BY c.label DESC, t.id LIMIT 40' },
  { name: 'select items after * ordered by name and position', query: 'SELECT t.*, v % 5 AS m, g AS gg FROM t ORDER BY m, gg NULLS FIRST, 1' },
  { name: 'select item before * ordered by it', query: 'SELECT -id AS neg, * FROM t ORDER BY neg LIMIT 25' },
  { name: 'SELECT DISTINCT *', query: 'SELECT DISTINCT * FROM p', unordered: true },
  { name: 'SELECT DISTINCT * ORDER BY columns of the *', query: 'SELECT DISTINCT * FROM p ORDER BY g DESC, k' },
];

const plannerConfig: ShardGateConfig = {
  listen: { host: '127.0.0.1', port: 6432 },
  admin: null,
  adminToken: null,
  database: 'app',
  auth: { users: [], trust: true },
  coordinatorId: 'gw1',
  shards: Array.from({ length: SHARDS }, (_, i) => ({ kind: 'postgres' as const, name: shardName(`s${i}`), url: `postgres://127.0.0.1:${55432 + i}/app` })),
  defaultShard: shardName('s0'),
  pool: { maxPerShard: 4, acquireTimeoutMs: 1000, maxClients: 100 },
  transactions: { prepareTimeoutMs: 5000, recoveryIntervalMs: 5000 },
  tables: new Map([
    [tableName('t'), { kind: 'hash', key: 'id' }],
    [tableName('p'), { kind: 'hash', key: 'k' }],
    [tableName('cat'), { kind: 'broadcast' }],
  ]),
};

type Format = 'text' | 'binary';

interface Result {
  readonly fields: FieldDescription[];
  readonly rows: RawRow[];
}

const rawTypes = { getTypeParser: () => (value: unknown) => value } as unknown as pg.CustomTypesConfig;

/**
 * Runs a query and returns its raw column values. node-pg only reads text, so
 * the binary form is obtained from the server itself: each column is passed
 * through its type's send function (pg_type.typsend), which produces exactly
 * the bytes PostgreSQL puts in a binary DataRow.
 */
async function run(client: pg.Client, sql: string, params: readonly string[], format: Format): Promise<Result> {
  const res = await client.query({ text: sql, values: [...params], rowMode: 'array', types: rawTypes });
  const fields = res.fields.map((f) => ({
    name: f.name,
    tableOid: f.tableID,
    columnAttr: f.columnID,
    typeOid: f.dataTypeID,
    typeSize: f.dataTypeSize,
    typeModifier: f.dataTypeModifier,
    format: format === 'binary' ? (1 as const) : (0 as const),
  }));
  if (format === 'text') {
    const rows = (res.rows as unknown[][]).map((r) => r.map((v) => (v === null ? null : Buffer.from(String(v), 'utf8'))));
    return { fields, rows };
  }
  const sends: string[] = [];
  for (const f of fields) {
    const { rows } = await client.query<{ typsend: string }>('SELECT typsend::text FROM pg_type WHERE oid = $1', [f.typeOid]);
    sends.push(rows[0]!.typsend);
  }
  const names = fields.map((_, i) => `c${i}`);
  const wrapped = `SELECT ${names.map((n, i) => `${sends[i]}(q.${n})`).join(', ')} FROM (${sql}) AS q(${names.join(', ')})`;
  const bin = await client.query({ text: wrapped, values: [...params], rowMode: 'array', types: rawTypes });
  const rows = (bin.rows as unknown[][]).map((r) => r.map((v) => (v === null ? null : Buffer.from(String(v).slice(2), 'hex'))));
  return { fields, rows };
}

async function* batches(rows: readonly RawRow[], size: number): AsyncGenerator<readonly RawRow[]> {
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
}

function show(rows: readonly RawRow[], format: Format): string[] {
  return rows.map((r) => r.map((v) => (v === null ? 'NULL' : format === 'text' ? v.toString('utf8') : v.toString('hex'))).join(' | '));
}

describe('merge compared with one PostgreSQL server', () => {
  let cluster: PgCluster;
  let client: pg.Client;

  beforeAll(async () => {
    cluster = await PgCluster.create();
    client = new pg.Client({ connectionString: cluster.url() });
    await client.connect();
    await client.query(`
      CREATE TABLE t AS
      SELECT id,
             CASE WHEN id % 11 = 0 THEN NULL ELSE (id * 31) % 97 END AS v,
             (id::bigint * 1000003) % 100000007 * 1000000 AS b,
             CASE WHEN id % 13 = 0 THEN NULL ELSE round(((id * 37) % 1000)::numeric / 7, id % 4) END AS n,
             ((id * 13) % 400) / 4.0::float8 AS f,
             CASE WHEN id % 19 = 0 THEN NULL ELSE (ARRAY['a', 'b', 'B', 'é', 'Z', 'zeta', 'ab'])[id % 7 + 1] END AS g,
             CASE WHEN id % 17 = 0 THEN NULL WHEN id % 97 = 0 THEN date '0044-03-15 BC' ELSE date '2020-01-01' + (id * 7) % 900 END AS d,
             id % 40 AS k
      FROM generate_series(1, 3000) AS id`);
    for (let s = 0; s < SHARDS; s++) await client.query(`CREATE TABLE t${s} AS SELECT * FROM t WHERE id % ${SHARDS} = ${s}`);
    // p: many duplicate rows, spread over the shards so that DISTINCT has to combine them.
    await client.query('CREATE TABLE p AS SELECT k % 9 AS k, g FROM t');
    await client.query(`CREATE TABLE cat AS SELECT k, CASE WHEN k % 6 = 0 THEN NULL ELSE 'label ' || (k * 7) % 13 END AS label FROM generate_series(0, 39) AS k`);
    for (let s = 0; s < SHARDS; s++) {
      await client.query(`CREATE SCHEMA s${s}`);
      await client.query(`CREATE TABLE s${s}.t AS SELECT * FROM t${s}`);
      await client.query(`CREATE TABLE s${s}.p AS SELECT k % 9 AS k, g FROM t${s}`);
    }
    await initParser();
  });

  afterAll(async () => {
    await client?.end();
    await cluster?.destroy();
  });

  for (const format of ['text', 'binary'] as const) {
    for (const c of cases) {
      it(`${c.name} (${format})`, async () => {
        const params = c.params ?? [];
        const control = await run(client, c.control, params, format);
        const shardParams = c.shard.includes('$') ? params : [];
        const parts = [];
        for (let s = 0; s < SHARDS; s++) parts.push(await run(client, c.shard.replaceAll('{t}', `t${s}`), shardParams, format));
        const fields = parts[0]!.fields;
        const merged: RawRow[] = [];
        for await (const batch of mergeStreams(parts.map((p) => batches(p.rows, 7)), fields, c.spec, params, { batchSize: 5, text: TEXT_AS_BYTES })) merged.push(...batch);

        expect(mergedFields(fields, c.spec).map((f) => f.typeOid)).toEqual(control.fields.map((f) => f.typeOid));
        const actual = show(merged, format);
        const expected = show(control.rows, format);
        if (c.unordered) {
          actual.sort();
          expected.sort();
        }
        expect(actual).toEqual(expected);
        expect(expected.length).toBeGreaterThan(0);
      });
    }

    for (const c of plannedCases) {
      it(`planned: ${c.name} (${format})`, async () => {
        const params = c.params ?? [];
        const plan = new Planner(plannerConfig).plan(c.query, params, { hintShard: null });
        if (plan.kind !== 'shards' || plan.merge === null) throw new Error(`expected a merged plan, got ${JSON.stringify(plan)}`);
        expect(plan.statements).toHaveLength(SHARDS);
        const control = await run(client, c.query, params, format);
        const parts: Result[] = [];
        try {
          for (const [s, statement] of plan.statements.entries()) {
            await client.query(`SET search_path TO s${s}, public`);
            const shardParams = statement.paramMap === null ? params : statement.paramMap.map((i) => params[i]!);
            parts.push(await run(client, statement.sql, shardParams, format));
          }
        } finally {
          await client.query('RESET search_path');
        }
        const fields = parts[0]!.fields;
        const merged: RawRow[] = [];
        for await (const batch of mergeStreams(parts.map((p) => batches(p.rows, 7)), fields, plan.merge, params, { batchSize: 5, text: TEXT_AS_BYTES })) merged.push(...batch);

        expect(mergedFields(fields, plan.merge).map((f) => [f.name, f.typeOid])).toEqual(control.fields.map((f) => [f.name, f.typeOid]));
        const actual = show(merged, format);
        const expected = show(control.rows, format);
        if (c.unordered) {
          actual.sort();
          expected.sort();
        }
        expect(actual).toEqual(expected);
        expect(expected.length).toBeGreaterThan(0);
      });
    }
  }
});
