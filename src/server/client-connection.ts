import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ShardGateConfig } from '../config/types.js';
import type { EngineSession } from '../engine/session-api.js';
import { PgError, sgError } from '../errors/index.js';
import { MessageReader, decodeFrontend } from '../protocol/index.js';
import type { FrontendMessage } from '../protocol/messages.js';
import type { AuthVerifiers } from './auth-verifiers.js';
import { DescriptionCache } from './description-cache.js';
import { asFatal, toClientError, toPgError } from './error-mapping.js';
import { ExtendedQuery } from './extended-query.js';
import { ClientGoneError, MessageSource } from './message-source.js';
import type { ServerLog } from './server-log.js';
import { runSimpleQuery } from './simple-query.js';
import { runStartup } from './startup.js';
import type { ClientTls } from './tls-negotiation.js';
import type { RunIO } from './statement-run.js';
import { WireOutput } from './wire-output.js';

/** Largest regular message accepted from a client (the startup packet has its own 10 000-byte limit). */
export const MAX_CLIENT_MESSAGE_SIZE = 64 * 1024 * 1024;

/** Creates engine sessions: `Engine` satisfies this. */
export interface SessionFactory {
  session(opts: { user: string; database: string; parameters: Readonly<Record<string, string>> }): EngineSession;
}

/** What a connection needs from the server that accepted it. */
export interface ConnectionHooks {
  readonly engine: SessionFactory;
  readonly config: ShardGateConfig;
  readonly verifiers: AuthVerifiers;
  readonly log: ServerLog;
  /** A client that has not authenticated within this time is disconnected. */
  readonly startupTimeoutMs: number;
  /** TLS offered to clients; null when not configured. */
  readonly tls: ClientTls | null;
  /** Counts the connection as a client; false when `pool.maxClients` is reached. */
  admit(conn: ClientConnection): boolean;
  /** Registers an authenticated session for CancelRequest and returns its key. */
  register(conn: ClientConnection): { processId: number; secretKey: number };
  /** The connection ended: forget it. */
  release(conn: ClientConnection): void;
  /** A CancelRequest arrived on this connection. */
  cancelRequest(processId: number, secretKey: number): void;
}

/** How long a shutdown waits for the message in hand (a COMMIT, say) to finish before closing without an answer. */
const SHUTDOWN_WAIT_MS = 15_000;

/** Extended-query messages: after an error among them, everything up to Sync is skipped. */
const EXTENDED = new Set<FrontendMessage['type']>(['Parse', 'Bind', 'Describe', 'Execute', 'Close', 'Flush']);

/**
 * One client socket speaking protocol v3, driving one EngineSession. It never
 * throws: every failure becomes an ErrorResponse (ERROR for a statement,
 * FATAL when the connection must end) and only this connection is affected.
 * When the socket closes, for whatever reason, the session is closed, which
 * rolls back any open transaction on every shard.
 */
export class ClientConnection {
  readonly #socket: Socket;
  readonly #hooks: ConnectionHooks;
  readonly #out: WireOutput;
  readonly #source: MessageSource;
  readonly #descriptions = new DescriptionCache();
  #session: EngineSession | null = null;
  #extended: ExtendedQuery | null = null;
  /** After an error in an extended-query batch: messages are discarded until Sync. */
  #skipToSync = false;
  /** A statement is running (cancel it if the client vanishes). */
  #busy = false;
  #closing = false;
  #finished: Promise<void> | null = null;
  /** Called once the message being handled is done (shutdown waits for them). */
  #idleWaiters: (() => void)[] = [];

  /** `socket` is a TLSSocket when the client opened TLS before its StartupMessage (ProxyServer negotiates it). */
  constructor(socket: Socket, hooks: ConnectionHooks) {
    this.#socket = socket;
    this.#hooks = hooks;
    socket.setNoDelay(true);
    socket.on('error', (err) => hooks.log.debug({ err: err.message }, 'client socket error'));
    socket.once('close', () => this.#onSocketClose());
    this.#out = new WireOutput(socket);
    this.#source = new MessageSource(socket, new MessageReader({ maxMessageSize: MAX_CLIENT_MESSAGE_SIZE }), () => this.#out.flush());
  }

  /** The session, once authenticated. */
  get session(): EngineSession | null {
    return this.#session;
  }

  /** Serves the connection until it ends; never rejects. Call once. */
  run(): Promise<void> {
    this.#finished ??= this.#run();
    return this.#finished;
  }

  /** Cancels the statements the session is running (a CancelRequest with this session's key). */
  async cancel(): Promise<void> {
    await this.#session?.cancel();
  }

  /**
   * Ends the connection from the server side: cancels what runs and lets the
   * message in hand finish and answer, then tells the client (FATAL 57P01)
   * and closes the socket; `run()` then closes the session, rolling back an
   * open transaction. A COMMIT in progress is never answered with 57P01: the
   * transaction manager completes it either way, so the client gets its real
   * outcome, or (if it has not ended within SHUTDOWN_WAIT_MS) no answer at
   * all, which a client must treat as outcome unknown.
   */
  async shutdown(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      let answered = true;
      if (this.#busy) {
        await this.#session?.cancel().catch(() => undefined);
        answered = await this.#idleWithin(SHUTDOWN_WAIT_MS);
      }
      if (answered) {
        this.#out.send({ type: 'ErrorResponse', fields: sgError('adminShutdown').fields });
        await Promise.race([this.#out.flush(), new Promise((resolve) => setTimeout(resolve, 100).unref())]);
      }
      this.#socket.destroy();
    }
    await this.#finished;
  }

  /** Resolves true once no message is being handled, false if that takes longer than `ms`. */
  #idleWithin(ms: number): Promise<boolean> {
    if (!this.#busy) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      timer.unref();
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async #run(): Promise<void> {
    try {
      const ready = await this.#start();
      if (ready) await this.#serve();
    } catch (err) {
      if (!(err instanceof ClientGoneError)) {
        const error = asFatal(toPgError(err, this.#hooks.log));
        this.#hooks.log.debug({ code: error.code, message: error.message }, 'closing client connection after a FATAL error');
        this.#out.send({ type: 'ErrorResponse', fields: error.fields });
      }
    } finally {
      await this.#finish();
    }
  }

  /** Startup and authentication, then the session's parameters, key and first ReadyForQuery. */
  async #start(): Promise<boolean> {
    const hooks = this.#hooks;
    const timer = setTimeout(() => {
      hooks.log.info({ remote: this.#socket.remoteAddress }, 'client did not complete startup in time');
      this.#socket.destroy();
    }, hooks.startupTimeoutMs);
    timer.unref();
    try {
      const outcome = await runStartup({
        socket: this.#socket,
        source: this.#source,
        out: this.#out,
        config: hooks.config,
        verifiers: hooks.verifiers,
        log: hooks.log,
        tls: hooks.tls,
        encrypted: this.#socket instanceof TLSSocket,
        cancelRequest: (processId, secretKey) => hooks.cancelRequest(processId, secretKey),
        admit: () => hooks.admit(this),
      });
      if (outcome.kind !== 'authenticated') return false;
      const session = hooks.engine.session({ user: outcome.user, database: outcome.database, parameters: outcome.parameters });
      this.#session = session;
      this.#extended = new ExtendedQuery(this.#io(), session);
      for (const [name, value] of await session.initialParameters()) this.#out.send({ type: 'ParameterStatus', name, value });
      const key = hooks.register(this);
      this.#out.send({ type: 'BackendKeyData', processId: key.processId, secretKey: key.secretKey });
      this.#out.send({ type: 'ReadyForQuery', status: session.txStatus });
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The message loop after startup. Returns when the client terminates or goes away. */
  async #serve(): Promise<void> {
    for (;;) {
      // Pipelined messages (Bind, Execute, Sync in one packet) are taken without waiting.
      const raw = this.#source.tryNext() ?? (await this.#source.next());
      if (raw === null || this.#closing) return;
      const msg = decodeFrontend(raw);
      if (msg.type === 'Terminate') return;
      if (this.#skipToSync && msg.type !== 'Sync') continue;
      this.#busy = true;
      try {
        const pending = this.#handle(msg);
        if (pending !== undefined) await pending;
      } catch (err) {
        if (err instanceof ClientGoneError) throw err;
        const error = toClientError(err, this.#hooks.log);
        if (error.fatal) throw error;
        this.#out.send({ type: 'ErrorResponse', fields: error.fields });
        if (EXTENDED.has(msg.type)) this.#skipToSync = true;
        else this.#out.send({ type: 'ReadyForQuery', status: this.#session!.txStatus });
      } finally {
        this.#busy = false;
        for (const wake of this.#idleWaiters.splice(0)) wake();
      }
    }
  }

  /** Handles one message; a promise only when the message needs to wait for something. */
  #handle(msg: FrontendMessage): Promise<void> | void {
    const extended = this.#extended!;
    switch (msg.type) {
      case 'Query':
        return this.#query(msg.sql);
      case 'Parse':
        return extended.parse(msg);
      case 'Bind':
        return extended.bind(msg);
      case 'Describe':
        return extended.describe(msg);
      case 'Execute':
        return extended.execute(msg);
      case 'Close':
        return extended.close(msg);
      case 'Sync': {
        this.#skipToSync = false;
        const closing = extended.sync();
        if (closing !== undefined) return closing.then(() => this.#ready());
        return this.#ready();
      }
      case 'Flush':
        return this.#out.flush();
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        // Left over from a COPY that already failed: PostgreSQL ignores them too.
        return;
      case 'FunctionCall':
        throw sgError('featureNotSupported', { feature: 'the function call protocol message', hint: 'Call the function with SELECT.' });
      default:
        throw sgError('protocolViolation', { reason: `unexpected ${msg.type} message after authentication` });
    }
  }

  async #query(sql: string): Promise<void> {
    const session = this.#session!;
    await this.#extended!.dropUnnamed();
    await runSimpleQuery(this.#io(), session, sql, this.#hooks.log);
    this.#out.send({ type: 'ReadyForQuery', status: session.txStatus });
  }

  /** ReadyForQuery after Sync, and everything buffered goes out. */
  #ready(): Promise<void> {
    this.#out.send({ type: 'ReadyForQuery', status: this.#session!.txStatus });
    return this.#out.flush();
  }

  #io(): RunIO {
    return { out: this.#out, source: this.#source, descriptions: this.#descriptions };
  }

  #onSocketClose(): void {
    this.#closing = true;
    // A statement still running for a client that is gone only holds shard resources.
    if (this.#busy) {
      this.#session?.cancel().catch((err: unknown) => this.#hooks.log.debug({ err: String(err) }, 'cancel after disconnect failed'));
    }
  }

  async #finish(): Promise<void> {
    this.#closing = true;
    const log = this.#hooks.log;
    try {
      await this.#extended?.closePortals();
    } catch (err) {
      log.warn({ err: errorText(err) }, 'closing portals failed');
    }
    try {
      // Rolls back an open transaction everywhere and returns the backend connections.
      await this.#session?.close();
    } catch (err) {
      log.warn({ err: errorText(err) }, 'closing a client session failed');
    }
    this.#hooks.release(this);
    await Promise.race([this.#out.flush(), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    if (!this.#socket.destroyed) {
      this.#socket.end(() => this.#socket.destroy());
      setTimeout(() => this.#socket.destroy(), 5000).unref();
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof PgError ? `${err.code} ${err.message}` : err instanceof Error ? err.message : String(err);
}
