import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const BIN = join(resolve(import.meta.dirname, '../..'), 'bin/shardgate.js');

/** A `shardgate cdc` child process. */
export interface CdcProcess {
  readonly child: ChildProcess;
  /** Resolves once it streams from every shard; rejects if it exits first. */
  readonly streaming: Promise<void>;
  /** stderr so far (its logs). */
  logs(): string;
  /** SIGTERM; resolves with the exit status. */
  stop(): Promise<number | null>;
  /** SIGKILL (a crash). */
  kill9(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Resolves with the exit status once `child` has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Spawns `shardgate cdc --config FILE ...args`; each stdout line goes to `onLine`. Needs a built dist/. */
export function startCdc(configFile: string, args: readonly string[] = [], onLine: (line: string) => void = () => undefined): CdcProcess {
  const child = spawn(process.execPath, [BIN, 'cdc', '--config', configFile, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SHARDGATE_LOG_LEVEL: 'info' },
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let logs = '';
  const streaming = new Promise<void>((resolvePromise, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      logs += d.toString();
      if (logs.includes('change data capture streaming')) resolvePromise();
    });
    child.once('exit', (code) => reject(new Error(`shardgate cdc exited (${code}) before streaming:\n${logs}`)));
  });
  // A test that only waits for `stop` must not fail on this promise.
  streaming.catch(() => undefined);
  createInterface({ input: child.stdout! }).on('line', onLine);
  return {
    child,
    streaming,
    logs: () => logs,
    stop: () => {
      child.kill('SIGTERM');
      return exited(child);
    },
    kill9: async () => {
      child.kill('SIGKILL');
      await exited(child);
    },
  };
}
