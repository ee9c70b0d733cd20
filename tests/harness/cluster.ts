import { execFile } from 'node:child_process';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { asPostgresUser, freePort, handToPostgresUser, pgBinDir } from '../../src/bench/pg-cluster.js';

const run = promisify(execFile);

// The process primitives are the benchmark's own (src/bench/pg-cluster.ts): one
// implementation of finding PostgreSQL, picking ports and running as postgres.
export { freePort, pgBinDir, runCommand } from '../../src/bench/pg-cluster.js';

/** Runs a PostgreSQL program, as the postgres user when we are root (the server refuses to run as root). */
async function pgRun(program: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const [cmd, argv] = asPostgresUser(join(pgBinDir(), program), args);
  return run(cmd, argv);
}

export interface ClusterOptions {
  /** Extra postgresql.conf settings. */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Databases to create after start (besides postgres). */
  readonly databases?: readonly string[];
}

/**
 * A PostgreSQL cluster of the test suite's own: initdb into a temporary folder,
 * its own port on 127.0.0.1, trust authentication, max_prepared_transactions
 * and wal_level=logical set. Stop it with `destroy()`.
 */
export class PgCluster {
  readonly dataDir: string;
  readonly port: number;
  readonly host = '127.0.0.1';
  #root: string;

  private constructor(root: string, port: number) {
    this.#root = root;
    this.dataDir = join(root, 'data');
    this.port = port;
  }

  static async create(opts: ClusterOptions = {}): Promise<PgCluster> {
    const root = await mkdtemp(join(tmpdir(), 'shardgate-pg-'));
    await handToPostgresUser(root);
    const port = await freePort();
    const cluster = new PgCluster(root, port);
    await pgRun('initdb', ['-D', cluster.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const settings: Record<string, string | number> = {
      listen_addresses: "'127.0.0.1'",
      port,
      unix_socket_directories: `'${root}'`,
      max_connections: 200,
      max_prepared_transactions: 100,
      wal_level: 'logical',
      max_wal_senders: 10,
      max_replication_slots: 10,
      // fsync off is safe for process crashes (the kernel keeps the writes); commits stay synchronous
      // so a killed server keeps every commit it acknowledged.
      fsync: 'off',
      full_page_writes: 'off',
      shared_buffers: "'64MB'",
      log_min_messages: 'warning',
      ...opts.settings,
    };
    const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n');
    const confPath = join(cluster.dataDir, 'postgresql.conf');
    await writeFile(confPath, `${await readFile(confPath, 'utf8')}\n${conf}\n`);
    await cluster.start();
    for (const db of opts.databases ?? []) await cluster.query(`CREATE DATABASE "${db.replace(/"/g, '""')}"`);
    return cluster;
  }

  /** postgres:// URL for a database on this cluster. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const log = join(this.#root, 'server.log');
    try {
      await pgRun('pg_ctl', ['-D', this.dataDir, '-l', log, '-w', '-t', '60', 'start']);
    } catch (err) {
      const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new Error(`PostgreSQL on port ${this.port} did not start: ${String(err)}\n${tail}`);
    }
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await pgRun('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', 'stop']).catch(() => undefined);
  }

  /** The postmaster's process id. */
  async pid(): Promise<number> {
    const text = await readFile(join(this.dataDir, 'postmaster.pid'), 'utf8');
    return Number(text.split('\n')[0]);
  }

  /** Kills the postmaster with SIGKILL (a crash, not a shutdown) and waits until its backends are gone. */
  async kill9(): Promise<void> {
    const pid = await this.pid();
    process.kill(pid, 'SIGKILL');
    // Backends notice the postmaster's death and exit; wait for the port to close.
    for (let i = 0; i < 200; i++) {
      try {
        await this.query('SELECT 1');
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        break;
      }
    }
    // Leftover backends keep the shared memory segment until they notice the
    // postmaster is gone; a restart before they exit fails, so wait for them.
    for (let i = 0; i < 200; i++) {
      const { stdout } = await run('pgrep', ['-f', this.dataDir]).catch(() => ({ stdout: '' }));
      if (stdout.trim() === '') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // The dead postmaster may linger as a zombie under a container's init, which
    // makes the pid file look live; nothing else runs on this folder any more.
    await rm(join(this.dataDir, 'postmaster.pid'), { force: true });
    await rm(join(this.#root, `.s.PGSQL.${this.port}.lock`), { force: true });
    await rm(join(this.#root, `.s.PGSQL.${this.port}`), { force: true });
  }

  /** Runs SQL on one of this cluster's databases with a fresh connection. */
  async query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  async destroy(): Promise<void> {
    await this.stop('immediate');
    await rm(this.#root, { recursive: true, force: true });
  }
}

/** Starts `n` clusters in parallel, each with the given databases. */
export async function startClusters(n: number, opts: ClusterOptions = {}): Promise<PgCluster[]> {
  return Promise.all(Array.from({ length: n }, () => PgCluster.create(opts)));
}
