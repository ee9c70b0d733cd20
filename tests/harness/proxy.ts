import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { RawConfig } from '../../src/config/schema.js';
import { freePort, PgCluster, runCommand } from './cluster.js';

const REPO = resolve(import.meta.dirname, '../..');
const BIN = join(REPO, 'bin/shardgate.js');
const LISTENING = /shardgate listening on (\S+)/;

/** A `shardgate serve` child process started by `startProxy`. */
export interface RunningProxy {
  readonly port: number;
  /** postgres:// URL for user app/app on database app. */
  readonly url: string;
  /** The folder holding shardgate.yaml; embedded shard folders in the config are relative to it. */
  readonly dir: string;
  readonly configFile: string;
  readonly child: ChildProcess;
  /** SIGTERM, wait for a graceful exit; removes `dir` unless it was passed in. Rejects if the exit status is not 0. */
  stop(): Promise<void>;
  /** SIGKILL (a crash); `dir` stays, so a new proxy can start on the same data with `{ dir }`. */
  kill9(): Promise<void>;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  logs(): string;
}

/** Options of `startProxy`. */
export interface StartProxyOptions {
  /** Reuse this folder (for a restart after kill9) instead of a new temporary one. */
  readonly dir?: string;
  /** Port to listen on; default a free one. */
  readonly port?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for the listening line; default 90 s (embedded shards initialise slowly). */
  readonly timeoutMs?: number;
}

const running = new Set<ChildProcess>();
// A test that fails before stop() must not leave a proxy behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolvePromise(code);
    });
  });
}

/**
 * Writes `config` as YAML (listen replaced by 127.0.0.1 and a free port) to a
 * temporary folder, spawns `node bin/shardgate.js serve --config FILE` and
 * resolves once it prints its listening line. Rejects with the process's
 * output if it exits or does not listen in time. Needs a built dist/.
 */
export async function startProxy(config: RawConfig | object, opts: StartProxyOptions = {}): Promise<RunningProxy> {
  if (!existsSync(join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` before the integration tests');
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'shardgate-proxy-')));
  const port = opts.port ?? (await freePort());
  const configFile = join(dir, 'shardgate.yaml');
  await writeFile(configFile, stringify({ ...config, listen: `127.0.0.1:${port}` }));

  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
    cwd: REPO,
    env: { ...process.env, SHARDGATE_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));

  await new Promise<void>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shardgate did not listen within ${opts.timeoutMs ?? 90_000} ms:\n${output}`));
    }, opts.timeoutMs ?? 90_000);
    const onData = (): void => {
      if (LISTENING.test(output)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolvePromise();
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      reject(new Error(`shardgate exited (${signal ?? code}) before listening:\n${output}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });

  const removeDir = async (): Promise<void> => {
    if (opts.dir === undefined) await rm(dir, { recursive: true, force: true });
  };
  return {
    port,
    url: `postgres://app:app@127.0.0.1:${port}/app`,
    dir,
    configFile,
    child,
    logs: () => output,
    async stop() {
      child.kill('SIGTERM');
      const code = await waitExit(child, 20_000);
      await removeDir();
      if (code !== 0) throw new Error(`shardgate exited with ${code} on SIGTERM:\n${output}`);
    },
    async kill9() {
      child.kill('SIGKILL');
      await waitExit(child, 10_000);
    },
  };
}

/** Clusters, the proxy over them, and optionally an unsharded control server with the same schema. */
export interface ShardedSetup {
  readonly clusters: PgCluster[];
  readonly proxy: RunningProxy;
  readonly control?: PgCluster;
  /** The configuration the proxy runs with (listen excepted). */
  readonly config: RawConfig;
  /** Stops the proxy and destroys every cluster. */
  stop(): Promise<void>;
}

/**
 * Starts `nShards` PostgreSQL clusters with database `app`, and a proxy over
 * them as shards s0..s(n-1) with user app/app and the given table rules.
 * `control: true` adds an unsharded cluster to compare results against.
 */
export async function startShardedSetup(
  nShards: number,
  tables: Record<string, unknown>,
  opts: { control?: boolean; extra?: Record<string, unknown> } = {},
): Promise<ShardedSetup> {
  const clusters = await Promise.all(Array.from({ length: nShards + (opts.control ? 1 : 0) }, () => PgCluster.create({ databases: ['app'] })));
  const control = opts.control ? clusters.pop() : undefined;
  const config = {
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    coordinatorId: 'gw1',
    shards: Object.fromEntries(clusters.map((c, i) => [`s${i}`, c.url('app')])),
    tables,
    ...opts.extra,
  } as RawConfig;
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(config);
  } catch (err) {
    await Promise.all([...clusters, ...(control ? [control] : [])].map((c) => c.destroy()));
    throw err;
  }
  return {
    clusters,
    proxy,
    ...(control ? { control } : {}),
    config,
    async stop() {
      try {
        await proxy.stop();
      } finally {
        await Promise.all([...clusters, ...(control ? [control] : [])].map((c) => c.destroy()));
      }
    },
  };
}

/** Options of `psql`. */
export interface PsqlOptions {
  /** Extra psql arguments before the script (for example ['-A', '-t'] or ['-v', 'VERBOSITY=verbose']). */
  readonly args?: readonly string[];
  /** Send the text with -c (one simple Query, several statements in one message) instead of as a script on stdin. */
  readonly command?: boolean;
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  readonly timeoutMs?: number;
}

/**
 * Runs psql against 127.0.0.1:port as app/app on database app, stopping at
 * the first error (ON_ERROR_STOP). Resolves with exit status and output.
 */
export function psql(port: number, sql: string, opts: PsqlOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = [
    '-X', '-h', '127.0.0.1', '-p', String(port),
    '-U', opts.user ?? 'app', '-d', opts.database ?? 'app',
    '-v', 'ON_ERROR_STOP=1',
    ...(opts.args ?? []),
    ...(opts.command ? ['-c', sql] : ['-f', '-']),
  ];
  return runCommand('psql', args, {
    ...(opts.command ? {} : { input: sql }),
    env: { PGPASSWORD: opts.password ?? 'app', PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'psql' },
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
}
