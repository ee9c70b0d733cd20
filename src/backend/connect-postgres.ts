import { readFileSync } from 'node:fs';
import type { ShardName } from '../config/names.js';
import { shardTlsSettings } from '../config/shard-url.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import {
  decodeBackend,
  encodeStartup,
  md5Password,
  ScramClient,
  SCRAM_SHA_256_PLUS,
  tlsServerEndPoint,
  type FrontendMessage,
} from '../protocol/index.js';
import { BackendConnection } from './backend-connection.js';
import { TcpTransport, type ShardTls } from './tcp-transport.js';

/** What a `postgres://` URL says about a shard. */
export interface PostgresTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | null;
  readonly database: string;
  /** TLS to ask for; null: plaintext (sslmode=disable). */
  readonly tls: ShardTls | null;
}

/**
 * Reads `postgres://user:password@host:port/database?sslmode=…`. Missing parts
 * take libpq's defaults (port 5432, user postgres, database = user, sslmode
 * prefer). Of the query options, sslmode, sslrootcert, sslcert and sslkey are
 * read (their files too, now: a missing file fails here, not at each connect);
 * the others are ignored.
 */
export function parsePostgresUrl(url: string): PostgresTarget {
  const u = new URL(url);
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error(`not a postgres:// URL: ${u.protocol}`);
  const user = u.username === '' ? 'postgres' : decodeURIComponent(u.username);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || user;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  return {
    host,
    port: u.port === '' ? 5432 : Number(u.port),
    user,
    password: u.password === '' ? null : decodeURIComponent(u.password),
    database,
    tls: shardTls(u.searchParams, host),
  };
}

function shardTls(params: URLSearchParams, host: string): ShardTls | null {
  const settings = shardTlsSettings(params);
  if (settings.mode === 'disable') return null;
  const read = (file: string | null): Buffer | undefined => (file === null ? undefined : readFileSync(file));
  const verify = settings.mode === 'verify-ca' || settings.mode === 'verify-full' || (settings.mode === 'require' && settings.rootCert !== null);
  return {
    required: settings.mode !== 'prefer',
    verifyChain: verify,
    verifyHost: settings.mode === 'verify-full',
    // 'system': Node's bundled CA store, which is what tls.connect uses when ca is not given.
    ca: settings.rootCert === null || settings.rootCert === 'system' ? undefined : read(settings.rootCert),
    cert: read(settings.cert),
    key: read(settings.key),
    servername: host,
    channelBinding: settings.channelBinding,
  };
}

export interface ConnectOptions {
  /** Longest the TCP connect plus the startup exchange may take. */
  readonly connectTimeoutMs?: number;
  readonly statementCacheSize?: number;
  /** More startup parameters (for example `replication: 'database'` for a walsender session). */
  readonly startupParameters?: Readonly<Record<string, string>>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens a session on a networked shard: StartupMessage (application_name
 * shardgate, client_encoding UTF8), authentication (trust, cleartext, MD5 or
 * SCRAM-SHA-256), ParameterStatus and BackendKeyData up to ReadyForQuery.
 * Any failure, refused login included, is `shardUnavailable` (08006) naming
 * the shard; the shard's own SQLSTATE is kept in the detail.
 */
export async function connectPostgres(shard: ShardName, target: PostgresTarget, opts: ConnectOptions = {}): Promise<BackendConnection> {
  const { transport, parameters } = await openPostgresSession(shard, target, opts);
  return new BackendConnection({ shard, transport, parameters, statementCacheSize: opts.statementCacheSize });
}

/**
 * The startup exchange of connectPostgres without the connection core: the
 * transport after ReadyForQuery and the server's parameters. For sessions that
 * speak more than the statement protocol (a walsender's CopyBoth stream).
 */
export async function openPostgresSession(
  shard: ShardName,
  target: PostgresTarget,
  opts: ConnectOptions = {},
): Promise<{ readonly transport: TcpTransport; readonly parameters: Map<string, string> }> {
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const abort = new AbortController();
  let transport: TcpTransport | null = null;
  const timer = setTimeout(() => {
    abort.abort();
    transport?.destroy();
  }, timeoutMs);
  try {
    transport = await TcpTransport.open(shard, target, target.tls, abort.signal);
    const parameters = await startup(transport, target, opts.startupParameters ?? {});
    return { transport, parameters };
  } catch (err) {
    transport?.destroy();
    if (err instanceof PgError && err.code === '08006') throw err;
    const reason = err instanceof Error ? err.message : String(err);
    const detail = err instanceof PgError ? `SQLSTATE ${err.code}` : undefined;
    throw new PgError(sgError('shardUnavailable', { shard, reason }, detail === undefined ? {} : { detail }).fields, shard);
  } finally {
    clearTimeout(timer);
  }
}

async function startup(t: TcpTransport, target: PostgresTarget, extra: Readonly<Record<string, string>>): Promise<Map<string, string>> {
  t.sendRaw(
    encodeStartup({
      type: 'StartupMessage',
      major: 3,
      minor: 0,
      parameters: { user: target.user, database: target.database, application_name: 'shardgate', client_encoding: 'UTF8', ...extra },
    }),
  );
  const parameters = new Map<string, string>();
  let scram: ScramClient | null = null;
  const password = (): string => {
    if (target.password === null) throw new Error('the server asks for a password and the shard URL has none');
    return target.password;
  };
  const reply = (msg: FrontendMessage): void => t.send([msg]);
  for (;;) {
    const msg = decodeBackend(await t.read());
    switch (msg.type) {
      case 'AuthenticationOk':
        if (target.tls?.channelBinding === 'require' && scram?.mechanism !== SCRAM_SHA_256_PLUS) {
          throw new Error('channel_binding=require, but the shard authenticated without channel binding');
        }
        break;
      case 'NoticeResponse':
      case 'NegotiateProtocolVersion':
        break;
      case 'AuthenticationCleartextPassword':
        reply({ type: 'PasswordMessage', password: password() });
        break;
      case 'AuthenticationMD5Password':
        reply({ type: 'PasswordMessage', password: md5Password(target.user, password(), msg.salt) });
        break;
      case 'AuthenticationSASL':
        scram = new ScramClient(password(), { channelBinding: channelBinding(t, target, msg.mechanisms) });
        if (!msg.mechanisms.includes(scram.mechanism)) throw new Error(`no supported SASL mechanism among ${msg.mechanisms.join(', ')}`);
        reply({ type: 'SASLInitialResponse', mechanism: scram.mechanism, data: scram.clientFirst() });
        break;
      case 'AuthenticationSASLContinue':
        if (scram === null) throw new Error('SASL exchange out of order');
        reply({ type: 'SASLResponse', data: scram.clientFinal(msg.data) });
        break;
      case 'AuthenticationSASLFinal':
        if (scram === null) throw new Error('SASL exchange out of order');
        scram.verifyServerFinal(msg.data);
        break;
      case 'ParameterStatus':
        parameters.set(msg.name, msg.value);
        break;
      case 'BackendKeyData':
        t.setCancelKey(msg.processId, msg.secretKey);
        break;
      case 'ErrorResponse':
        throw new PgError(msg.fields);
      case 'ReadyForQuery':
        return parameters;
      default:
        throw new Error(`unexpected ${msg.type} during startup`);
    }
  }
}

/**
 * The binding data for SCRAM-SHA-256-PLUS when the shard offers it over TLS
 * and the URL does not say channel_binding=disable; null for plain SCRAM.
 * channel_binding=require without an offer is an error here, before any proof is sent.
 */
function channelBinding(t: TcpTransport, target: PostgresTarget, mechanisms: readonly string[]): Buffer | null {
  const wanted = target.tls?.channelBinding ?? 'disable';
  const data = wanted !== 'disable' && t.serverCertificate !== null && mechanisms.includes(SCRAM_SHA_256_PLUS) ? tlsServerEndPoint(t.serverCertificate) : null;
  if (data === null && wanted === 'require') throw new Error(`channel_binding=require, but the shard offers no channel binding (mechanisms: ${mechanisms.join(', ')})`);
  return data;
}
