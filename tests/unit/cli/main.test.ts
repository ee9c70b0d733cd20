import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../../src/cli/cli-io.js';
import { main } from '../../../src/cli/main.js';
import { listeningLine, psqlCommand } from '../../../src/cli/serve.js';
import { parseConfig } from '../../../src/config/load.js';
import { freePort } from '../../harness/cluster.js';

interface Captured extends CliIo {
  readonly stdout: string[];
  readonly stderr: string[];
}

function captureIo(env: Record<string, string | undefined> = {}): Captured {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (l) => void stdout.push(l),
    err: (l) => void stderr.push(l),
    env,
    // No signal ever arrives: a command that reached the point of serving would hang the test and fail it.
    onShutdownSignal: () => new Promise(() => undefined),
  };
}

const run = async (args: string[], io = captureIo()): Promise<{ code: number; io: Captured }> => ({
  code: await main(['node', 'shardgate', ...args], io),
  io,
});

const dir = mkdtempSync(join(tmpdir(), 'shardgate-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

describe('shardgate version', () => {
  const pkgVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

  it('prints the package version', async () => {
    const { code, io } = await run(['version']);
    expect(code).toBe(0);
    expect(io.stdout).toEqual([pkgVersion]);
  });

  it('answers --version too', async () => {
    const { code, io } = await run(['--version']);
    expect(code).toBe(0);
    expect(io.stdout.join('\n')).toContain(pkgVersion);
  });
});

describe('configuration errors stop every command before anything starts', () => {
  it('names a missing file', async () => {
    const missing = join(dir, 'nope.yaml');
    const { code, io } = await run(['serve', '--config', missing]);
    expect(code).toBe(2);
    expect(io.stderr).toEqual(['shardgate: configuration error:', `  ${missing}: no such file`]);
    expect(io.stdout).toEqual([]);
  });

  it('prints one line per problem with its key path', async () => {
    const file = configFile('bad.yaml', 'listen: nowhere\nshards: { s0: { embedded: ./a } }\ntables:\n  orders: { key: "user id" }\n');
    const { code, io } = await run(['serve', '--config', file]);
    expect(code).toBe(2);
    expect(io.stderr[0]).toBe('shardgate: configuration error:');
    expect(io.stderr).toContain('  tables.orders.key: expected a column name');
    expect(io.stderr.some((l) => l.startsWith('  listen: '))).toBe(true);
  });

  it('validates --listen like the file', async () => {
    const file = configFile('ok.yaml', 'auth: { users: [{ name: app, password: app }] }\nshards: { s0: { embedded: ./a } }\n');
    const { code, io } = await run(['serve', '--config', file, '--listen', 'not-an-address']);
    expect(code).toBe(2);
    expect(io.stderr[1]).toMatch(/^ {2}listen: /);
  });

  it('refuses --listen on a public address with trust', async () => {
    const file = configFile('trust.yaml', 'auth: { trust: true }\nshards: { s0: { embedded: ./a } }\n');
    const { code, io } = await run(['serve', '--config', file, '--listen', '0.0.0.0:6432']);
    expect(code).toBe(2);
    expect(io.stderr[1]).toMatch(/^ {2}auth\.trust: /);
  });

  it('refuses to serve when nobody can log in', async () => {
    const file = configFile('nousers.yaml', 'shards: { s0: { embedded: ./a } }\n');
    const { code, io } = await run(['serve', '--config', file]);
    expect(code).toBe(2);
    expect(io.stderr[1]).toMatch(/^ {2}auth\.users: /);
  });

  it('reads SHARDGATE_CONFIG', async () => {
    const file = configFile('env-bad.yaml', 'shards: {}\n');
    const { code, io } = await run(['status'], captureIo({ SHARDGATE_CONFIG: file }));
    expect(code).toBe(2);
    expect(io.stderr).toEqual(['shardgate: configuration error:', '  shards: expected at least one shard']);
  });

  it('stops recover too', async () => {
    const file = configFile('recover-bad.yaml', 'shards: { s0: mysql://x }\n');
    const { code, io } = await run(['recover', '--config', file]);
    expect(code).toBe(2);
    expect(io.stderr[1]).toMatch(/^ {2}shards\.s0: /);
  });
});

describe('shardgate status', () => {
  it('fails naming an unreachable shard', async () => {
    const closed = await freePort();
    const listen = await freePort();
    const file = configFile('down.yaml', `listen: 127.0.0.1:${listen}\nshards:\n  s0: postgres://postgres@127.0.0.1:${closed}/app\n`);
    const { code, io } = await run(['status', '--config', file]);
    expect(code).toBe(1);
    expect(io.stdout[0]).toMatch(/^s0: UNREACHABLE/);
    expect(io.stderr.join('\n')).toContain('cannot connect to s0');
  });

  it('reports an embedded shard not created yet as fine', async () => {
    const listen = await freePort();
    const file = configFile('fresh.yaml', `listen: 127.0.0.1:${listen}\nshards:\n  s0: { embedded: ./never-created }\n`);
    const { code, io } = await run(['status', '--config', file]);
    expect(code).toBe(0);
    expect(io.stdout[0]).toContain('not created yet');
  });
});

describe('command line surface', () => {
  it('rejects an unknown command with a non-zero status', async () => {
    const { code, io } = await run(['frobnicate']);
    expect(code).not.toBe(0);
    expect(io.stderr.join('\n')).toContain('frobnicate');
  });

  it('words the listening line and the psql command', () => {
    const cfg = parseConfig({ auth: { users: [{ name: 'app', password: 'p@ss' }] }, shards: { s0: { embedded: '/a' }, s1: { embedded: '/b' } } });
    expect(listeningLine({ host: '127.0.0.1', port: 6432 }, cfg)).toBe('shardgate listening on 127.0.0.1:6432 (2 shards: s0, s1)');
    expect(listeningLine({ host: '::1', port: 7 }, cfg)).toBe('shardgate listening on [::1]:7 (2 shards: s0, s1)');
    expect(psqlCommand({ host: '127.0.0.1', port: 6432 }, cfg)).toBe('psql "postgres://app:p%40ss@127.0.0.1:6432/app"');
  });
});
