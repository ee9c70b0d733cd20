import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExport, serverRows, shardgate, sortedLines } from '../../harness/export.js';
import { psql, startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';
import type { PgCluster } from '../../harness/cluster.js';

/**
 * What an import recreates besides the rows: defaults (those drawing from
 * sequences too), CHECK, UNIQUE, EXCLUDE and foreign-key constraints,
 * indexes, sequences and their positions, functions, views, a materialized
 * view and triggers, read on every target shard as the source's catalog gives
 * them; a re-import changes nothing; a foreign key the target cannot enforce
 * is refused (or left out when asked, with a warning); a manifest whose
 * definitions were edited into something else than one statement is refused
 * before anything runs.
 */
const TABLES = { items: { key: 'id' }, countries: { broadcast: true }, items_view: { key: 'id' }, country_names: { broadcast: true }, country_count: { broadcast: true } };
/** Rules under which items.country → countries cannot hold: countries lives on the default shard only. */
const UNLISTED_COUNTRIES = { items: { key: 'id' }, items_view: { key: 'id' } };

const SCHEMA = [
  'CREATE EXTENSION IF NOT EXISTS btree_gist',
  `CREATE FUNCTION mark_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := NEW.note || '!'; RETURN NEW; END $$`,
  `CREATE FUNCTION sku_ok(s text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT s LIKE 'SKU-%' OR s IN ('x', 'y') $$`,
  'CREATE SEQUENCE ticket_seq START 100 INCREMENT 5',
  'CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL UNIQUE)',
  `CREATE TABLE items (id int PRIMARY KEY, sku text NOT NULL CHECK (sku_ok(sku)), qty int NOT NULL DEFAULT 1 CONSTRAINT qty_positive CHECK (qty >= 0),
     note text DEFAULT 'none', added date DEFAULT current_date, country text REFERENCES countries (code), during int4range,
     serial_no bigserial, ticket bigint DEFAULT nextval('ticket_seq'), UNIQUE (id, sku), EXCLUDE USING gist (id WITH =, during WITH &&))`,
  `CREATE FUNCTION item_label(i items) RETURNS text LANGUAGE sql AS $$ SELECT i.sku || '/' || i.qty $$`,
  'CREATE INDEX items_sku ON items (lower(sku)) WHERE qty > 0',
  'CREATE UNIQUE INDEX items_sku_id ON items (sku, id)',
  'CREATE TRIGGER items_mark BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION mark_note()',
  'CREATE VIEW country_names AS SELECT code, upper(name) AS name FROM countries',
  'CREATE VIEW items_view AS SELECT id, sku, qty FROM items WHERE qty > 0',
  'CREATE MATERIALIZED VIEW country_count AS SELECT count(*) AS n FROM countries',
];

/** The definitions of every kind an import carries, on one server, as text. */
async function shape(c: PgCluster): Promise<unknown> {
  const q = (sql: string): Promise<Record<string, unknown>[]> => c.query(sql, [], 'app');
  const user = "n.nspname = 'public'";
  return {
    defaults: await q(`SELECT d.adrelid::regclass::text AS rel, a.attname, pg_get_expr(d.adbin, d.adrelid) AS def FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum JOIN pg_class c ON c.oid = d.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${user} ORDER BY 1, 2`),
    constraints: await q(`SELECT k.conrelid::regclass::text AS rel, k.conname, pg_get_constraintdef(k.oid) AS def FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE ${user} ORDER BY 1, 2`),
    indexes: await q("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
    sequences: await q(`SELECT sequencename, data_type::text, start_value::text, min_value::text, max_value::text, increment_by::text, cycle, cache_size::text,
      (SELECT a.attname FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid WHERE d.objid = (schemaname || '.' || sequencename)::regclass AND d.deptype = 'a') AS owner
      FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1`),
    functions: await q(`SELECT p.proname, pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${user} AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e') ORDER BY 1`),
    views: await q(`SELECT c.relname, c.relkind::text, pg_get_viewdef(c.oid) AS def FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${user} AND c.relkind IN ('v', 'm') ORDER BY 1`),
    triggers: await q('SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1'),
  };
}

/** The greatest value `column` holds over all of `clusters`' rows of items. */
async function maxOver(clusters: readonly PgCluster[], column: string): Promise<bigint> {
  let max = 0n;
  for (const c of clusters) {
    const [r] = await c.query(`SELECT coalesce(max(${column}), 0)::text AS m FROM items`, [], 'app');
    if (BigInt(r!.m as string) > max) max = BigInt(r!.m as string);
  }
  return max;
}

async function nextval(c: PgCluster, sequence: string): Promise<bigint> {
  const [r] = await c.query(`SELECT nextval('${sequence}')::text AS v`, [], 'app');
  return BigInt(r!.v as string);
}

describe('shardgate import recreates the schema the export read', () => {
  let source: ShardedSetup;
  let target: ShardedSetup;
  let work: string;
  let dir: string;

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
    // Each shard's sequences hand out their own values: shard 1's are made to run ahead, so only a merge over the shards restores them safely.
    await source.clusters[1]!.query("SELECT setval('items_serial_no_seq', 10000), setval('ticket_seq', 7000)", [], 'app');
    await source.clusters[0]!.query("SELECT setval('ticket_seq', 9000, false)", [], 'app');
    dir = join(work, 'schema');
    const exp = await shardgate(['export', '--out', dir, '--config', source.proxy.configFile]).done;
    expect(exp.code, exp.stderr).toBe(0);
    expect(exp.stderr).not.toMatch(/WARNING/);
  }, 240_000);
  afterAll(async () => {
    await Promise.all([source?.stop().catch(() => undefined), target?.stop().catch(() => undefined)]);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('carries every kind of definition to every target shard, sequences past every value used, and a re-import changes nothing', { timeout: 240_000 }, async () => {
    const imp = await shardgate(['import', dir, '--config', target.proxy.configFile]).done;
    expect(imp.code, imp.stderr).toBe(0);

    const want = await shape(source.clusters[0]!);
    expect(await shape(source.clusters[1]!)).toEqual(want);
    for (const c of target.clusters) expect(await shape(c)).toEqual(want);
    const { rows } = await readExport(dir);
    // The rows are the source's, not passed through the trigger again (mark_note would append another '!').
    const perShard = await Promise.all(target.clusters.map((c) => serverRows(c.url('app'), 'public.items')));
    expect(sortedLines(perShard.flat())).toEqual(sortedLines(rows.get('public.items')!));
    expect(rows.get('public.items')!.every((r) => r[3] === 'none!')).toBe(true);

    // Every target shard's sequences start past every value any source shard handed out (9000 is where ticket_seq's shard 0 stands, unused).
    const usedSerial = await maxOver(source.clusters, 'serial_no');
    for (const c of target.clusters) {
      expect(await nextval(c, 'items_serial_no_seq')).toBeGreaterThan(10000n > usedSerial ? 10000n : usedSerial);
      expect(await nextval(c, 'ticket_seq')).toBe(9000n);
    }

    // The definitions work on the target: CHECK, foreign key, trigger, default, views.
    const bad = await psql(target.proxy.port, "INSERT INTO items (id, sku, qty) VALUES (1001, 'x', -1)");
    expect(bad.stderr).toMatch(/violates check constraint "qty_positive"/);
    const orphan = await psql(target.proxy.port, "INSERT INTO items (id, sku, country) VALUES (1003, 'x', 'zz')");
    expect(orphan.stderr).toMatch(/violates foreign key constraint "items_country_fkey"/);
    const ok = await psql(target.proxy.port, "INSERT INTO items (id, sku) VALUES (1002, 'y'); SELECT qty, note FROM items WHERE id = 1002", { args: ['-A', '-t'] });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('1|none!');
    const views = await psql(target.proxy.port, "SELECT count(*) FROM items_view WHERE id <= 500; SELECT name FROM country_names WHERE code = 'de'; SELECT n FROM country_count", { args: ['-A', '-t'] });
    expect(views.code, views.stderr).toBe(0);
    expect(views.stdout.trim().split('\n')).toEqual(['400', 'GERMANY', '2']);

    // A re-import: nothing loaded again, no definition changed, and no sequence moved back below what the target handed out since.
    const before = await Promise.all(target.clusters.map((c) => nextval(c, 'items_serial_no_seq')));
    const again = await shardgate(['import', dir, '--config', target.proxy.configFile]).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/0 loaded by this run/);
    for (const [i, c] of target.clusters.entries()) {
      expect(await shape(c)).toEqual(want);
      expect(await nextval(c, 'items_serial_no_seq')).toBe(before[i]! + 1n);
    }
  });

  it('refuses a foreign key the target cannot enforce before creating anything, and leaves it out with a warning only when asked', { timeout: 180_000 }, async () => {
    const other = await startShardedSetup(2, UNLISTED_COUNTRIES);
    try {
      const refused = await shardgate(['import', dir, '--config', other.proxy.configFile]).done;
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(/ERROR 0A000: cannot import the foreign key items_country_fkey of table public\.items: .*unlisted/);
      expect(refused.stderr).toMatch(/--skip-unenforceable-foreign-keys/);
      for (const c of other.clusters) expect(await c.query("SELECT relname FROM pg_class WHERE relname IN ('items', 'countries')", [], 'app')).toEqual([]);

      const skipped = await shardgate(['import', dir, '--skip-unenforceable-foreign-keys', '--config', other.proxy.configFile]).done;
      expect(skipped.code, skipped.stderr).toBe(0);
      expect(skipped.stderr).toMatch(/WARNING: foreign key public\.items\.items_country_fkey: .*left out as asked/);
      const fks = await Promise.all(other.clusters.map((c) => c.query("SELECT conname FROM pg_constraint WHERE contype = 'f'", [], 'app')));
      expect(fks.flat()).toEqual([]);
      // countries and its views live on the default shard only, as the proxy would have placed them.
      const [home, away] = other.clusters;
      expect(await home!.query("SELECT relname FROM pg_class WHERE relname IN ('countries', 'country_names', 'country_count', 'items', 'items_view') ORDER BY 1", [], 'app')).toHaveLength(5);
      expect(await away!.query("SELECT relname FROM pg_class WHERE relname IN ('countries', 'country_names', 'country_count', 'items', 'items_view') ORDER BY 1", [], 'app')).toEqual([{ relname: 'items' }, { relname: 'items_view' }]);
    } finally {
      await other.stop();
    }
  });

  it('refuses a manifest whose definitions were edited into other statements, before creating anything', { timeout: 180_000 }, async () => {
    const edited = join(work, 'edited');
    const exp = await shardgate(['export', '--out', edited, '--config', source.proxy.configFile]).done;
    expect(exp.code, exp.stderr).toBe(0);
    const path = join(edited, 'manifest.json');
    type Manifest = {
      tables: { name: string; indexes: string[]; columns: { name: string; default: string | null }[]; foreignKeys: { definition: string }[]; triggers: { definition: string }[] }[];
      views: { name: string; definition: string }[];
      functions: { name: string; definition: string }[];
    };
    const manifest = JSON.parse(await readFile(path, 'utf8')) as Manifest;
    const fresh = await startShardedSetup(1, TABLES);
    try {
      const items = (): Manifest['tables'][number] => manifest.tables.find((t) => t.name === 'items')!;
      const smuggled = '; DROP TABLE countries';
      for (const edit of [
        () => (items().indexes[0] = `${items().indexes[0]}${smuggled}`),
        () => (items().columns.find((c) => c.name === 'note')!.default = "'none'); DROP TABLE countries; CREATE TABLE x (y int"),
        () => (items().foreignKeys[0]!.definition += smuggled),
        () => (items().triggers[0]!.definition += smuggled),
        () => (manifest.views.find((v) => v.name === 'country_names')!.definition += smuggled),
        () => (manifest.functions.find((f) => f.name === 'mark_note')!.definition += smuggled),
        () => (manifest.functions.find((f) => f.name === 'mark_note')!.definition = 'CREATE OR REPLACE FUNCTION public.other() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'),
      ]) {
        const original = JSON.stringify(manifest);
        edit();
        await writeFile(path, JSON.stringify(manifest));
        const imp = await shardgate(['import', edited, '--config', fresh.proxy.configFile]).done;
        expect(imp.code, imp.stderr + imp.stdout).toBe(1);
        expect(imp.stderr).toMatch(/ERROR 22023: cannot import .*(do not form one|does not form the one statement expected)/);
        const tables = await fresh.clusters[0]!.query("SELECT relname FROM pg_class WHERE relname IN ('items', 'countries', 'x')", [], 'app');
        expect(tables).toEqual([]);
        expect(await fresh.clusters[0]!.query("SELECT proname FROM pg_proc WHERE proname IN ('mark_note', 'other')", [], 'app')).toEqual([]);
        Object.assign(manifest, JSON.parse(original));
      }
    } finally {
      await fresh.stop();
    }
  });
});
