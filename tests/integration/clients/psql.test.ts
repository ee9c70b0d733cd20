import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql, type ShardedSetup } from '../../harness/proxy.js';
import { countsPerShard, startAccountSetup } from './account-setup.js';

describe('psql through the proxy', () => {
  let setup: ShardedSetup;
  let port: number;
  beforeAll(async () => {
    setup = await startAccountSetup();
    port = setup.proxy.port;
  });
  afterAll(async () => {
    await setup?.stop();
  });

  const values = Array.from({ length: 20 }, (_, i) => `(${i + 1}, 'owner-${i + 1}', 100)`).join(', ');

  it('inserts rows that spread over both shards and reads them back merged', async () => {
    const ins = await psql(port, `INSERT INTO account (id, owner, balance) VALUES ${values};`);
    expect(ins.stderr).toBe('');
    expect(ins.stdout.trim()).toBe('INSERT 0 20');
    const sel = await psql(port, 'SELECT count(*), sum(balance) FROM account;', { args: ['-A', '-t'] });
    expect(sel.code).toBe(0);
    expect(sel.stdout.trim()).toBe('20|2000');
    const ordered = await psql(port, 'SELECT id FROM account ORDER BY id DESC LIMIT 3;', { args: ['-A', '-t'] });
    expect(ordered.stdout.trim().split('\n')).toEqual(['20', '19', '18']);
    const counts = await countsPerShard(setup, 'account');
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20);
  });

  it('lists the table with \\dt and describes it with \\d', async () => {
    const dt = await psql(port, '\\dt');
    expect(dt.code).toBe(0);
    expect(dt.stdout).toMatch(/\baccount\b/);
    const d = await psql(port, '\\d account');
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/\bid\b.*\bbigint\b/);
    expect(d.stdout).toMatch(/\bowner\b.*\btext\b/);
    expect(d.stdout).toMatch(/\bbalance\b.*\bnumeric\b/);
    expect(d.stdout).toContain('account_pkey');
  });

  it('runs several statements in one query string', async () => {
    const r = await psql(port, "INSERT INTO account (id, owner, balance) VALUES (21, 'x', 1); INSERT INTO account (id, owner, balance) VALUES (22, 'y', 2); SELECT count(*) FROM account WHERE id > 20;", {
      command: true,
      args: ['-A', '-t'],
    });
    expect(r.code, r.stderr).toBe(0);
    // psql 15 prints the result of every statement of a multi-statement string.
    expect(r.stdout.trim().split('\n')).toEqual(['INSERT 0 1', 'INSERT 0 1', '2']);
  });

  it('rolls back the whole query string when one of its statements fails', async () => {
    const r = await psql(port, "INSERT INTO account (id, owner, balance) VALUES (23, 'z', 3); INSERT INTO account (id, owner, balance) VALUES (1, 'dup', 0);", { command: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/duplicate key|23505/);
    const check = await psql(port, 'SELECT count(*) FROM account WHERE id = 23;', { args: ['-A', '-t'] });
    expect(check.stdout.trim()).toBe('0');
  });

  it('reports errors with their SQLSTATE', async () => {
    const missing = await psql(port, '\\set VERBOSITY verbose\nSELECT * FROM no_such_table;\n');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/ERROR:\s+42P01:/);
    const dup = await psql(port, "\\set VERBOSITY verbose\nINSERT INTO account (id, owner, balance) VALUES (2, 'dup', 0);\n");
    expect(dup.stderr).toMatch(/ERROR:\s+23505:/);
    const syntax = await psql(port, '\\set VERBOSITY verbose\nSELEC 1;\n');
    expect(syntax.stderr).toMatch(/ERROR:\s+42601:/);
  });

  it('commits a transfer between rows on different shards, and rolls one back', async () => {
    const onS0 = await setup.clusters[0]!.query<{ id: string }>('SELECT id FROM account WHERE id <= 20 ORDER BY id LIMIT 1', [], 'app');
    const onS1 = await setup.clusters[1]!.query<{ id: string }>('SELECT id FROM account WHERE id <= 20 ORDER BY id LIMIT 1', [], 'app');
    const a = onS0[0]!.id;
    const b = onS1[0]!.id;
    const transfer = (amount: number, end: string): string =>
      `BEGIN;\nUPDATE account SET balance = balance - ${amount} WHERE id = ${a};\nUPDATE account SET balance = balance + ${amount} WHERE id = ${b};\n${end};\n`;
    const committed = await psql(port, transfer(30, 'COMMIT'));
    expect(committed.code, committed.stderr).toBe(0);
    const rolledBack = await psql(port, transfer(1000, 'ROLLBACK'));
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    const r = await psql(port, `SELECT id, balance FROM account WHERE id IN (${a}, ${b}) ORDER BY id = ${b};`, { args: ['-A', '-t'] });
    expect(r.stdout.trim().split('\n')).toEqual([`${a}|70`, `${b}|130`]);
    const total = await psql(port, 'SELECT sum(balance) FROM account WHERE id <= 20;', { args: ['-A', '-t'] });
    expect(total.stdout.trim()).toBe('2000');
    // Nothing was left prepared on either shard.
    for (const c of setup.clusters) expect(await c.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
  });
});
