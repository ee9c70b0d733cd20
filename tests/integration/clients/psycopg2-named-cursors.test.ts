import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import type { ShardedSetup } from '../../harness/proxy.js';
import { countsPerShard, startAccountSetup } from './account-setup.js';
import { PYTHON, requirePsycopg2 } from './psycopg2.js';

const SCRIPT = join(import.meta.dirname, 'fixtures/psycopg2_named_cursor.py');

describe('psycopg2 named cursors through the proxy', () => {
  let setup: ShardedSetup;
  beforeAll(async () => {
    await requirePsycopg2();
    setup = await startAccountSetup();
  });
  afterAll(async () => {
    await setup?.stop();
  });

  it('reads 10 000 rows in chunks, iterates with itersize, keeps WITH HOLD past commit, loses the cursor at rollback', async () => {
    const r = await runCommand(PYTHON, [SCRIPT, '127.0.0.1', String(setup.proxy.port)], { timeoutMs: 120_000 });
    expect(r.code, `${r.stderr}\n${setup.proxy.logs()}`).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toEqual({
      point: [[4242, 'o4242']],
      chunks: 100,
      ordered: true,
      iter_count: 1000,
      iter_ok: true,
      held: [10000, 9999, 9998, 9997, 9996],
      after_rollback: '34000',
    });
    const counts = await countsPerShard(setup, 'account');
    expect(counts.every((n) => n > 0)).toBe(true);
  });
});
