import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, checkServerIdentity, type TLSSocket } from 'node:tls';
import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { encodeFrontendMany, encodeStartup, MessageReader, type FrontendMessage, type MessageRun, type RawMessage } from '../protocol/index.js';
import type { Transport } from './transport.js';

/**
 * Unread bytes at which the socket is paused, and below which it resumes: with
 * rows taken in batches, what waits for the consumer is one batch plus at most
 * this much (and one socket chunk).
 */
const PAUSE_AT_BYTES = 256 * 1024;
const RESUME_BELOW_BYTES = 64 * 1024;
const CANCEL_TIMEOUT_MS = 5_000;
/** What one read from a shard socket can take; shared by all of them (see TcpTransport.connect). */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const CLOSE_TIMEOUT_MS = 2_000;

/** Where a networked shard listens, and its cancel key once connected. */
export interface TcpEndpoint {
  readonly host: string;
  readonly port: number;
}

/** TLS to a shard, from its URL's sslmode (src/config/shard-url.ts). */
export interface ShardTls {
  /** false (sslmode=prefer): a server that answers 'N' is used in plaintext. */
  readonly required: boolean;
  /** The certificate must chain to `ca` (or the system CAs when `ca` is undefined). */
  readonly verifyChain: boolean;
  /** The certificate must also name `servername` (verify-full). */
  readonly verifyHost: boolean;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly servername: string;
  /** libpq's channel_binding for SCRAM over this connection. */
  readonly channelBinding: 'disable' | 'prefer' | 'require';
}

/** SSLRequest: length 8, code 1234.5679. */
const SSL_REQUEST = encodeStartup({ type: 'SSLRequest' });

/**
 * A socket to a PostgreSQL server after the startup exchange. Reading pauses
 * the socket while more than PAUSE_AT_BYTES are buffered and unread, which is
 * how a slow consumer holds back a large result.
 */
export class TcpTransport implements Transport {
  readonly kind = 'network';
  readonly #shard: ShardName;
  readonly #endpoint: TcpEndpoint;
  /** How the session's TLS was set up; a cancel request goes the same way. Null in plaintext. */
  readonly #tls: ShardTls | null;
  readonly #socket: Socket;
  readonly #reader = new MessageReader();
  #waiter: { resolve: (m: RawMessage) => void; reject: (e: Error) => void } | null = null;
  #dead: PgError | null = null;
  #closedByUs = false;
  #paused = false;
  readonly #deathListeners: (() => void)[] = [];
  #cancelKey: { processId: number; secretKey: number } | null = null;

  /**
   * Connects to `endpoint`. Reads land in one buffer shared by every shard
   * socket (Node's `onread`) and are copied out at once: this skips the
   * readable-stream machinery a 'data' event costs on every reply, and a
   * connection keeps no read buffer of its own.
   */
  static connect(shard: ShardName, endpoint: TcpEndpoint): TcpTransport {
    const holder: { transport: TcpTransport | null } = { transport: null };
    const socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      onread: { buffer: SHARED_READ_BUFFER, callback: (n: number, buf: Uint8Array) => (holder.transport === null ? true : holder.transport.#onRead(buf, n)) },
    });
    holder.transport = new TcpTransport(shard, endpoint, socket);
    return holder.transport;
  }

  /**
   * Connects and, unless `tls` is null, negotiates TLS first the way libpq
   * does: SSLRequest, then 'S' → handshake (verifying as `tls` says), 'N' →
   * an error when TLS is required, else a new plaintext connection (the
   * plaintext path reads through the shared buffer, which a socket that has
   * carried the request does not). Resolves connected; `signal` aborts.
   */
  static async open(shard: ShardName, endpoint: TcpEndpoint, tls: ShardTls | null, signal: AbortSignal): Promise<TcpTransport> {
    if (tls !== null) {
      const secure = await negotiateTls(endpoint, tls, signal);
      if (secure !== null) return new TcpTransport(shard, endpoint, secure, secure.getPeerX509Certificate()?.raw ?? null, tls);
    }
    const transport = TcpTransport.connect(shard, endpoint);
    const onAbort = (): void => transport.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) transport.destroy();
      await transport.connected();
      return transport;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** DER of the certificate the shard presented over TLS; null in plaintext. */
  readonly serverCertificate: Buffer | null;

  private constructor(shard: ShardName, endpoint: TcpEndpoint, socket: Socket, serverCertificate: Buffer | null = null, tls: ShardTls | null = null) {
    this.#shard = shard;
    this.#endpoint = endpoint;
    this.#tls = tls;
    this.#socket = socket;
    this.serverCertificate = serverCertificate;
    // A TLS socket delivers decrypted bytes as 'data'; a plain one reads through `onread`.
    if (serverCertificate !== null) socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('error', (err) => this.#die(err.message));
    socket.on('close', () => this.#die('the server closed the connection'));
  }

  /** Resolves once the TCP connection is established; rejects when it fails or closes first. */
  connected(): Promise<void> {
    const { host, port } = this.#endpoint;
    return new Promise<void>((resolve, reject) => {
      this.#socket.once('connect', resolve);
      this.#socket.once('close', () => reject(new Error(`could not connect to ${host}:${port}`)));
      this.#socket.once('error', (err) => reject(new Error(`could not connect to ${host}:${port}: ${err.message}`)));
    });
  }

  get alive(): boolean {
    return this.#dead === null && !this.#closedByUs;
  }

  /** Set from BackendKeyData during startup; needed by cancel(). */
  setCancelKey(processId: number, secretKey: number): void {
    this.#cancelKey = { processId, secretKey };
  }

  /** Writes the startup packet (no type byte). */
  sendRaw(bytes: Buffer): void {
    if (this.#dead === null) this.#socket.write(bytes);
  }

  send(messages: readonly FrontendMessage[]): void {
    if (this.#dead === null) this.#socket.write(encodeFrontendMany(messages));
  }

  drained(): Promise<void> {
    if (!this.#socket.writableNeedDrain || this.#dead !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  tryRead(): RawMessage | null {
    let msg: RawMessage | null;
    try {
      msg = this.#reader.next();
    } catch (err) {
      // Framing is lost: nothing more can be read from this socket.
      this.#die(`invalid data from the server: ${(err as Error).message}`);
      this.#socket.destroy();
      return null;
    }
    this.#resumeIfLow();
    return msg;
  }

  tryReadRun(code: number, maxBytes: number): MessageRun | null {
    // nextRun never throws: a bad length word ends the run, and tryRead reports it.
    const run = this.#reader.nextRun(code, maxBytes);
    if (run !== null) this.#resumeIfLow();
    return run;
  }

  #resumeIfLow(): void {
    if (this.#paused && this.#reader.buffered < RESUME_BELOW_BYTES) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  read(): Promise<RawMessage> {
    const msg = this.tryRead();
    if (msg !== null) return Promise.resolve(msg);
    if (this.#dead !== null) return Promise.reject(this.#dead);
    if (this.#waiter !== null) return Promise.reject(new PgError(sgError('internal', { reason: 'two readers on one shard socket' }).fields, this.#shard));
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /**
   * Sends CancelRequest on a new connection with this session's key and waits
   * until the server closes it (it has signalled the backend by then). A
   * session on TLS sends it over TLS too, negotiated and verified as the
   * session was: a shard behind something that refuses plaintext (a managed
   * service's front end, a pooler requiring TLS) still gets it, and the key
   * never crosses the network in the clear. Never rejects.
   */
  async cancel(): Promise<void> {
    const key = this.#cancelKey;
    if (key === null || this.#dead !== null) return;
    const request = encodeStartup({ type: 'CancelRequest', processId: key.processId, secretKey: key.secretKey });
    let sock: Socket;
    if (this.#tls !== null) {
      const secure = await negotiateTls(this.#endpoint, this.#tls, AbortSignal.timeout(CANCEL_TIMEOUT_MS)).catch(() => null);
      // Refused or failed: the session itself is on TLS, so plaintext is not an option.
      if (secure === null) return;
      sock = secure;
      sock.write(request);
    } else {
      sock = connect({ host: this.#endpoint.host, port: this.#endpoint.port });
      sock.on('connect', () => sock.write(request));
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => sock.destroy(), CANCEL_TIMEOUT_MS);
      sock.on('error', () => undefined);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
      sock.on('data', () => undefined);
    });
  }

  async close(): Promise<void> {
    if (this.#closedByUs) return;
    this.#closedByUs = true;
    if (this.#dead === null) {
      this.#socket.end(encodeFrontendMany([{ type: 'Terminate' }]));
    }
    if (this.#socket.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT_MS);
      this.#socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Closes at once, without Terminate (startup failed or timed out). */
  destroy(): void {
    this.#closedByUs = true;
    this.#socket.destroy();
  }

  get buffered(): number {
    return this.#reader.buffered;
  }

  onDeath(listener: () => void): void {
    this.#deathListeners.push(listener);
  }

  /** A read into the shared buffer: copied out before the next read reuses it; false pauses the socket. */
  #onRead(buf: Uint8Array, n: number): boolean {
    this.#onData(Buffer.from(buf.subarray(0, n)));
    return !this.#paused;
  }

  #onData(chunk: Buffer): void {
    this.#reader.push(chunk);
    if (this.#waiter !== null) {
      const msg = this.tryRead();
      if (msg !== null) {
        const w = this.#waiter;
        this.#waiter = null;
        w.resolve(msg);
      }
    }
    if (!this.#paused && this.#reader.buffered > PAUSE_AT_BYTES) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #die(reason: string): void {
    if (this.#dead !== null) return;
    this.#dead = new PgError(sgError('shardUnavailable', { shard: this.#shard, reason }).fields, this.#shard);
    if (this.#waiter !== null) {
      const w = this.#waiter;
      this.#waiter = null;
      // A message may have completed with the last bytes (a FATAL error before the close).
      const msg = this.tryRead();
      if (msg !== null) w.resolve(msg);
      else w.reject(this.#dead);
    }
    if (!this.#closedByUs) for (const l of this.#deathListeners) l();
  }
}

/**
 * The TLS half of `TcpTransport.open`: the connected TLS socket, or null when
 * the server refused TLS and `tls.required` is false. Bytes the server sends
 * after 'S' before the handshake are refused: they came in the clear and an
 * attacker could have injected them (CVE-2021-23222).
 */
function negotiateTls(endpoint: TcpEndpoint, tls: ShardTls, signal: AbortSignal): Promise<TLSSocket | null> {
  const where = `${endpoint.host}:${endpoint.port}`;
  return new Promise((resolve, reject) => {
    const plain = connect({ host: endpoint.host, port: endpoint.port });
    let secure: TLSSocket | null = null;
    const fail = (message: string): void => {
      signal.removeEventListener('abort', onAbort);
      secure?.destroy();
      plain.destroy();
      reject(new Error(message));
    };
    const onAbort = (): void => fail(`connecting to ${where} timed out`);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) return onAbort();
    const onPlainError = (err: Error): void => fail(`could not connect to ${where}: ${err.message}`);
    plain.on('error', onPlainError);
    plain.once('connect', () => plain.write(SSL_REQUEST));
    plain.once('data', (answer: Buffer) => {
      plain.pause();
      const code = String.fromCharCode(answer[0]!);
      if (code === 'N') {
        signal.removeEventListener('abort', onAbort);
        plain.destroy();
        if (tls.required) reject(new Error(`the shard at ${where} does not support TLS, and its sslmode requires it`));
        else resolve(null);
        return;
      }
      if (code !== 'S') return fail(`the shard at ${where} answered the TLS request with "${code}"`);
      if (answer.length > 1) return fail(`received unencrypted data from ${where} after its TLS answer`);
      secure = tlsConnect({
        socket: plain,
        host: tls.servername,
        // SNI carries host names only (RFC 6066); an IP address is checked against the certificate's IP entries.
        ...(isIP(tls.servername) === 0 ? { servername: tls.servername } : {}),
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        minVersion: 'TLSv1.2',
        rejectUnauthorized: tls.verifyChain,
        checkServerIdentity: tls.verifyHost ? checkServerIdentity : () => undefined,
      });
      secure.once('error', (err) => fail(`TLS with the shard at ${where} failed: ${err.message}`));
      secure.once('secureConnect', () => {
        signal.removeEventListener('abort', onAbort);
        secure!.removeAllListeners('error');
        // The transport listens on the TLS socket from now on; the one under it only needs a sink.
        plain.off('error', onPlainError);
        plain.on('error', () => undefined);
        resolve(secure);
      });
    });
  });
}
