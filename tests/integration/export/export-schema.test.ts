import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExport, serverRows, shardgate, sortedLines } from '../../harness/export.js';
import { psql, startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';
import type { PgCluster } from '../../harness/cluster.js';

/**
 * What an import recreates of a table besides its rows: defaults, CHECK,
 * UNIQUE and EXCLUDE constraints and indexes, read on every target shard as
 * the source's catalog gives them; what it does not carry (foreign keys,
 * sequence defaults) is named in a warning; a manifest whose definitions were
 * edited into something else than one statement is refused before anything runs.
 */
const TABLES = { items: { key: 'id' }, countries: { broadcast: true } };

const SCHEMA = [
  'CREATE EXTENSION IF NOT EXISTS btree_gist',
  'CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL UNIQUE)',
  `CREATE TABLE items (id int PRIMARY KEY, sku text NOT NULL, qty int NOT NULL DEFAULT 1 CONSTRAINT qty_positive CHECK (qty >= 0),
     note text DEFAULT 'none', added date DEFAULT current_date, country text REFERENCES countries (code), during int4range,
     serial_no bigserial, UNIQUE (id, sku), EXCLUDE USING gist (id WITH =, during WITH &&))`,
  'CREATE INDEX items_sku ON items (lower(sku)) WHERE qty > 0',
  'CREATE UNIQUE INDEX items_sku_id ON items (sku, id)',
];

/** Defaults, constraints and indexes of `table` on one server, as text. */
async function shape(c: PgCluster, table: string): Promise<unknown> {
  const q = (sql: string): Promise<Record<string, unknown>[]> => c.query(sql, [table], 'app');
  return {
    defaults: await q(`SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) AS def FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = $1::regclass AND pg_get_expr(d.adbin, d.adrelid) NOT LIKE 'nextval%' ORDER BY 1`),
    constraints: await q(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype <> 'f' ORDER BY 1`),
    indexes: await q(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY 1`),
  };
}

describe('shardgate import recreates the schema the export read', () => {
  let source: ShardedSetup;
  let target: ShardedSetup;
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'shardgate-export-schema-'));
    [source, target] = await Promise.all([startShardedSetup(2, TABLES), startShardedSetup(3, TABLES)]);
    for (const sql of SCHEMA) {
      const r = await psql(source.proxy.port, sql);
      expect(r.code, `${sql}: ${r.stderr}`).toBe(0);
    }
    const r = await psql(source.proxy.port, `INSERT INTO countries VALUES ('de', 'Germany'), ('fr', 'France');
      INSERT INTO items (id, sku, qty, country, during) SELECT g, 'SKU-' || g, g % 5, CASE WHEN g % 2 = 0 THEN 'de' END, int4range(g, g + 1) FROM generate_series(1, 500) g`);
    expect(r.code, r.stderr).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([source?.stop().catch(() => undefined), target?.stop().catch(() => undefined)]);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('carries defaults, CHECK, UNIQUE and EXCLUDE constraints and indexes to every target shard, and warns of what it leaves', { timeout: 240_000 }, async () => {
    const dir = join(work, 'schema');
    const exp = await shardgate(['export', '--out', dir, '--config', source.proxy.configFile]).done;
    expect(exp.code, exp.stderr).toBe(0);
    expect(exp.stderr).toMatch(/WARNING: table public\.items: the foreign key items_country_fkey \(FOREIGN KEY \(country\) REFERENCES countries\(code\)\) is not carried/);
    expect(exp.stderr).toMatch(/WARNING: table public\.items: the default of column serial_no \(nextval\('items_serial_no_seq'::regclass\)\) is not carried/);
    const imp = await shardgate(['import', dir, '--config', target.proxy.configFile]).done;
    expect(imp.code, imp.stderr).toBe(0);

    const want = { items: await shape(source.clusters[0]!, 'items'), countries: await shape(source.clusters[0]!, 'countries') };
    for (const c of target.clusters) {
      expect(await shape(c, 'items')).toEqual(want.items);
      expect(await shape(c, 'countries')).toEqual(want.countries);
    }
    const { rows } = await readExport(dir);
    const perShard = await Promise.all(target.clusters.map((c) => serverRows(c.url('app'), 'public.items')));
    expect(sortedLines(perShard.flat())).toEqual(sortedLines(rows.get('public.items')!));
    // The constraints hold on the target: the CHECK refuses, the default fills in.
    const bad = await psql(target.proxy.port, "INSERT INTO items (id, sku, qty, serial_no) VALUES (1001, 'x', -1, 1)");
    expect(bad.stderr).toMatch(/violates check constraint "qty_positive"/);
    const ok = await psql(target.proxy.port, "INSERT INTO items (id, sku, serial_no) VALUES (1002, 'y', 1); SELECT qty, note FROM items WHERE id = 1002", { args: ['-A', '-t'] });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('1|none');
  });

  it('refuses a manifest whose index or default text was edited into another statement, before creating anything', { timeout: 120_000 }, async () => {
    const dir = join(work, 'edited');
    const exp = await shardgate(['export', '--out', dir, '--config', source.proxy.configFile]).done;
    expect(exp.code, exp.stderr).toBe(0);
    const path = join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(path, 'utf8')) as { tables: { name: string; indexes: string[]; columns: { name: string; default: string | null }[] }[] };
    const fresh = await startShardedSetup(1, TABLES);
    try {
      const items = (): (typeof manifest.tables)[number] => manifest.tables.find((t) => t.name === 'items')!;
      for (const edit of [
        () => (items().indexes[0] = `${items().indexes[0]}; DROP TABLE countries`),
        () => (items().columns.find((c) => c.name === 'note')!.default = "'none'); DROP TABLE countries; CREATE TABLE x (y int"),
      ]) {
        const original = JSON.stringify(manifest);
        edit();
        await writeFile(path, JSON.stringify(manifest));
        const imp = await shardgate(['import', dir, '--config', fresh.proxy.configFile]).done;
        expect(imp.code, imp.stderr + imp.stdout).toBe(1);
        expect(imp.stderr).toMatch(/ERROR 22023: cannot import .*table public\.items: its (index definitions|columns or constraints) do not form one CREATE (INDEX|TABLE) of the table/);
        const tables = await fresh.clusters[0]!.query("SELECT relname FROM pg_class WHERE relname IN ('items', 'countries', 'x')", [], 'app');
        expect(tables).toEqual([]);
        Object.assign(manifest, JSON.parse(original));
      }
    } finally {
      await fresh.stop();
    }
  });
});
