import { isAbsolute, resolve } from 'node:path';

/**
 * libpq's sslmode values ShardGate implements for shard connections. `allow`
 * (plaintext first, TLS only if the server insists) is refused: it gives no
 * protection and only saves a round trip libpq's own default does not save.
 */
export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The TLS part of a shard URL's query (`?sslmode=verify-full&sslrootcert=ca.pem`). */
export interface ShardTlsSettings {
  /** libpq's default when absent: prefer (TLS when the server offers it, unverified). */
  readonly mode: SslMode;
  /** CA file the server certificate must chain to; 'system' for the system's CAs; null: none given. */
  readonly rootCert: string | null;
  /** Client certificate and key files, for shards that authenticate clients by certificate. */
  readonly cert: string | null;
  readonly key: string | null;
  /**
   * libpq's channel_binding: `prefer` (default) binds SCRAM to the TLS session
   * when the shard offers SCRAM-SHA-256-PLUS, `require` refuses to log in
   * otherwise, `disable` never binds.
   */
  readonly channelBinding: 'disable' | 'prefer' | 'require';
}

/** The query parameters that name files. */
const FILE_PARAMETERS = ['sslrootcert', 'sslcert', 'sslkey'] as const;

/**
 * Reads and checks a shard URL's TLS parameters; throws an Error whose message
 * says what to change. `require` with an `sslrootcert` also verifies the
 * chain, as libpq does; `verify-ca` and `verify-full` need one.
 */
export function shardTlsSettings(params: URLSearchParams): ShardTlsSettings {
  const given = params.get('sslmode') ?? 'prefer';
  if (given === 'allow') throw new Error('sslmode=allow is not supported: use prefer, require or verify-full');
  if (!(SSL_MODES as readonly string[]).includes(given)) throw new Error(`sslmode=${given} is not one of ${SSL_MODES.join(', ')}`);
  const mode = given as SslMode;
  const rootCert = params.get('sslrootcert');
  const cert = params.get('sslcert');
  const key = params.get('sslkey');
  if ((mode === 'verify-ca' || mode === 'verify-full') && rootCert === null) {
    throw new Error(`sslmode=${mode} needs sslrootcert=FILE (the CA that signed the shard's certificate) or sslrootcert=system`);
  }
  if ((cert === null) !== (key === null)) throw new Error('sslcert and sslkey go together: give both or neither');
  if (mode === 'disable' && (rootCert !== null || cert !== null)) throw new Error('sslrootcert, sslcert and sslkey need an sslmode other than disable');
  const channelBinding = params.get('channel_binding') ?? 'prefer';
  if (channelBinding !== 'disable' && channelBinding !== 'prefer' && channelBinding !== 'require') {
    throw new Error(`channel_binding=${channelBinding} is not one of disable, prefer, require`);
  }
  if (channelBinding === 'require' && mode === 'disable') throw new Error('channel_binding=require needs TLS: use sslmode=require or verify-full');
  return { mode, rootCert, cert, key, channelBinding };
}

/**
 * The URL with relative certificate paths made absolute against `baseDir`
 * (the configuration file's folder), so a shard reads the same files
 * whatever the working directory.
 */
export function absoluteShardUrl(url: string, baseDir: string): string {
  const u = new URL(url);
  let changed = false;
  for (const name of FILE_PARAMETERS) {
    const value = u.searchParams.get(name);
    if (value === null || (name === 'sslrootcert' && value === 'system') || isAbsolute(value)) continue;
    u.searchParams.set(name, resolve(baseDir, value));
    changed = true;
  }
  return changed ? u.toString() : url;
}
