import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './pg-cluster.js';

/** The repository root: this file sits in src/bench or dist/bench. */
export const REPO_ROOT = resolve(import.meta.dirname, '../..');

const LISTENING = /shardgate listening on (\S+)/;
const OUTPUT_KEPT = 64 * 1024;

/** A `shardgate serve` child process. */
export interface ShardGateProcess {
  readonly port: number;
  readonly pid: number;
  /** postgres:// URL for the first configured user on the configured database. */
  readonly url: string;
  /** The tail of what the process wrote (stdout and stderr), for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after 20 s; removes the configuration folder. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A benchmark that dies half-way must not leave proxies behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveExit();
    });
  });
}

/** Options of `startShardGate`. */
export interface StartShardGateOptions {
  /** Log level of the proxy (SHARDGATE_LOG_LEVEL); default 'warn' so logging does not weigh on the figures. */
  readonly logLevel?: string;
  /** Extra arguments for node before the script, e.g. ['--cpu-prof']. */
  readonly nodeArgs?: readonly string[];
  readonly timeoutMs?: number;
  /** Checkout whose built proxy runs (default this one's): a baseline build for a before/after comparison. */
  readonly root?: string;
}

/**
 * Writes `config` (listen replaced by 127.0.0.1 and a free port) as YAML to a
 * temporary folder, spawns `node bin/shardgate.js serve --config FILE` and
 * resolves once it prints its listening line. Rejects with the process's
 * output if it exits first or does not listen within the timeout. Needs a
 * built dist/.
 */
export async function startShardGate(config: Record<string, unknown>, opts: StartShardGateOptions = {}): Promise<ShardGateProcess> {
  const root = opts.root ?? REPO_ROOT;
  if (!existsSync(join(root, 'dist/cli/main.js'))) throw new Error(`${root}/dist/ is missing: run \`npm run build\` there first`);
  const dir = await mkdtemp(join(tmpdir(), 'shardgate-bench-proxy-'));
  const port = await freePort();
  const configFile = join(dir, 'shardgate.yaml');
  await writeFile(configFile, stringify({ ...config, listen: `127.0.0.1:${port}` }));

  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), join(root, 'bin/shardgate.js'), 'serve', '--config', configFile], {
    cwd: dir,
    env: { ...process.env, SHARDGATE_LOG_LEVEL: opts.logLevel ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-OUTPUT_KEPT);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);

  const timeoutMs = opts.timeoutMs ?? 60_000;
  try {
    await new Promise<void>((resolveListen, reject) => {
      const timer = setTimeout(() => reject(new Error(`shardgate did not listen within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      const onData = (): void => {
        if (!LISTENING.test(output)) return;
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolveListen();
      };
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(timer);
        reject(new Error(`shardgate exited (${signal ?? code}) before listening:\n${output}`));
      };
      child.stdout!.on('data', onData);
      child.once('exit', onExit);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await waitExit(child, 5000);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const users = (config.auth as { users?: { name: string; password: string }[] } | undefined)?.users ?? [];
  const user = users[0];
  const database = typeof config.database === 'string' ? config.database : 'app';
  const cred = user === undefined ? '' : `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`;
  return {
    port,
    pid: child.pid!,
    url: `postgres://${cred}127.0.0.1:${port}/${database}`,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      await waitExit(child, 20_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The pgbench tables sharded by their keys, as CONFIG.md shows them. */
export const PGBENCH_TABLE_RULES: Readonly<Record<string, unknown>> = {
  pgbench_accounts: { key: 'aid' },
  pgbench_tellers: { key: 'tid' },
  pgbench_branches: { key: 'bid' },
  pgbench_history: { key: 'aid' },
};

/** User and database every benchmark proxy serves. */
export const PROXY_USER = { name: 'app', password: 'app' } as const;
export const PROXY_DATABASE = 'app';

/**
 * A proxy configuration over the given shard URLs (named s0, s1, …) with
 * user app/app on database app and the given table rules.
 */
export function proxyConfig(shardUrls: readonly string[], tables: Readonly<Record<string, unknown>>, pool: { maxPerShard: number }): Record<string, unknown> {
  return {
    database: PROXY_DATABASE,
    auth: { users: [PROXY_USER] },
    coordinatorId: 'bench',
    shards: Object.fromEntries(shardUrls.map((url, i) => [`s${i}`, url])),
    pool: { maxPerShard: pool.maxPerShard },
    tables,
  };
}
