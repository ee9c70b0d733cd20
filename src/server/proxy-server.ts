import { randomBytes, randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { ShardGateConfig } from '../config/types.js';
import { initParser } from '../sql/parser.js';
import { AuthVerifiers } from './auth-verifiers.js';
import { ClientConnection } from './client-connection.js';
import type { ConnectionHooks, SessionFactory } from './client-connection.js';
import { silentLog } from './server-log.js';
import type { ServerLog } from './server-log.js';
import { loadClientTls, negotiateEncryption } from './tls-negotiation.js';
import type { ClientTls } from './tls-negotiation.js';

/** Options of {@link ProxyServer}. */
export interface ProxyServerOptions {
  readonly log?: ServerLog;
  /** A client that has not authenticated within this time is disconnected (default 60 s, PostgreSQL's authentication_timeout). */
  readonly startupTimeoutMs?: number;
}

/** Largest process id handed out: BackendKeyData carries a signed Int32 and PostgreSQL's are positive. */
const MAX_PROCESS_ID = 0x7fff_ffff;

/**
 * The PostgreSQL wire-protocol v3 server: accepts client sockets on
 * `config.listen`, one ClientConnection each, all sessions from one engine.
 * A failure in one connection ends that connection only. At most
 * `config.pool.maxClients` clients are served (53300 beyond). CancelRequests
 * are matched against a random 32-bit secret per session; a wrong key is
 * ignored silently, as PostgreSQL does.
 */
export class ProxyServer {
  readonly #engine: SessionFactory;
  readonly #config: ShardGateConfig;
  readonly #log: ServerLog;
  readonly #verifiers: AuthVerifiers;
  readonly #startupTimeoutMs: number;
  readonly #server: Server;
  readonly #tls: ClientTls | null;
  /** Sockets still in the encryption exchange, before they have a connection. */
  readonly #negotiating = new Set<Socket>();
  /** Every open socket's connection, admitted or not. */
  readonly #connections = new Set<ClientConnection>();
  /** Connections counted against maxClients. */
  readonly #clients = new Set<ClientConnection>();
  readonly #byProcessId = new Map<number, { readonly secretKey: number; readonly conn: ClientConnection }>();
  readonly #keys = new Map<ClientConnection, number>();
  #closed = false;

  /**
   * Computes every configured user's SCRAM verifier here, once; passwords are
   * not kept. Reads `config.tls`'s certificate and key (ConfigError when they
   * are unreadable or do not match).
   */
  constructor(engine: SessionFactory, config: ShardGateConfig, opts: ProxyServerOptions = {}) {
    this.#engine = engine;
    this.#config = config;
    this.#log = opts.log ?? silentLog;
    this.#startupTimeoutMs = opts.startupTimeoutMs ?? 60_000;
    this.#verifiers = new AuthVerifiers(config);
    this.#tls = loadClientTls(config);
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.on('error', (err) => this.#log.error({ err: err.message }, 'listener error'));
  }

  /** Clients connected (from their StartupMessage until they leave). */
  get clientCount(): number {
    return this.#clients.size;
  }

  /** Starts listening on `config.listen` (port 0 picks a free port) and resolves with the bound address. */
  async listen(): Promise<{ host: string; port: number }> {
    // Simple queries are split with PostgreSQL's grammar, which must be loaded first.
    await initParser();
    const { host, port } = this.#config.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        const address = this.#server.address();
        if (address === null || typeof address === 'string') return reject(new Error('listener has no TCP address'));
        this.#log.info({ host: address.address, port: address.port }, 'accepting PostgreSQL clients');
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Stops accepting, ends every connection (their sessions roll back) and resolves once all are closed. */
  async close(): Promise<void> {
    this.#closed = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#negotiating) socket.destroy();
    await Promise.all([...this.#connections].map((conn) => conn.shutdown()));
    await stopped;
  }

  #accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    // The startup timeout covers the encryption exchange too; the connection restarts it.
    this.#negotiating.add(socket);
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'client socket error'));
    const timer = setTimeout(() => socket.destroy(), this.#startupTimeoutMs);
    timer.unref();
    negotiateEncryption(socket, this.#tls, this.#log)
      .then((negotiated) => {
        if (negotiated !== null && !this.#closed) this.#serve(negotiated);
        else socket.destroy();
      })
      .catch((err: unknown) => {
        this.#log.warn({ err: String(err) }, 'encryption negotiation failed');
        socket.destroy();
      })
      .finally(() => {
        clearTimeout(timer);
        this.#negotiating.delete(socket);
      });
  }

  #serve(socket: Socket): void {
    const conn = new ClientConnection(socket, this.#hooks());
    this.#connections.add(conn);
    void conn.run().finally(() => this.#connections.delete(conn));
  }

  #hooks(): ConnectionHooks {
    return {
      engine: this.#engine,
      config: this.#config,
      verifiers: this.#verifiers,
      log: this.#log,
      startupTimeoutMs: this.#startupTimeoutMs,
      tls: this.#tls,
      admit: (conn) => {
        if (this.#clients.size >= this.#config.pool.maxClients) return false;
        this.#clients.add(conn);
        return true;
      },
      register: (conn) => this.#register(conn),
      release: (conn) => {
        this.#clients.delete(conn);
        const processId = this.#keys.get(conn);
        if (processId !== undefined) this.#byProcessId.delete(processId);
        this.#keys.delete(conn);
      },
      cancelRequest: (processId, secretKey) => this.#cancel(processId, secretKey),
    };
  }

  #register(conn: ClientConnection): { processId: number; secretKey: number } {
    let processId = randomInt(1, MAX_PROCESS_ID);
    while (this.#byProcessId.has(processId)) processId = randomInt(1, MAX_PROCESS_ID);
    const secretKey = randomBytes(4).readInt32BE(0);
    this.#byProcessId.set(processId, { secretKey, conn });
    this.#keys.set(conn, processId);
    return { processId, secretKey };
  }

  #cancel(processId: number, secretKey: number): void {
    const entry = this.#byProcessId.get(processId | 0);
    // Compare as 32-bit patterns: a client may send the key back as signed or unsigned.
    if (entry === undefined || (entry.secretKey | 0) !== (secretKey | 0)) {
      this.#log.debug({ processId }, 'CancelRequest with an unknown key ignored');
      return;
    }
    entry.conn.cancel().catch((err: unknown) => this.#log.warn({ err: String(err) }, 'cancel failed'));
  }
}
