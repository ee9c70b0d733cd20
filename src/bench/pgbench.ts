import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from './pg-cluster.js';
import { parsePgbenchLog, parsePgbenchOutput, PgbenchOutputError, type PgbenchSummary } from './pgbench-output.js';
import { processCpuMs } from './process-cpu.js';

/** Where pgbench connects. */
export interface PgbenchTarget {
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** libpq sslmode; plaintext ('disable') unless a side measures TLS. */
  readonly sslmode?: 'disable' | 'require';
}

/** One pgbench run's outcome. */
export interface PgbenchRun {
  readonly summary: PgbenchSummary;
  /** Per-transaction latencies in ms from `-l`, when `transactionLog` was asked for; otherwise empty. */
  readonly latenciesMs: readonly number[];
  /** CPU time (µs, user + system) process `cpuPid` spent per transaction during the run; null when not asked for or unreadable. */
  readonly cpuUsPerTransaction: number | null;
}

/** Options of `runPgbench`. */
export interface PgbenchOptions {
  /** Arguments between the connection options and the database name, e.g. ['-S', '-T', '5', '-c', '16']. */
  readonly args: readonly string[];
  /** Also write and read a per-transaction log (-l) for latency percentiles. */
  readonly transactionLog?: boolean;
  readonly timeoutMs?: number;
  /** A process between client and server (a proxy) whose CPU time per transaction is measured over the run. */
  readonly cpuPid?: number | null;
}

/** pgbench's argument list for `target` and `opts` (without the log prefix). */
export function pgbenchArgs(target: PgbenchTarget, args: readonly string[]): string[] {
  return ['-h', '127.0.0.1', '-p', String(target.port), '-U', target.user, ...args, target.database];
}

/**
 * Runs pgbench against `target` and parses its summary. Rejects with
 * pgbench's output when it exits non-zero or prints no summary (the run
 * aborted, e.g. a client lost its connection).
 */
export async function runPgbench(target: PgbenchTarget, opts: PgbenchOptions): Promise<PgbenchRun> {
  const logDir = opts.transactionLog ? await mkdtemp(join(tmpdir(), 'shardgate-bench-pgbench-')) : null;
  try {
    const args = [...(logDir === null ? [] : ['-l', `--log-prefix=${join(logDir, 'tx')}`]), ...opts.args];
    const cpuPid = opts.cpuPid ?? null;
    const cpuBefore = cpuPid === null ? null : processCpuMs(cpuPid);
    const res = await runCommand('pgbench', pgbenchArgs(target, args), {
      env: { PGPASSWORD: target.password ?? '', PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'pgbench', PGSSLMODE: target.sslmode ?? 'disable' },
      timeoutMs: opts.timeoutMs ?? 300_000,
    });
    const cpuAfter = cpuPid === null ? null : processCpuMs(cpuPid);
    if (res.code !== 0) throw new Error(`pgbench ${args.join(' ')} exited with ${res.code}:\n${res.stdout}\n${res.stderr}`);
    let summary: PgbenchSummary;
    try {
      summary = parsePgbenchOutput(res.stdout);
    } catch (err) {
      if (err instanceof PgbenchOutputError) throw new Error(`pgbench ${args.join(' ')}: ${err.message}:\n${res.stdout}\n${res.stderr}`);
      throw err;
    }
    const latenciesMs: number[] = [];
    if (logDir !== null) {
      for (const file of await readdir(logDir)) latenciesMs.push(...parsePgbenchLog(await readFile(join(logDir, file), 'utf8')));
    }
    const cpuUsPerTransaction =
      cpuBefore !== null && cpuAfter !== null && summary.transactions > 0 ? ((cpuAfter - cpuBefore) * 1000) / summary.transactions : null;
    return { summary, latenciesMs, cpuUsPerTransaction };
  } finally {
    if (logDir !== null) await rm(logDir, { recursive: true, force: true });
  }
}

/**
 * Runs `pgbench -i -s scale` (client-side data generation, no vacuum or key
 * steps skipped) against `target`. Rejects with the output on failure.
 */
export async function initPgbench(target: PgbenchTarget, scale: number, timeoutMs = 600_000): Promise<void> {
  const args = ['-i', '-s', String(scale), '-q'];
  const res = await runCommand('pgbench', pgbenchArgs(target, args), {
    env: { PGPASSWORD: target.password ?? '', PGCONNECT_TIMEOUT: '10' },
    timeoutMs,
  });
  if (res.code !== 0) throw new Error(`pgbench -i -s ${scale} exited with ${res.code}:\n${res.stdout}\n${res.stderr}`);
}

/** Threads for `clients` pgbench clients on this machine: one per core, never more than clients. */
export function pgbenchThreads(clients: number, cores: number): number {
  return Math.max(1, Math.min(clients, cores));
}
