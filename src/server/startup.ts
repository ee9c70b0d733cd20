import type { Socket } from 'node:net';
import type { ShardGateConfig } from '../config/types.js';
import { PgError, sgError } from '../errors/index.js';
import { decodeFrontend, decodeStartup } from '../protocol/index.js';
import type { FrontendMessage } from '../protocol/messages.js';
import { ScramServer } from '../protocol/scram.js';
import { asFatal } from './error-mapping.js';
import { isLoopbackAddress } from './auth-verifiers.js';
import type { AuthVerifiers } from './auth-verifiers.js';
import type { MessageSource } from './message-source.js';
import type { ServerLog } from './server-log.js';
import type { ClientTls } from './tls-negotiation.js';
import type { WireOutput } from './wire-output.js';

/** Answer to SSLRequest and GSSENCRequest: one byte 'N', "not supported, go on in plain text". */
const REFUSE_ENCRYPTION = Buffer.from('N');

/** What the startup exchange needs from the connection and the server. */
export interface StartupContext {
  readonly socket: Socket;
  readonly source: MessageSource;
  readonly out: WireOutput;
  readonly config: ShardGateConfig;
  readonly verifiers: AuthVerifiers;
  readonly log: ServerLog;
  /** TLS as configured for clients; null when not configured. */
  readonly tls: ClientTls | null;
  /** The client opened TLS before this exchange (the ProxyServer negotiates it). */
  readonly encrypted: boolean;
  /** A CancelRequest arrived on this connection: the server checks the key and cancels. */
  cancelRequest(processId: number, secretKey: number): void;
  /** Counts this connection as a client; false when `pool.maxClients` are connected already. */
  admit(): boolean;
}

/** How the startup exchange ended (errors are thrown as FATAL PgErrors). */
export type StartupOutcome =
  | { readonly kind: 'authenticated'; readonly user: string; readonly database: string; readonly parameters: Readonly<Record<string, string>> }
  | { readonly kind: 'cancel' }
  | { readonly kind: 'gone' };

/**
 * Runs the startup exchange up to and including AuthenticationOk: the
 * protocol version, database and user are checked, a plaintext client is
 * refused when `tls.required`, and the client authenticates with
 * SCRAM-SHA-256 — with channel binding (-PLUS) when it came over TLS and
 * offers it — or trust on a loopback listener. Encryption requests were
 * answered before (tls-negotiation.ts); one arriving here on a plaintext
 * connection is refused with 'N', on an encrypted one it is a protocol
 * violation. Every failure is thrown as a FATAL PgError.
 */
export async function runStartup(ctx: StartupContext): Promise<StartupOutcome> {
  for (;;) {
    const body = await ctx.source.nextStartup();
    if (body === null) return { kind: 'gone' };
    const packet = decodeStartup(body);
    switch (packet.type) {
      case 'SSLRequest':
      case 'GSSENCRequest':
        if (ctx.encrypted) throw sgError('protocolViolation', { reason: 'encryption requested on a connection that is encrypted already' });
        ctx.out.sendRaw(REFUSE_ENCRYPTION);
        continue;
      case 'CancelRequest':
        ctx.cancelRequest(packet.processId, packet.secretKey);
        return { kind: 'cancel' };
      case 'StartupMessage':
        return startSession(ctx, packet.major, packet.minor, packet.parameters);
    }
  }
}

async function startSession(
  ctx: StartupContext,
  major: number,
  minor: number,
  startupParameters: Readonly<Record<string, string>>,
): Promise<StartupOutcome> {
  if (major !== 3) throw sgError('unsupportedProtocolVersion', { major, minor });
  if (ctx.tls?.required === true && !ctx.encrypted) throw sgError('tlsRequired');
  const protocolOptions = Object.keys(startupParameters).filter((name) => name.startsWith('_pq_.'));
  if (minor > 0 || protocolOptions.length > 0) {
    // We speak 3.0 and no protocol extension; the client may go on with that.
    ctx.out.send({ type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized: protocolOptions });
  }
  const user = startupParameters.user;
  if (user === undefined || user === '') {
    throw sgError('invalidAuthorization', { reason: 'no PostgreSQL user name specified in startup packet' });
  }
  const replication = startupParameters.replication;
  if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
    throw asFatal(sgError('featureNotSupported', { feature: 'replication connections', hint: '' }));
  }
  if (!ctx.admit()) throw sgError('tooManyConnections', { limit: ctx.config.pool.maxClients });
  const database = startupParameters.database ?? user;
  if (database !== ctx.config.database) {
    throw sgError('unknownDatabase', { database, expected: ctx.config.database });
  }
  const authenticated = await authenticate(ctx, user);
  if (!authenticated) return { kind: 'gone' };
  const parameters: Record<string, string> = {};
  for (const [name, value] of Object.entries(startupParameters)) {
    if (name !== 'user' && name !== 'database' && !name.startsWith('_pq_.')) parameters[name] = value;
  }
  return { kind: 'authenticated', user, database, parameters };
}

/** True when the client proved its identity; false when it left mid-exchange. */
async function authenticate(ctx: StartupContext, user: string): Promise<boolean> {
  const { verifier, known } = ctx.verifiers.lookup(user);
  if (ctx.config.auth.trust) {
    // Configuration validation already refuses trust on a non-loopback listen
    // address; checking the address this connection actually arrived on keeps
    // trust from ever applying to a remote client, whatever the listener.
    if (isLoopbackAddress(ctx.socket.localAddress)) {
      if (known || ctx.verifiers.users.size === 0) {
        ctx.out.send({ type: 'AuthenticationOk' });
        return true;
      }
    } else {
      ctx.log.warn({ localAddress: ctx.socket.localAddress }, 'trust authentication ignored on a non-loopback address');
    }
  }
  // Channel binding ties the proof to this TLS session's certificate: a relay in the middle cannot reuse it.
  const scram = new ScramServer(verifier, { channelBinding: ctx.encrypted ? (ctx.tls?.channelBinding ?? null) : null });
  ctx.out.send({ type: 'AuthenticationSASL', mechanisms: [...scram.mechanisms] });
  const initial = await readPasswordMessage(ctx, 'saslInitial');
  if (initial === null) return false;
  if (initial.type !== 'SASLInitialResponse' || !scram.mechanisms.includes(initial.mechanism) || initial.data === null) {
    throw sgError('protocolViolation', { reason: 'client selected an invalid SASL authentication mechanism' });
  }
  let serverFirst: Buffer;
  try {
    serverFirst = scram.handleClientFirst(initial.data, initial.mechanism);
  } catch (err) {
    throw scramFailure(err);
  }
  ctx.out.send({ type: 'AuthenticationSASLContinue', data: serverFirst });
  const final = await readPasswordMessage(ctx, 'sasl');
  if (final === null) return false;
  if (final.type !== 'SASLResponse') throw sgError('protocolViolation', { reason: 'expected a SASL response' });
  let result: ReturnType<ScramServer['handleClientFinal']>;
  try {
    result = scram.handleClientFinal(final.data);
  } catch (err) {
    throw scramFailure(err);
  }
  // An unknown user fails here, after the same exchange a known one goes through.
  if (!result.ok || !known) throw sgError('passwordFailed', { user });
  ctx.out.send({ type: 'AuthenticationSASLFinal', data: result.serverFinal });
  ctx.out.send({ type: 'AuthenticationOk' });
  return true;
}

async function readPasswordMessage(ctx: StartupContext, kind: 'saslInitial' | 'sasl'): Promise<FrontendMessage | null> {
  const raw = await ctx.source.next();
  if (raw === null) return null;
  if (raw.code !== 'p') {
    throw sgError('protocolViolation', { reason: `expected a password response, got message type "${raw.code}"` });
  }
  return decodeFrontend(raw, kind);
}

function scramFailure(err: unknown): PgError {
  if (err instanceof PgError) return asFatal(err);
  return sgError('protocolViolation', { reason: `malformed SCRAM message: ${err instanceof Error ? err.message : String(err)}` });
}
