import { pino, type DestinationStream, type Logger } from 'pino';

/** Options of `createLogger`. */
export interface LoggerOptions {
  /** pino level; default: env SHARDGATE_LOG_LEVEL, else 'info'. */
  readonly level?: string;
  /** Bound to every line (for example `{ component: 'cli' }`). */
  readonly base?: Record<string, unknown>;
  /** Where lines go; default: stderr, so stdout stays for a command's own output. */
  readonly destination?: DestinationStream;
  /** Environment to read SHARDGATE_LOG_LEVEL from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Places where a password or a URL carrying one can appear in what we log.
 * pino replaces them with "[redacted]", so a configuration or a startup
 * message logged whole never leaks a secret.
 */
export const REDACT_PATHS: readonly string[] = [
  'password',
  '*.password',
  '*.*.password',
  'auth.users[*].password',
  'config.auth.users[*].password',
  'users[*].password',
  'adminToken',
  '*.adminToken',
  'url',
  '*.url',
  'shards[*].url',
  'config.shards[*].url',
  'connectionString',
  '*.connectionString',
];

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * A JSON logger (pino) writing to stderr. Passwords, admin tokens and shard
 * URLs (which may contain passwords) are redacted wherever REDACT_PATHS
 * names them. An unknown SHARDGATE_LOG_LEVEL falls back to 'info' rather than
 * failing start-up.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const wanted = (opts.level ?? env.SHARDGATE_LOG_LEVEL ?? 'info').toLowerCase();
  const level = LEVELS.has(wanted) ? wanted : 'info';
  const options = {
    level,
    base: { pid: process.pid, ...opts.base },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(options, opts.destination ?? pino.destination({ fd: 2, sync: true }));
}

/** Removes the password from a postgres:// URL, for messages meant for people. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}

export type { Logger };
