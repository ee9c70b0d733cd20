import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { ShardGateConfig } from '../config/types.js';
import { ConfigError } from '../config/config-error.js';
import { sgError } from '../errors/index.js';
import { GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, encodeBackend, tlsServerEndPoint } from '../protocol/index.js';
import { asFatal } from './error-mapping.js';
import type { ServerLog } from './server-log.js';

/** TLS as offered to clients, loaded once from `config.tls`. */
export interface ClientTls {
  readonly context: SecureContext;
  /** Plaintext clients are refused (28000) after their StartupMessage. */
  readonly required: boolean;
  /** tls-server-end-point data of the certificate (SCRAM-SHA-256-PLUS); null when it has none. */
  readonly channelBinding: Buffer | null;
}

/**
 * Reads the configured certificate and key. Unreadable or mismatched files are
 * a ConfigError naming `tls.cert` / `tls.key`, reported before anything listens.
 */
export function loadClientTls(config: ShardGateConfig): ClientTls | null {
  const tls = config.tls ?? null;
  if (tls === null) return null;
  const read = (path: string, key: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError([{ path: key, message: `cannot read ${path}: ${(err as Error).message}` }]);
    }
  };
  const cert = read(tls.cert, 'tls.cert');
  const key = read(tls.key, 'tls.key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError([{ path: 'tls.cert', message: `${tls.cert} is not a PEM certificate: ${(err as Error).message}` }]);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new ConfigError([{ path: 'tls.key', message: `${tls.key} does not fit ${tls.cert}: ${(err as Error).message}` }]);
  }
  return { context, required: tls.required, channelBinding: tlsServerEndPoint(leaf.raw) };
}

const ACCEPT = Buffer.from('S');
const REFUSE = Buffer.from('N');
/** The bytes read before deciding: an SSLRequest or GSSENCRequest is exactly this long. */
const REQUEST_LENGTH = 8;

/**
 * Answers SSLRequest and GSSENCRequest packets the way PostgreSQL does and,
 * on an SSLRequest when TLS is configured, performs the TLS handshake. The
 * first packet that is neither is put back unread for the startup exchange.
 * Bytes that arrive together with an SSLRequest, before the handshake, are
 * refused (08P01): they were sent in the clear and an attacker could have
 * injected them (CVE-2021-23214). Resolves with the socket to serve (a
 * TLSSocket when the client asked for TLS and got it), or null when the
 * client left or the handshake failed.
 */
export async function negotiateEncryption(socket: Socket, tls: ClientTls | null, log: ServerLog): Promise<Socket | null> {
  for (;;) {
    const head = await readHead(socket);
    if (head === null) return null;
    const code = head.length >= REQUEST_LENGTH ? head.readInt32BE(4) : 0;
    const isRequest = head.readInt32BE(0) === REQUEST_LENGTH && (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE);
    if (!isRequest) {
      socket.unshift(head);
      return socket;
    }
    if (code === GSSENC_REQUEST_CODE || tls === null) {
      if (head.length > REQUEST_LENGTH) socket.unshift(head.subarray(REQUEST_LENGTH));
      socket.write(REFUSE);
      continue;
    }
    if (head.length > REQUEST_LENGTH) {
      refuse(socket, 'received unencrypted data after SSL request: this could be a man-in-the-middle attack');
      return null;
    }
    socket.write(ACCEPT);
    return handshake(socket, tls, log);
  }
}

function handshake(socket: Socket, tls: ClientTls, log: ServerLog): Promise<TLSSocket | null> {
  return new Promise((resolve) => {
    const secure = new TLSSocket(socket, { isServer: true, secureContext: tls.context });
    const fail = (err: Error): void => {
      log.info({ remote: socket.remoteAddress, err: err.message }, 'client TLS handshake failed');
      secure.destroy();
      socket.destroy();
      resolve(null);
    };
    secure.once('error', fail);
    secure.once('close', () => resolve(null));
    secure.once('secure', () => {
      secure.off('error', fail);
      // The connection pauses it and reads on demand, as it does a plain socket.
      secure.pause();
      resolve(secure);
    });
  });
}

/** Writes a FATAL ErrorResponse in the clear and closes: the client has not started TLS. */
function refuse(socket: Socket, reason: string): void {
  socket.end(encodeBackend({ type: 'ErrorResponse', fields: asFatal(sgError('protocolViolation', { reason })).fields }));
}

/**
 * Reads enough to tell an encryption request from anything else: the length
 * word, and when it says 8, the request code. Returns all bytes read (the
 * socket left paused); null at end of stream.
 */
function readHead(socket: Socket): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const done = (value: Buffer | null): void => {
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
      if (total < 4) return;
      const head = Buffer.concat(chunks, total);
      if (total >= REQUEST_LENGTH || head.readInt32BE(0) !== REQUEST_LENGTH) done(head);
    };
    const onEnd = (): void => done(null);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
