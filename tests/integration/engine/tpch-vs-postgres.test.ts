import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableName } from '../../../src/config/names.js';
import type { TableRule } from '../../../src/config/types.js';
import type { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { clusterConfig, direct, openClusterEngine, onBoth, sql } from './engine-fixture.js';
import { generateTpch, insertStatements, type TpchData } from './tpch/dbgen.js';

/**
 * The 22 TPC-H queries (validation parameters, `tpch/queries/`) over the
 * same generated rows (`tpch/dbgen.ts`, seeded) on one unsharded server and
 * through the engine on three shards, laid out as Citus does: lineitem and
 * orders hashed by order key (co-located), customer by customer key, part
 * and partsupp by part key (co-located), supplier, nation and region
 * broadcast. Every query orders its output totally, so rows are compared in
 * order, as text: Q3, Q10, Q11 and Q18 end their ORDER BY with a key, which
 * the specification leaves out (ties may come in any order there). Each answer equals the server's or is refused with 0A000;
 * ANSWERED lists the ones that must be answered, so a query that starts
 * being refused fails the test.
 */

const DIR = join(import.meta.dirname, 'tpch');
// A seed whose data gives every query rows (checked by the first test).
const SEED = 3;

const TABLES = new Map<ReturnType<typeof tableName>, TableRule>([
  [tableName('lineitem'), { kind: 'hash', key: 'l_orderkey' }],
  [tableName('orders'), { kind: 'hash', key: 'o_orderkey' }],
  [tableName('customer'), { kind: 'hash', key: 'c_custkey' }],
  [tableName('part'), { kind: 'hash', key: 'p_partkey' }],
  [tableName('partsupp'), { kind: 'hash', key: 'ps_partkey' }],
  [tableName('supplier'), { kind: 'broadcast' }],
  [tableName('nation'), { kind: 'broadcast' }],
  [tableName('region'), { kind: 'broadcast' }],
]);

const COLUMNS: Readonly<Record<keyof TpchData, readonly string[]>> = {
  region: ['r_regionkey', 'r_name', 'r_comment'],
  nation: ['n_nationkey', 'n_name', 'n_regionkey', 'n_comment'],
  supplier: ['s_suppkey', 's_name', 's_address', 's_nationkey', 's_phone', 's_acctbal', 's_comment'],
  part: ['p_partkey', 'p_name', 'p_mfgr', 'p_brand', 'p_type', 'p_size', 'p_container', 'p_retailprice', 'p_comment'],
  partsupp: ['ps_partkey', 'ps_suppkey', 'ps_availqty', 'ps_supplycost', 'ps_comment'],
  customer: ['c_custkey', 'c_name', 'c_address', 'c_nationkey', 'c_phone', 'c_acctbal', 'c_mktsegment', 'c_comment'],
  orders: ['o_orderkey', 'o_custkey', 'o_orderstatus', 'o_totalprice', 'o_orderdate', 'o_orderpriority', 'o_clerk', 'o_shippriority', 'o_comment'],
  lineitem: [
    'l_orderkey', 'l_partkey', 'l_suppkey', 'l_linenumber', 'l_quantity', 'l_extendedprice', 'l_discount', 'l_tax', 'l_returnflag', 'l_linestatus',
    'l_shipdate', 'l_commitdate', 'l_receiptdate', 'l_shipinstruct', 'l_shipmode', 'l_comment',
  ],
};

/** The queries ShardGate must answer (equal to the server's); the others may be refused with 0A000. */
const ANSWERED: readonly string[] = Array.from({ length: 22 }, (_, i) => `q${String(i + 1).padStart(2, '0')}`);

const QUERIES = readdirSync(join(DIR, 'queries'))
  .filter((f) => f.endsWith('.sql'))
  .sort()
  .map((f) => ({ name: f.replace('.sql', ''), text: readFileSync(join(DIR, 'queries', f), 'utf8') }));

async function through(session: Session, q: string): Promise<(string | null)[][] | 'refused'> {
  try {
    return (await sql(session, q)).rows;
  } catch (e) {
    if (e instanceof PgError && e.code === '0A000') return 'refused';
    throw e;
  }
}

describe('TPC-H: the 22 queries across three shards equal one server', () => {
  let clusters: PgCluster[];
  let control: PgCluster;
  let engine: Engine;
  let session: Session;

  beforeAll(async () => {
    clusters = await startClusters(4, { databases: ['app'] });
    control = clusters[3]!;
    engine = await openClusterEngine(clusterConfig(clusters.slice(0, 3), { tables: TABLES }));
    session = engine.session({ user: 'app', database: 'app' });
    const schema = readFileSync(join(DIR, 'schema.sql'), 'utf8').split(';').map((s) => s.replace(/--.*$/gm, '').trim()).filter((s) => s !== '');
    const data = generateTpch(SEED);
    const load = (Object.keys(COLUMNS) as (keyof TpchData)[]).flatMap((t) => insertStatements(t, COLUMNS[t], data[t]));
    await onBoth(session, control, [...schema, ...load, 'ANALYZE']);
  });

  afterAll(async () => {
    await session?.close();
    await engine?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  it('every query selects rows on one server (the data exercises it)', async () => {
    for (const { name, text } of QUERIES) {
      const rows = await direct(control, text);
      expect(rows.length, name).toBeGreaterThan(0);
      // The single-row aggregates (Q6, Q14, Q17, Q19) must aggregate something.
      expect(rows[0]!.some((v) => v !== null), name).toBe(true);
    }
  });

  const answered: string[] = [];
  for (const { name, text } of QUERIES) {
    it(`${name} equals the server’s answer or is refused with 0A000`, async () => {
      const started = performance.now();
      const got = await through(session, text);
      const ms = performance.now() - started;
      if (got === 'refused') return;
      const controlStarted = performance.now();
      const expected = await direct(control, text);
      const controlMs = performance.now() - controlStarted;
      expect(got, name).toEqual(expected);
      answered.push(name);
      console.log(`TPC-H ${name}: answered in ${ms.toFixed(0)} ms (one server: ${controlMs.toFixed(0)} ms)`);
    });
  }

  it('answers the expected queries', () => {
    console.log(`TPC-H: ${answered.length}/22 answered: ${answered.join(' ')}`);
    expect(QUERIES).toHaveLength(22);
    expect(answered).toEqual(expect.arrayContaining([...ANSWERED]));
  });
});
