import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { asPostgresUser, freePort, handToPostgresUser, RUNNING_AS_ROOT } from './pg-cluster.js';
import { firstChildPid } from './process-cpu.js';

const execFileAsync = promisify(execFile);

/** Where the Debian package pgbouncer installs the program; PGBOUNCER overrides. */
export function pgbouncerPath(): string {
  return process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer';
}

/** What to tell someone whose machine has no PgBouncer. */
export const PGBOUNCER_INSTALL_HINT = 'PgBouncer not found at /usr/sbin/pgbouncer: install it with `sudo apt-get install pgbouncer` (or `bash scripts/install-test-deps.sh`); its column is skipped';

/** Version of the installed PgBouncer as [major, minor], or null when it is not installed. */
export async function pgbouncerVersion(): Promise<readonly [number, number] | null> {
  if (!existsSync(pgbouncerPath())) return null;
  const { stdout } = await execFileAsync(pgbouncerPath(), ['--version']);
  const m = /PgBouncer (\d+)\.(\d+)/.exec(stdout);
  return m === null ? null : [Number(m[1]), Number(m[2])];
}

/** True when this PgBouncer keeps protocol-level prepared statements in transaction pooling (1.21 and later). */
export function supportsPreparedStatements(version: readonly [number, number]): boolean {
  return version[0] > 1 || (version[0] === 1 && version[1] >= 21);
}

/** A running PgBouncer serving database `app` of one PostgreSQL server in transaction pooling. */
export interface PgBouncerProcess {
  readonly port: number;
  /** The pgbouncer process itself (not the `runuser` wrapper when we are root), for its CPU time; null once gone. */
  serverPid(): number | null;
  /** SIGTERM (immediate shutdown), SIGKILL after 10 s; removes its folder. */
  stop(): Promise<void>;
}

/** Options of `startPgBouncer`. */
export interface PgBouncerOptions {
  readonly serverPort: number;
  readonly database: string;
  /** Server connections per user and database (default_pool_size). */
  readonly poolSize: number;
  readonly maxClients: number;
  /** Set max_prepared_statements (PgBouncer 1.21+ only). */
  readonly preparedStatements?: boolean;
}

/** The pgbouncer.ini for `opts`, listening on `port`, with its files in `dir`. Trust authentication: loopback only. */
export function pgbouncerIni(opts: PgBouncerOptions, port: number, dir: string): string {
  return [
    '[databases]',
    `${opts.database} = host=127.0.0.1 port=${opts.serverPort} dbname=${opts.database} user=postgres`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir = ${dir}`,
    'auth_type = trust',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    'pool_mode = transaction',
    `max_client_conn = ${opts.maxClients}`,
    `default_pool_size = ${opts.poolSize}`,
    'ignore_startup_parameters = extra_float_digits',
    ...(opts.preparedStatements ? ['max_prepared_statements = 200'] : []),
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n');
}

async function waitForPort(port: number, timeoutMs: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited()) {
    const ok = await new Promise<boolean>((resolveTry) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolveTry(true);
      });
      socket.once('error', () => resolveTry(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`PgBouncer did not listen on port ${port}`);
}

/**
 * Starts PgBouncer in the foreground as its own process group (run as user
 * postgres when we are root: it refuses to run as root) and resolves once
 * its port accepts connections.
 */
export async function startPgBouncer(opts: PgBouncerOptions): Promise<PgBouncerProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'shardgate-bench-pgbouncer-'));
  await handToPostgresUser(dir);
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  await writeFile(ini, pgbouncerIni(opts, port, dir), { mode: 0o644 });
  await writeFile(join(dir, 'userlist.txt'), '"postgres" ""\n"app" "app"\n', { mode: 0o644 });
  const [cmd, args] = asPostgresUser(pgbouncerPath(), [ini]);
  // detached: its own process group, so stopping it reaches pgbouncer under runuser too.
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  const onExit = (): void => killGroup('SIGKILL');
  process.once('exit', onExit);
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const stop = async (): Promise<void> => {
    process.off('exit', onExit);
    if (!exited()) {
      killGroup('SIGTERM');
      await new Promise<void>((resolveStop) => {
        const timer = setTimeout(() => killGroup('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolveStop();
        });
      });
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 15_000, exited);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}: ${stderr}`);
  }
  const serverPid = (): number | null => (exited() ? null : RUNNING_AS_ROOT ? firstChildPid(child.pid!) : child.pid!);
  return { port, stop, serverPid };
}
