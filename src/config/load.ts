import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError } from './config-error.js';
import { defaultConfig } from './default-config.js';
import { parseConfig } from './parse-config.js';
import type { RawConfig } from './schema.js';
import type { ShardGateConfig } from './types.js';

export { ConfigError, formatPath, type ConfigIssue } from './config-error.js';
export { defaultConfig, DEFAULT_DATA_DIR } from './default-config.js';
export { parseConfig, parseHostPort, isLoopbackHost, type HostPort, type ParseOptions } from './parse-config.js';

/** A configuration before validation, with the folder its relative paths are relative to. */
export interface ConfigSource {
  readonly raw: unknown;
  readonly baseDir: string;
  /** The file it was read from; null for the embedded default or an object passed in. */
  readonly file: string | null;
}

/** Options of `loadConfig` / `readConfigSource`. */
export interface LoadOptions {
  /** Environment to read SHARDGATE_CONFIG from. Default: process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Top-level keys replacing the file's (for command-line flags such as --listen), validated with the rest. */
  readonly overrides?: Partial<RawConfig>;
}

/**
 * Reads a YAML configuration file. Throws `ConfigError` when the file cannot
 * be read or is not valid YAML (duplicate keys included), naming the file and
 * the line.
 */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([{ path: file, message: code === 'ENOENT' ? 'no such file' : `cannot read: ${(err as Error).message}` }]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        path: e.linePos ? `${file}:${e.linePos[0].line}:${e.linePos[0].col}` : file,
        message: `invalid YAML: ${e.message.split('\n')[0] ?? e.code}`,
      })),
    );
  }
  return doc.toJS();
}

/**
 * Finds the configuration to use: an object passed in; else a file path
 * passed in; else the file named by SHARDGATE_CONFIG; else the embedded
 * default of CONFIG.md (relative to the working directory).
 */
export function readConfigSource(source?: unknown, opts: LoadOptions = {}): ConfigSource {
  const env = opts.env ?? process.env;
  const file = typeof source === 'string' ? source : source === undefined && env.SHARDGATE_CONFIG ? env.SHARDGATE_CONFIG : undefined;
  if (file !== undefined) {
    const abs = resolve(file);
    return { raw: readConfigFile(abs), baseDir: dirname(abs), file: abs };
  }
  return { raw: source === undefined ? defaultConfig() : source, baseDir: process.cwd(), file: null };
}

/**
 * Loads and validates the configuration (see `readConfigSource` for where it
 * comes from). `source` is a file path (string) or a raw configuration
 * object. Throws `ConfigError` with every problem found; nothing is started
 * or opened here.
 */
export function loadConfig(source?: string | unknown, opts: LoadOptions = {}): ShardGateConfig {
  const { raw, baseDir } = readConfigSource(source, opts);
  const merged =
    opts.overrides && raw !== null && typeof raw === 'object' && !Array.isArray(raw)
      ? { ...(raw as Record<string, unknown>), ...opts.overrides }
      : raw;
  return parseConfig(merged, { baseDir });
}
