import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql, type ShardedSetup } from '../../harness/proxy.js';
import { startAccountSetup } from './account-setup.js';

/** psql through the proxy: SQL PREPARE/EXECUTE routed by argument, cursors, and their SQLSTATEs (VERBOSITY verbose prints them). */
describe('psql: SQL prepared statements and cursors through the proxy', () => {
  let setup: ShardedSetup;
  beforeAll(async () => {
    setup = await startAccountSetup();
    const values = Array.from({ length: 50 }, (_, i) => `(${i + 1}, 'o${i + 1}', ${i + 1})`).join(', ');
    const r = await psql(setup.proxy.port, `INSERT INTO account (id, owner, balance) VALUES ${values};`);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await setup?.stop();
  });

  it('EXECUTE writes the row on the shard its argument names', async () => {
    // One key living on each shard (as the proxy placed them): a misrouted EXECUTE would update nothing.
    const held = await Promise.all(setup.clusters.map(async (c) => (await c.query<{ id: string }>('SELECT min(id) AS id FROM account', [], 'app'))[0]!.id));
    const script = `PREPARE bump (bigint) AS UPDATE account SET owner = 'bumped' WHERE id = $1;\n${held.map((id) => `EXECUTE bump(${id});`).join('\n')}\n`;
    const r = await psql(setup.proxy.port, script, { args: ['-A', '-t'] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['PREPARE', ...held.map(() => 'UPDATE 1')]);
    const perShard = await Promise.all(setup.clusters.map(async (c) => (await c.query<{ id: string }>("SELECT id FROM account WHERE owner = 'bumped'", [], 'app')).map((row) => row.id)));
    expect(perShard).toEqual(held.map((id) => [id]));
  });

  it('reads a cursor over every shard in order, FETCH n / MOVE / FETCH ALL / CLOSE', async () => {
    const script = 'BEGIN;\nDECLARE c CURSOR FOR SELECT id FROM account ORDER BY id DESC;\nFETCH 3 FROM c;\nMOVE 40 IN c;\nFETCH ALL FROM c;\nCLOSE c;\nCOMMIT;\n';
    const r = await psql(setup.proxy.port, script, { args: ['-A', '-t'] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['BEGIN', 'DECLARE CURSOR', '50', '49', '48', 'MOVE 40', '7', '6', '5', '4', '3', '2', '1', 'CLOSE CURSOR', 'COMMIT']);
  });

  for (const [what, script, code] of [
    ['DECLARE outside a transaction block', 'DECLARE c CURSOR FOR SELECT 1;', '25P01'],
    ['an unknown cursor', 'BEGIN;\nFETCH 1 FROM nosuch;', '34000'],
    ['backward on a cursor over several shards', 'BEGIN;\nDECLARE c CURSOR FOR SELECT id FROM account ORDER BY id;\nFETCH BACKWARD 1 FROM c;', '55000'],
    ['an unknown prepared statement', 'EXECUTE nosuch(1);', '26000'],
    ['a prepared statement twice', 'PREPARE p AS SELECT 1;\nPREPARE p AS SELECT 2;', '42P05'],
    ['the wrong number of arguments', 'PREPARE p (int) AS SELECT $1;\nEXECUTE p(1, 2);', '42601'],
  ] as const) {
    it(`reports ${code} for ${what}`, async () => {
      const r = await psql(setup.proxy.port, script, { args: ['-v', 'VERBOSITY=verbose'] });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`ERROR:  ${code}:`);
    });
  }
});
