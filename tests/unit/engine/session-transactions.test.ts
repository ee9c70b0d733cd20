import { describe, expect, it } from 'vitest';
import type { Responder } from './logging-cursor.js';
import { failure, enginePerTest, run } from './engine-fixture.js';

const { setup, engine } = enginePerTest();

const failOn = (pattern: RegExp): Responder => ({ sql }) => (pattern.test(sql) ? { error: { severity: 'ERROR', code: '23505', message: 'duplicate key' } } : undefined);

describe('explicit transactions', () => {
  it('joins shards lazily and commits a write to two shards with two-phase commit', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    expect((await run(session, 'BEGIN')).tag).toBe('BEGIN');
    expect(session.txStatus).toBe('T');
    expect(connector.log).toEqual([]);
    await run(session, 'UPDATE accounts SET balance = balance - 5 WHERE id = 1');
    await run(session, 'SELECT * FROM accounts WHERE id = 3');
    await run(session, 'UPDATE accounts SET balance = balance + 5 WHERE id = 2');
    expect((await run(session, 'COMMIT')).tag).toBe('COMMIT');
    expect(session.txStatus).toBe('I');
    const s0 = connector.statements('s0');
    // s0 only read: it commits plainly and takes no part in the vote.
    expect(s0[0]).toBe('BEGIN');
    expect(s0.at(-1)).toBe('COMMIT');
    const writers = [...connector.statements('s1'), ...connector.statements('s2')];
    expect(writers.filter((s) => s.startsWith('PREPARE TRANSACTION'))).toHaveLength(1);
    expect(writers.filter((s) => s.startsWith('COMMIT PREPARED'))).toHaveLength(1);
    expect(connector.inUse()).toEqual([]);
  });

  it('describes a statement on a shard the transaction already holds instead of taking another connection', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    await run(session, 'UPDATE accounts SET balance = balance - 5 WHERE id = 1');
    const held = connector.log.filter((e) => e.kind === 'acquire').map((e) => e.shard);
    expect(held).toHaveLength(1);
    await session.describe('SELECT balance FROM accounts WHERE id = $1', [23]);
    const describes = connector.log.filter((e) => e.kind === 'describe');
    expect(describes.map((e) => e.shard)).toEqual(held);
    expect(connector.log.filter((e) => e.kind === 'acquire')).toHaveLength(1);
    await run(session, 'ROLLBACK');
    expect(connector.inUse()).toEqual([]);
  });

  it('fails the whole transaction after an error: 25P02 until ROLLBACK', async () => {
    const connector = await setup(failOn(/^INSERT/));
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    expect(await failure(session, 'INSERT INTO accounts (id) VALUES (2)')).toBe('23505');
    expect(session.txStatus).toBe('E');
    expect(await failure(session, 'SELECT * FROM accounts WHERE id = 1')).toBe('25P02');
    expect(await failure(session, 'SET work_mem = 1000')).toBe('25P02');
    expect((await run(session, 'ROLLBACK')).tag).toBe('ROLLBACK');
    expect(session.txStatus).toBe('I');
    expect(connector.inUse()).toEqual([]);
    expect((await run(session, 'SELECT * FROM accounts WHERE id = 1')).tag).toBe('SELECT 1');
  });

  it('answers COMMIT of a failed transaction with ROLLBACK', async () => {
    const connector = await setup(failOn(/^INSERT/));
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    expect(await failure(session, 'INSERT INTO accounts (id) VALUES (2)')).toBe('23505');
    expect((await run(session, 'COMMIT')).tag).toBe('ROLLBACK');
    expect(connector.statements('s2').at(-1)).toBe('ROLLBACK');
  });

  it('recovers from an error with ROLLBACK TO SAVEPOINT', async () => {
    await setup(failOn(/^INSERT INTO accounts \(id\) VALUES \(5\)/));
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    await run(session, 'INSERT INTO accounts (id) VALUES (1)');
    await run(session, 'SAVEPOINT a');
    expect(await failure(session, 'INSERT INTO accounts (id) VALUES (5)')).toBe('23505');
    expect(session.txStatus).toBe('E');
    await run(session, 'ROLLBACK TO SAVEPOINT a');
    expect(session.txStatus).toBe('T');
    expect((await run(session, 'COMMIT')).tag).toBe('COMMIT');
  });

  it('warns on BEGIN inside a transaction and on COMMIT outside one, as PostgreSQL does', async () => {
    await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const commit = await run(session, 'COMMIT');
    expect(commit.tag).toBe('COMMIT');
    expect(commit.notices.map((n) => n.code)).toEqual(['25P01']);
    await run(session, 'BEGIN');
    const again = await run(session, 'BEGIN');
    expect(again.notices.map((n) => n.code)).toEqual(['25001']);
    expect(session.txStatus).toBe('T');
    await run(session, 'ROLLBACK');
  });

  it('refuses SAVEPOINT outside a transaction block with 25P01', async () => {
    await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    expect(await failure(session, 'SAVEPOINT a')).toBe('25P01');
  });

  it('sends BEGIN options to every shard that joins', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN ISOLATION LEVEL REPEATABLE READ');
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    expect(connector.statements('s1')[0]).toBe('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await run(session, 'COMMIT');
  });

  it('rolls back everywhere when the session closes mid-transaction', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    await run(session, 'UPDATE accounts SET balance = 1 WHERE id = 1');
    await run(session, 'UPDATE accounts SET balance = 1 WHERE id = 2');
    await session.close();
    expect(connector.statements('s1').at(-1)).toBe('ROLLBACK');
    expect(connector.statements('s2').at(-1)).toBe('ROLLBACK');
    expect(connector.inUse()).toEqual([]);
  });
});

describe('implicit transactions of multi-statement queries', () => {
  it('commits statements of one query atomically', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    session.beginImplicit();
    await run(session, 'INSERT INTO accounts (id) VALUES (1)');
    await run(session, 'INSERT INTO accounts (id) VALUES (2)');
    expect(session.txStatus).toBe('I');
    await session.endImplicit(true);
    const all = [...connector.statements('s1'), ...connector.statements('s2')];
    expect(all.filter((s) => s.startsWith('PREPARE TRANSACTION'))).toHaveLength(1);
    expect(connector.inUse()).toEqual([]);
  });

  it('rolls everything back when a statement failed', async () => {
    const connector = await setup(failOn(/VALUES \(2\)/));
    const session = engine().session({ user: 'app', database: 'app' });
    session.beginImplicit();
    await run(session, 'INSERT INTO accounts (id) VALUES (1)');
    expect(await failure(session, 'INSERT INTO accounts (id) VALUES (2)')).toBe('23505');
    await session.endImplicit(false);
    expect(connector.statements('s1').at(-1)).toBe('ROLLBACK');
    expect(connector.statements('s2').at(-1)).toBe('ROLLBACK');
    expect(session.txStatus).toBe('I');
  });

  it('keeps a transaction block opened by BEGIN inside the query', async () => {
    await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    session.beginImplicit();
    await run(session, 'BEGIN');
    await run(session, 'INSERT INTO accounts (id) VALUES (1)');
    await session.endImplicit(true);
    expect(session.txStatus).toBe('T');
    expect((await run(session, 'COMMIT')).tag).toBe('COMMIT');
  });

  it('rolls back a SET made in a query whose later statement failed', async () => {
    const connector = await setup(failOn(/VALUES \(2\)/));
    const session = engine().session({ user: 'app', database: 'app' });
    session.beginImplicit();
    await run(session, 'SET work_mem = 4096');
    expect(await failure(session, 'INSERT INTO accounts (id) VALUES (2)')).toBe('23505');
    await session.endImplicit(false);
    connector.clear();
    await run(session, 'SELECT * FROM things');
    expect(connector.statements('s0')).toEqual(['RESET work_mem', 'SELECT * FROM things']);
  });
});
