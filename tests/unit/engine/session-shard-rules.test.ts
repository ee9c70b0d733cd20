import { describe, expect, it } from 'vitest';
import { failure, enginePerTest, run } from './engine-fixture.js';
import { field } from './logging-cursor.js';

/**
 * Engine rules that depend on what a statement is, over logging cursors:
 * statements that cannot run in a transaction block, branches that cannot
 * PREPARE, INSERT without a column list, and INSERT … SELECT moving rows.
 * Shards: accounts by id mod 3 (3 → s0, 1 → s1, 2 → s2); s0 is the default shard.
 */

const { setup, engine } = enginePerTest();

const session = () => engine().session({ user: 'app', database: 'app' });

describe('statements that cannot run in a transaction block', () => {
  it('runs CREATE INDEX CONCURRENTLY on every shard without BEGIN or PREPARE', async () => {
    const connector = await setup();
    await run(session(), 'CREATE INDEX CONCURRENTLY accounts_name ON accounts (name)');
    expect(connector.touched().sort()).toEqual(['s0', 's1', 's2']);
    for (const s of ['s0', 's1', 's2']) expect(connector.statements(s)).toEqual(['CREATE INDEX CONCURRENTLY accounts_name ON accounts (name)']);
    expect(connector.log.some((e) => /BEGIN|PREPARE/i.test(e.sql))).toBe(false);
    expect(connector.inUse()).toEqual([]);
  });

  it('answers 25001 inside a transaction block and in a multi-statement query, sending nothing', async () => {
    const connector = await setup();
    const s = session();
    await run(s, 'BEGIN');
    expect(await failure(s, 'VACUUM accounts')).toBe('25001');
    expect(s.txStatus).toBe('E');
    await run(s, 'ROLLBACK');
    s.beginImplicit();
    expect(await failure(s, 'CREATE INDEX CONCURRENTLY i ON accounts (name)')).toBe('25001');
    await s.endImplicit(false);
    expect(connector.log.some((e) => /VACUUM|CONCURRENTLY/.test(e.sql))).toBe(false);
  });

  it('keeps ANALYZE inside a transaction', async () => {
    const connector = await setup();
    const s = session();
    await run(s, 'BEGIN');
    expect((await run(s, 'ANALYZE accounts')).tag).toBe('ANALYZE');
    await run(s, 'COMMIT');
    expect(connector.statements('s1')).toContain('ANALYZE accounts');
  });
});

describe('branches that cannot PREPARE TRANSACTION', () => {
  it('refuses the write that would make a shard with a temporary table one of two written shards, before sending it', async () => {
    const connector = await setup();
    const s = session();
    await run(s, 'BEGIN');
    await run(s, 'CREATE TEMP TABLE scratch (id int)');
    expect(await failure(s, "INSERT INTO accounts (id, name) VALUES (1, 'a')")).toBe('0A000');
    expect(connector.statements('s1').some((q) => q.startsWith('INSERT'))).toBe(false);
    await run(s, 'ROLLBACK');
  });

  it('refuses CREATE TEMP TABLE when the transaction already writes another shard', async () => {
    await setup();
    const s = session();
    await run(s, 'BEGIN');
    await run(s, "INSERT INTO accounts (id, name) VALUES (1, 'a')");
    expect(await failure(s, 'CREATE TEMP TABLE scratch (id int)')).toBe('0A000');
    await run(s, 'ROLLBACK');
  });

  it('keeps a temporary table working in a transaction that writes one shard', async () => {
    const connector = await setup();
    const s = session();
    await run(s, 'BEGIN');
    await run(s, 'CREATE TEMP TABLE scratch (id int)');
    await run(s, "INSERT INTO accounts (id, name) VALUES (3, 'c')");
    expect((await run(s, 'COMMIT')).tag).toBe('COMMIT');
    expect(connector.log.some((e) => /PREPARE TRANSACTION/.test(e.sql))).toBe(false);
  });

  it('allows LISTEN on a read-only branch of a two-shard write, then refuses writing that branch', async () => {
    await setup();
    const s = session();
    await run(s, 'BEGIN');
    await run(s, "INSERT INTO accounts (id, name) VALUES (1, 'a')");
    await run(s, "INSERT INTO accounts (id, name) VALUES (2, 'b')");
    expect((await run(s, 'LISTEN ch')).tag).toBe('LISTEN');
    expect(await failure(s, "INSERT INTO accounts (id, name) VALUES (3, 'c')")).toBe('0A000');
    await run(s, 'ROLLBACK');
  });

  it('refuses a cursor WITH HOLD on a shard that is one of two written shards', async () => {
    await setup();
    const s = session();
    await run(s, 'BEGIN');
    await run(s, "INSERT INTO accounts (id, name) VALUES (3, 'c')");
    await run(s, "INSERT INTO accounts (id, name) VALUES (1, 'a')");
    expect(await failure(s, 'DECLARE c CURSOR WITH HOLD FOR SELECT 1')).toBe('0A000');
    await run(s, 'ROLLBACK');
  });
});

describe('INSERT without a column list into a sharded table', () => {
  it('reads the column order once, routes by it, and reads it again after DDL on the table', async () => {
    const connector = await setup(({ sql, kind }) => (kind === 'rows' && sql.includes('pg_attribute') ? { rows: [['name'], ['id']] } : undefined));
    const s = session();
    await run(s, "INSERT INTO accounts VALUES ('a', 4)");
    await run(s, "INSERT INTO accounts VALUES ('b', $1)", ['2']);
    expect(connector.statements('s1')).toEqual(["INSERT INTO accounts VALUES ('a', 4)"]);
    expect(connector.statements('s2')).toEqual(["INSERT INTO accounts VALUES ('b', $1)"]);
    const lookups = () => connector.log.filter((e) => e.kind === 'rows' && e.sql.includes('pg_attribute')).length;
    expect(lookups()).toBe(1);
    await run(s, 'ALTER TABLE accounts ADD COLUMN note text');
    await run(s, "INSERT INTO accounts VALUES ('c', 3)");
    expect(lookups()).toBe(2);
    expect(connector.inUse()).toEqual([]);
  });
});

describe('INSERT … SELECT moving rows between shards', () => {
  it('reads through a cursor and inserts each row on the shard of its key, atomically', async () => {
    let fetched = false;
    const connector = await setup(({ sql, params }) => {
      if (sql.startsWith('DECLARE')) return { tag: 'DECLARE CURSOR' };
      if (sql.startsWith('FETCH')) {
        if (fetched) return { fields: [field('code', 23), field('name')], rows: [] };
        fetched = true;
        return { fields: [field('code', 23), field('name')], rows: [['1', 'a'], ['2', 'b'], ['3', 'c'], ['4', 'd']] };
      }
      if (sql.startsWith('INSERT')) return { tag: `INSERT 0 ${(params?.length ?? 0) / 2}` };
      return undefined;
    });
    const out = await run(session(), 'INSERT INTO accounts (id, name) SELECT code, name FROM countries');
    expect(out.tag).toBe('INSERT 0 4');
    expect(connector.statements('s0').find((q) => q.startsWith('DECLARE'))).toMatch(/^DECLARE sg_insert_select_\d+ NO SCROLL CURSOR FOR SELECT code, name FROM countries$/);
    const inserts = connector.log.filter((e) => e.kind === 'query' && e.sql.startsWith('INSERT'));
    const byShard = Object.fromEntries(inserts.map((e) => [e.shard, [e.sql, (e.params ?? []).map(String)]]));
    expect(byShard).toEqual({
      s0: ['INSERT INTO accounts (id, name) VALUES ($1, $2)', ['3', 'c']],
      s1: ['INSERT INTO accounts (id, name) VALUES ($1, $2), ($3, $4)', ['1', 'a', '4', 'd']],
      s2: ['INSERT INTO accounts (id, name) VALUES ($1, $2)', ['2', 'b']],
    });
    // Three written shards: two-phase commit.
    expect(connector.log.filter((e) => /^PREPARE TRANSACTION/.test(e.sql)).length).toBe(2);
    expect(connector.inUse()).toEqual([]);
  });
});
