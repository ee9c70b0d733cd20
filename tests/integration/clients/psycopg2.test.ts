import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import type { ShardedSetup } from '../../harness/proxy.js';
import { countsPerShard, startAccountSetup } from './account-setup.js';
import { PYTHON, requirePsycopg2 } from './psycopg2.js';

const SCRIPT = join(import.meta.dirname, 'fixtures/psycopg2_check.py');

describe('psycopg2 through the proxy', () => {
  let setup: ShardedSetup;
  beforeAll(async () => {
    await requirePsycopg2();
    setup = await startAccountSetup();
  });
  afterAll(async () => {
    await setup?.stop();
  });

  it('inserts, selects, commits, rolls back and reports SQLSTATEs', async () => {
    const r = await runCommand(PYTHON, [SCRIPT, '127.0.0.1', String(setup.proxy.port)], { timeoutMs: 90_000 });
    expect(r.code, `${r.stderr}\n${setup.proxy.logs()}`).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out.server_version).toBeGreaterThanOrEqual(100_000);
    expect(out).toMatchObject({
      point: ['owner-7', '100'],
      totals: [20, '2000'],
      in_list: [3, 11, 19],
      execute_values: 3,
      after_commit: [[1, '90'], [2, '110']],
      after_rollback: [[3, '100'], [4, '100']],
      duplicate: '23505',
      aborted: '25P02',
      types: [42, 'héllo', true, '1.50', '2026-01-02', null],
      autocommit: 'auto',
    });
    const counts = await countsPerShard(setup, 'account');
    expect(counts.reduce((a, b) => a + b, 0)).toBe(23);
    expect(counts.every((n) => n > 0)).toBe(true);
  });
});
