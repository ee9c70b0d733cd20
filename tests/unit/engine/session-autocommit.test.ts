import { describe, expect, it } from 'vitest';
import { field } from './logging-cursor.js';
import { failure, enginePerTest, run } from './engine-fixture.js';

const { setup, engine } = enginePerTest();

const ids: Record<string, string[]> = { s0: ['3', '6'], s1: ['1', '4'], s2: ['2', '5'] };

describe('autocommit statements', () => {
  it('runs a single-shard statement on one connection without BEGIN and releases it', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, 'SELECT * FROM accounts WHERE id = $1', ['4']);
    expect(out.tag).toBe('SELECT 1');
    expect(connector.touched()).toEqual(['s1']);
    expect(connector.statements('s1')).toEqual(['SELECT * FROM accounts WHERE id = $1']);
    expect(connector.log.map((e) => e.kind)).toEqual(['acquire', 'query', 'release']);
    expect(connector.inUse()).toEqual([]);
  });

  it('releases a single-shard statement\'s connection when the consumer stops early or the shard fails', async () => {
    const connector = await setup(({ sql }) =>
      sql.includes('boom') ? { error: { severity: 'ERROR', code: '22012', message: 'division by zero' } } : sql.startsWith('SELECT') ? { fields: [field('id', 23)], rows: [['1'], ['2']] } : undefined,
    );
    const session = engine().session({ user: 'app', database: 'app' });
    for await (const ev of session.execute({ sql: 'SELECT id FROM accounts WHERE id = 4' })) {
      if (ev.kind === 'fields') break;
    }
    expect(connector.inUse()).toEqual([]);
    expect(await failure(session, "SELECT id FROM accounts WHERE id = 4 AND 'boom' <> ''")).toBe('22012');
    expect(connector.inUse()).toEqual([]);
    // An ordinary statement error leaves the connection fit for reuse.
    expect(connector.log.filter((e) => e.kind === 'release').map((e) => e.sql)).toEqual(['', '']);
    expect((await run(session, 'SELECT id FROM accounts WHERE id = 4')).rows).toEqual([['1'], ['2']]);
  });

  it('merges an ordered read of every shard, with LIMIT/OFFSET, without a transaction', async () => {
    const connector = await setup(({ shard, sql }) =>
      sql.startsWith('SELECT') ? { fields: [field('id', 23)], rows: ids[shard]!.map((v) => [v]) } : undefined,
    );
    const session = engine().session({ user: 'app', database: 'app' });
    const all = await run(session, 'SELECT id FROM accounts ORDER BY id');
    expect(all.rows.map((r) => r[0])).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(all.tag).toBe('SELECT 6');
    const page = await run(session, 'SELECT id FROM accounts ORDER BY id LIMIT 2 OFFSET 1');
    expect(page.rows.map((r) => r[0])).toEqual(['2', '3']);
    expect(connector.touched().sort()).toEqual(['s0', 's1', 's2']);
    expect(connector.log.some((e) => /BEGIN|PREPARE/i.test(e.sql))).toBe(false);
    expect(connector.inUse()).toEqual([]);
  });

  it('adds up partial counts of an aggregate over every shard', async () => {
    await setup(({ sql }) => (sql.startsWith('SELECT') ? { fields: [field('count', 20)], rows: [['2']] } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, 'SELECT count(*) FROM accounts');
    expect(out.rows).toEqual([['6']]);
  });

  it('concatenates rows of several shards without a merge and sums their tags', async () => {
    await setup(({ shard, sql }) => (sql.startsWith('SELECT') ? { fields: [field('id', 23)], rows: ids[shard]!.map((v) => [v]) } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, 'SELECT id FROM accounts');
    expect(out.rows.map((r) => r[0]).sort()).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(out.events.filter((e) => e.kind === 'fields')).toHaveLength(1);
    expect(out.tag).toBe('SELECT 6');
  });

  it('runs a write to several shards as one global transaction committed with two-phase commit', async () => {
    const connector = await setup(({ sql }) => (sql.startsWith('UPDATE') ? { tag: 'UPDATE 2' } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, 'UPDATE accounts SET balance = 0');
    expect(out.tag).toBe('UPDATE 6');
    const all = ['s0', 's1', 's2'].flatMap((s) => connector.statements(s));
    expect(all.filter((s) => s === 'BEGIN')).toHaveLength(3);
    expect(all.filter((s) => s.startsWith('PREPARE TRANSACTION'))).toHaveLength(2);
    expect(all.filter((s) => s.includes('INSERT INTO shardgate.tx_decision'))).toHaveLength(1);
    expect(all.filter((s) => s.startsWith('COMMIT PREPARED'))).toHaveLength(2);
    // The tag comes after the commit: nothing is left open.
    expect(connector.inUse()).toEqual([]);
  });

  it('splits a multi-row INSERT by key into one atomic write', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, 'INSERT INTO accounts (id, balance) VALUES (1, 10), (2, 20)');
    expect(connector.touched().sort()).toEqual(['s1', 's2']);
    expect(connector.statements('s1').some((s) => s.startsWith('INSERT INTO accounts'))).toBe(true);
    expect([...connector.statements('s1'), ...connector.statements('s2')].filter((s) => s.startsWith('PREPARE TRANSACTION'))).toHaveLength(1);
    expect(out.tag).toBe('INSERT 0 2');
  });

  it('rolls back everywhere when one shard of a multi-shard write fails', async () => {
    const connector = await setup(({ shard, sql }) =>
      shard === 's2' && sql.startsWith('UPDATE') ? { error: { severity: 'ERROR', code: '23514', message: 'check violated', constraint: 'positive' } } : undefined,
    );
    const session = engine().session({ user: 'app', database: 'app' });
    expect(await failure(session, 'UPDATE accounts SET balance = -1')).toBe('23514');
    const all = ['s0', 's1', 's2'].flatMap((s) => connector.statements(s));
    expect(all.some((s) => s.startsWith('PREPARE') || s.startsWith('COMMIT'))).toBe(false);
    expect(all.filter((s) => s === 'ROLLBACK')).toHaveLength(3);
    expect(session.txStatus).toBe('I');
    expect(connector.inUse()).toEqual([]);
  });

  it('answers a broadcast write once, not once per shard', async () => {
    const connector = await setup(({ sql }) => (sql.startsWith('INSERT') ? { fields: [field('code')], rows: [['fr']], tag: 'INSERT 0 1' } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, "INSERT INTO countries (code) VALUES ('fr') RETURNING code");
    expect(out.tag).toBe('INSERT 0 1');
    expect(out.rows).toEqual([['fr']]);
    expect(connector.touched().sort()).toEqual(['s0', 's1', 's2']);
  });

  it('combines errors of several shards, naming each', async () => {
    await setup(({ shard, sql }) =>
      sql.startsWith('SELECT') && shard !== 's0' ? { error: { severity: 'ERROR', code: '42703', message: `column missing on ${shard}` } } : undefined,
    );
    const session = engine().session({ user: 'app', database: 'app' });
    const err = await run(session, 'SELECT nope FROM accounts').then(
      () => null,
      (e: unknown) => e as { code: string; fields: { detail?: string } },
    );
    expect(err?.code).toBe('42703');
    expect(err?.fields.detail).toMatch(/s1/);
    expect(err?.fields.detail).toMatch(/s2/);
  });

  it('refuses client-side two-phase commit commands with 0A000', async () => {
    await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    expect(await failure(session, "COMMIT PREPARED 'x'")).toBe('0A000');
  });

  it('answers an empty query with an empty event', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, '');
    expect(out.events).toEqual([{ kind: 'empty' }]);
    expect(connector.log).toEqual([]);
  });

  it('describes a statement on the shard the planner names, outside any transaction', async () => {
    const connector = await setup(({ kind }) => (kind === 'describe' ? { fields: [field('id', 23)], paramTypes: [23] } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const d = await session.describe('SELECT id FROM accounts WHERE id = $1', [23]);
    expect(d.fields?.map((f) => f.name)).toEqual(['id']);
    expect(connector.log.filter((e) => e.kind === 'describe')).toHaveLength(1);
    expect(connector.inUse()).toEqual([]);
    const show = await session.describe('SHOW shardgate.shard');
    expect(show.fields?.map((f) => f.name)).toEqual(['shardgate.shard']);
  });

  it('asks shards for text in hidden sort columns when the client wants binary results', async () => {
    const connector = await setup(({ shard, kind, sql }) => {
      if (kind === 'describe') return { fields: [field('name'), field('__sg_0', 23)] };
      if (!sql.startsWith('SELECT')) return undefined;
      const n = Number(shard.slice(1));
      return { fields: [{ ...field('name'), format: 1 }, field('__sg_0', 23)], rows: [[`n${n}`, String(3 - n)]] };
    });
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, { sql: 'SELECT name FROM accounts ORDER BY id', resultFormats: [1] });
    expect(connector.log.filter((e) => e.kind === 'query').map((e) => e.resultFormats)).toEqual([[1, 0], [1, 0], [1, 0]]);
    expect(out.rows).toEqual([['n2'], ['n1'], ['n0']]);
  });

  it('reports application_name as set by the client', async () => {
    await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, "SET application_name = 'billing'");
    expect(out.events.filter((e) => e.kind === 'parameterStatus')).toEqual([{ kind: 'parameterStatus', name: 'application_name', value: 'billing' }]);
  });
});
