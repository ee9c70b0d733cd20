import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BenchCluster, type BenchClusterOptions } from '../../src/bench/pg-cluster.js';

const run = promisify(execFile);

// The process primitives are the benchmark's own (src/bench/pg-cluster.ts): one
// implementation of finding PostgreSQL, picking ports and running as postgres.
export { freePort, pgBinDir, runCommand } from '../../src/bench/pg-cluster.js';

export type ClusterOptions = BenchClusterOptions;

/**
 * Settings of the suite's clusters on top of the benchmark's: logical
 * decoding, and speed over durability where a test cannot tell the difference.
 */
const TEST_SETTINGS: Readonly<Record<string, string | number>> = {
  max_connections: 200,
  wal_level: 'logical',
  max_wal_senders: 10,
  max_replication_slots: 10,
  // fsync off is safe for process crashes (the kernel keeps the writes); commits stay synchronous
  // so a killed server keeps every commit it acknowledged.
  fsync: 'off',
  full_page_writes: 'off',
  shared_buffers: "'64MB'",
};

/**
 * A PostgreSQL cluster of the test suite's own: the benchmark's cluster
 * (initdb into a temporary folder, its own port on 127.0.0.1, trust
 * authentication, max_prepared_transactions set) with wal_level=logical, and
 * able to crash and restart. Stop it with `destroy()`.
 */
export class PgCluster extends BenchCluster {
  static override async create<C extends BenchCluster>(this: new (root: string, port: number) => C, opts: ClusterOptions = {}): Promise<C> {
    return BenchCluster.create.call(this, { ...opts, settings: { ...TEST_SETTINGS, ...opts.settings } }) as Promise<C>;
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
    await rm(join(this.root, `.s.PGSQL.${this.port}.lock`), { force: true });
    await rm(join(this.root, `.s.PGSQL.${this.port}`), { force: true });
  }
}

/** Starts `n` clusters in parallel, each with the given databases. */
export async function startClusters(n: number, opts: ClusterOptions = {}): Promise<PgCluster[]> {
  return Promise.all(Array.from({ length: n }, () => PgCluster.create(opts)));
}
