import type { RawConfig } from './schema.js';

/** Where the embedded default keeps its shards, relative to the working directory. */
export const DEFAULT_DATA_DIR = './.shardgate/data';

/**
 * The configuration used when none is given (CONFIG.md "Defaults"): listen on
 * 127.0.0.1:6432, database `app`, user `app` with password `app`, four
 * embedded shards `s0..s3` under `dataDir`, the README's `account` (by `id`)
 * and `trade` (by `account_id`) tables, other tables on `s0`, no admin HTTP.
 */
export function defaultConfig(dataDir: string = DEFAULT_DATA_DIR): RawConfig {
  const dir = dataDir.replace(/\/+$/, '');
  return {
    listen: '127.0.0.1:6432',
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    shards: {
      s0: { embedded: `${dir}/s0` },
      s1: { embedded: `${dir}/s1` },
      s2: { embedded: `${dir}/s2` },
      s3: { embedded: `${dir}/s3` },
    },
    defaultShard: 's0',
    tables: {
      account: { key: 'id' },
      trade: { key: 'account_id' },
    },
  };
}
