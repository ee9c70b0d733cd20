import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);

/** True when this process runs as root: PostgreSQL and PgBouncer refuse to, so they run as user postgres. */
export const RUNNING_AS_ROOT = process.getuid?.() === 0;

/** Folder with PostgreSQL's server programs (initdb, pg_ctl), newest installed version; PG_BIN overrides. */
export function pgBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) throw new Error('PostgreSQL server programs not found: install postgresql (Debian) or set PG_BIN');
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no PostgreSQL server under ${root}: install postgresql or set PG_BIN`);
  return join(root, versions[0]!, 'bin');
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

/** Gives a folder to user postgres when we are root, so server processes running as postgres can write there. */
export async function handToPostgresUser(dir: string): Promise<void> {
  if (!RUNNING_AS_ROOT) return;
  const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
  const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
  await chown(dir, Number(uid.trim()), Number(gid.trim()));
}

/** Command line that runs `program` as user postgres when we are root, unchanged otherwise. */
export function asPostgresUser(program: string, args: readonly string[]): [string, string[]] {
  return RUNNING_AS_ROOT ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, [...args]];
}

async function pgRun(program: string, args: readonly string[]): Promise<string> {
  const [cmd, argv] = asPostgresUser(join(pgBinDir(), program), args);
  const { stdout } = await execFileAsync(cmd, argv, { timeout: 120_000 });
  return stdout;
}

/** Exit status and output of a finished command. */
export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Spawns a command, resolves when it exits; SIGKILL after `timeoutMs` (default 10 min). Never rejects on a non-zero exit. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string; readonly timeoutMs?: number; readonly input?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Server settings of benchmark clusters: initdb defaults (fsync on,
 * shared_buffers 128MB) plus what ShardGate needs (prepared transactions) and
 * room for 64 pgbench clients next to a proxy's pools.
 */
export const BENCH_SETTINGS: Readonly<Record<string, string | number>> = {
  max_prepared_transactions: 100,
  max_connections: 300,
  log_min_messages: 'warning',
};

/** Options of `BenchCluster.create`. */
export interface BenchClusterOptions {
  /** Settings appended to postgresql.conf after BENCH_SETTINGS. */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Databases to create after start (besides postgres). */
  readonly databases?: readonly string[];
}

/**
 * A PostgreSQL cluster the benchmark owns: initdb into a temporary folder,
 * its own port on 127.0.0.1, trust authentication, run as user postgres when
 * we are root. `destroy()` stops it and removes the folder.
 */
export class BenchCluster {
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  /** The temporary folder holding the data directory, the log and the socket. */
  protected readonly root: string;

  /** Use `create()`: the constructor only records where an initialised cluster lives. */
  constructor(root: string, port: number) {
    this.root = root;
    this.port = port;
    this.dataDir = join(root, 'data');
  }

  /** initdb, configure, start; a subclass's `create` returns an instance of that subclass. */
  static async create<C extends BenchCluster>(this: new (root: string, port: number) => C, opts: BenchClusterOptions = {}): Promise<C> {
    const root = await mkdtemp(join(tmpdir(), 'shardgate-pg-'));
    try {
      await handToPostgresUser(root);
      const cluster = new this(root, await freePort());
      await pgRun('initdb', ['-D', cluster.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
      const settings: Record<string, string | number> = {
        listen_addresses: "'127.0.0.1'",
        port: cluster.port,
        unix_socket_directories: `'${root}'`,
        ...BENCH_SETTINGS,
        ...opts.settings,
      };
      const confPath = join(cluster.dataDir, 'postgresql.conf');
      const extra = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n');
      await writeFile(confPath, `${await readFile(confPath, 'utf8')}\n${extra}\n`);
      await cluster.start();
      for (const db of opts.databases ?? []) await cluster.query(`CREATE DATABASE "${db.replace(/"/g, '""')}"`);
      return cluster;
    } catch (err) {
      await rm(root, { recursive: true, force: true });
      throw err;
    }
  }

  /** postgres:// URL of a database on this cluster, as user postgres. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const log = join(this.root, 'server.log');
    try {
      await pgRun('pg_ctl', ['-D', this.dataDir, '-l', log, '-w', '-t', '60', 'start']);
    } catch (err) {
      const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new Error(`PostgreSQL on port ${this.port} did not start: ${String(err)}\n${tail}`);
    }
  }

  /** The server's version string, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  async version(): Promise<string> {
    const rows = await this.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return rows[0]?.v ?? 'unknown';
  }

  /** Runs SQL on one database with a fresh connection and returns the rows. */
  async query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** Stops the server; a server that is not running is not an error. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await pgRun('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', 'stop']).catch(() => undefined);
  }

  /** Stops the server (immediate shutdown: nothing here needs to survive) and removes its folder. */
  async destroy(): Promise<void> {
    await this.stop('immediate');
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Starts `n` clusters in parallel; if one fails, the others are destroyed before the error is thrown. */
export async function startBenchClusters(n: number, opts: BenchClusterOptions = {}): Promise<BenchCluster[]> {
  const settled = await Promise.allSettled(Array.from({ length: n }, () => BenchCluster.create(opts)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(settled.map((s) => (s.status === 'fulfilled' ? s.value.destroy() : undefined)));
    throw failed.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<BenchCluster>).value);
}
