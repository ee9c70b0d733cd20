import { ConfigError } from '../config/load.js';

/**
 * Where a command writes and what it listens to. Commands never touch
 * process.stdout, process.exit or signal handlers directly, so they can run
 * in-process in tests.
 */
export interface CliIo {
  /** Writes one line of the command's output (stdout). */
  out(line: string): void;
  /** Writes one line for people (stderr). */
  err(line: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves with the signal's name at the first SIGINT or SIGTERM. */
  onShutdownSignal(): Promise<string>;
  /** Calls `handler` at every SIGHUP (configuration reload) until the returned function is called. */
  onReloadSignal?(handler: () => void): () => void;
}

/** The io of a real process: stdout, stderr, process.env, real signals. */
export function processIo(): CliIo {
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    env: process.env,
    onShutdownSignal: () =>
      new Promise((resolve) => {
        const on = (signal: NodeJS.Signals): void => {
          process.off('SIGINT', on);
          process.off('SIGTERM', on);
          resolve(signal);
        };
        process.on('SIGINT', on);
        process.on('SIGTERM', on);
      }),
    onReloadSignal: (handler) => {
      const on = (): void => handler();
      process.on('SIGHUP', on);
      return () => void process.off('SIGHUP', on);
    },
  };
}

/** Exit status for a configuration that cannot be used: nothing was started. */
export const EXIT_CONFIG = 2;

/**
 * Prints a configuration error as the contract promises: a heading line,
 * then one line per problem `  <path>: <message>`; returns EXIT_CONFIG.
 */
export function reportConfigError(io: CliIo, err: ConfigError): number {
  io.err('shardgate: configuration error:');
  for (const issue of err.issues) io.err(`  ${issue.path}: ${issue.message}`);
  return EXIT_CONFIG;
}

/** Runs a command body, turning a ConfigError into its report and exit status. */
export async function withConfigErrors(io: CliIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof ConfigError) return reportConfigError(io, err);
    throw err;
  }
}
