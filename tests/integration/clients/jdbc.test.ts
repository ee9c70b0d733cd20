import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import type { ShardedSetup } from '../../harness/proxy.js';
import { countsPerShard, startAccountSetup } from './account-setup.js';

// From Debian's libpostgresql-jdbc-java.
const JAR = '/usr/share/java/postgresql.jar';
const SOURCE = join(import.meta.dirname, 'fixtures/JdbcCheck.java');

describe('JDBC through the proxy', () => {
  let setup: ShardedSetup;
  let classes: string;
  beforeAll(async () => {
    if (!existsSync(JAR)) throw new Error(`the PostgreSQL JDBC driver is missing (${JAR}): run \`bash scripts/install-test-deps.sh\``);
    classes = await mkdtemp(join(tmpdir(), 'shardgate-jdbc-'));
    const javac = await runCommand('javac', ['-encoding', 'UTF-8', '-cp', JAR, '-d', classes, SOURCE], { timeoutMs: 120_000 }).catch((err: Error) => ({
      code: -1,
      stdout: '',
      stderr: `${err.message}: install a JDK (bash scripts/install-test-deps.sh)`,
    }));
    if (javac.code !== 0) throw new Error(`javac failed: ${javac.stderr}`);
    setup = await startAccountSetup();
  });
  afterAll(async () => {
    await setup?.stop();
    if (classes) await rm(classes, { recursive: true, force: true });
  });

  it('runs prepared statements with binary transfer, metadata and transactions', async () => {
    const r = await runCommand('java', ['-Dfile.encoding=UTF-8', '-cp', `${classes}:${JAR}`, 'JdbcCheck', '127.0.0.1', String(setup.proxy.port)], { timeoutMs: 90_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}\n${setup.proxy.logs()}`).toBe(0);
    const out = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    const typesLine = '42|1099511627776|2.5|true|2026-01-02 03:04:05.0|héllo';
    expect(out).toEqual({
      product: 'PostgreSQL',
      point: '3:owner-3:100.00,7:owner-7:100.00,11:owner-11:100.00,15:owner-15:100.00,19:owner-19:100.00',
      totals: '20:2000.00',
      types0: typesLine,
      types1: typesLine,
      types2: typesLine,
      columns: 'id:int8,owner:text,balance:numeric',
      tables: 'account',
      metaColumns: 'id,owner,balance',
      balances: '1:90.00,2:110.00,3:100.00,4:100.00',
      duplicate: '23505',
      batch: '10',
    });
    const counts = await countsPerShard(setup, 'account');
    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    expect(counts.every((n) => n > 0)).toBe(true);
  });
});
