import { connect, type Socket } from 'node:net';
import { ScramClient } from '../protocol/scram.js';

/** Where and as whom to connect. */
export interface RawConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

/** How slowly to read a result: pause `pauseMs` after every `chunkBytes` received. */
export interface SlowReadOptions {
  readonly chunkBytes: number;
  readonly pauseMs: number;
}

/** What a slow read saw. */
export interface SlowReadResult {
  readonly rows: number;
  readonly bytes: number;
  readonly ms: number;
}

/**
 * Splits a byte stream into backend messages without keeping DataRow (B)
 * bodies: a 5-byte header (type byte, int32 length including itself), then
 * the body. DataRow bodies are skipped as they arrive, so a result of any size
 * costs no memory here; other bodies are collected whole (they are small).
 */
export class MessageScanner {
  #header = Buffer.alloc(0);
  #type = 0;
  #remaining = 0;
  #body: Buffer[] | null = null;
  readonly #onMessage: (type: number, body: Buffer | null) => void;

  /** `onMessage` gets each message's type byte and its body, or null for a DataRow. */
  constructor(onMessage: (type: number, body: Buffer | null) => void) {
    this.#onMessage = onMessage;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#remaining === 0 && this.#body === null) {
        const need = 5 - this.#header.length;
        this.#header = Buffer.concat([this.#header, chunk.subarray(pos, pos + need)]);
        pos += Math.min(need, chunk.length - pos);
        if (this.#header.length < 5) return;
        this.#type = this.#header[0]!;
        this.#remaining = this.#header.readInt32BE(1) - 4;
        this.#header = Buffer.alloc(0);
        this.#body = this.#type === 0x44 ? null : [];
        if (this.#remaining === 0) this.#finish();
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - pos);
      if (this.#body !== null) this.#body.push(chunk.subarray(pos, pos + take));
      pos += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#finish();
    }
  }

  #finish(): void {
    const body = this.#body === null ? null : Buffer.concat(this.#body);
    this.#body = null;
    this.#onMessage(this.#type, body);
  }
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

function startupPacket(user: string, database: string): Buffer {
  const body = Buffer.concat([cstring('user'), cstring(user), cstring('database'), cstring(database), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(196_608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

/** The M (message) field of an ErrorResponse body, with its SQLSTATE. */
function errorText(body: Buffer): string {
  let pos = 0;
  let text = '';
  let code = '';
  while (pos < body.length && body[pos] !== 0) {
    const field = String.fromCharCode(body[pos]!);
    const end = body.indexOf(0, pos + 1);
    const value = body.toString('utf8', pos + 1, end);
    if (field === 'M') text = value;
    if (field === 'C') code = value;
    pos = end + 1;
  }
  return `${code} ${text}`;
}

/**
 * A minimal PostgreSQL client over a raw socket: startup, SCRAM-SHA-256 (or
 * trust, or cleartext) authentication, and simple queries read at a chosen
 * pace, so that a server's behaviour toward a slow reader can be observed.
 * It never buffers result rows.
 */
export class RawPgConnection {
  readonly #socket: Socket;

  private constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Connects and authenticates; resolves at the first ReadyForQuery. Rejects with the server's error. */
  static async connect(opts: RawConnectOptions): Promise<RawPgConnection> {
    const socket = connect(opts.port, opts.host);
    socket.setNoDelay(true);
    await new Promise<void>((resolveConnect, reject) => {
      socket.once('connect', resolveConnect);
      socket.once('error', reject);
    });
    await new Promise<void>((resolveReady, reject) => {
      let scram: ScramClient | null = null;
      const fail = (err: Error): void => {
        socket.off('data', onData);
        socket.destroy();
        reject(err);
      };
      const scanner = new MessageScanner((type, body) => {
        const b = body ?? Buffer.alloc(0);
        if (type === 0x45) return fail(new Error(`server refused the connection: ${errorText(b)}`));
        if (type === 0x5a) {
          socket.off('data', onData);
          socket.off('error', fail);
          return resolveReady();
        }
        if (type !== 0x52) return; // ParameterStatus, BackendKeyData, notices
        const kind = b.readInt32BE(0);
        if (kind === 0) return; // AuthenticationOk
        if (kind === 3) return void socket.write(message('p', cstring(opts.password)));
        if (kind === 10) {
          scram = new ScramClient(opts.password);
          const first = scram.clientFirst();
          const len = Buffer.alloc(4);
          len.writeInt32BE(first.length, 0);
          return void socket.write(message('p', Buffer.concat([cstring('SCRAM-SHA-256'), len, first])));
        }
        if (kind === 11 && scram !== null) return void socket.write(message('p', scram.clientFinal(b.subarray(4))));
        if (kind === 12 && scram !== null) return scram.verifyServerFinal(b.subarray(4));
        fail(new Error(`unsupported authentication request ${kind}`));
      });
      const onData = (chunk: Buffer): void => {
        try {
          scanner.push(chunk);
        } catch (err) {
          fail(err as Error);
        }
      };
      socket.on('data', onData);
      socket.once('error', fail);
      socket.write(startupPacket(opts.user, opts.database));
    });
    return new RawPgConnection(socket);
  }

  /**
   * Sends `sql` as a simple Query and reads the whole result, pausing the
   * socket for `pauseMs` after every `chunkBytes` received, so the server
   * sees a slow reader (TCP backpressure). Resolves at ReadyForQuery with the
   * number of DataRows; rejects on an ErrorResponse or a lost connection.
   */
  readSlowly(sql: string, opts: SlowReadOptions): Promise<SlowReadResult> {
    const started = performance.now();
    const socket = this.#socket;
    return new Promise((resolveRead, reject) => {
      let rows = 0;
      let bytes = 0;
      let sinceLastPause = 0;
      let error: string | null = null;
      const done = (err: Error | null): void => {
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (err === null) resolveRead({ rows, bytes, ms: performance.now() - started });
        else reject(err);
      };
      const scanner = new MessageScanner((type, body) => {
        if (type === 0x44) rows++;
        else if (type === 0x45) error = errorText(body ?? Buffer.alloc(0));
        else if (type === 0x5a) done(error === null ? null : new Error(`query failed: ${error}`));
      });
      const onData = (chunk: Buffer): void => {
        bytes += chunk.length;
        sinceLastPause += chunk.length;
        scanner.push(chunk);
        if (sinceLastPause >= opts.chunkBytes) {
          sinceLastPause = 0;
          socket.pause();
          setTimeout(() => socket.resume(), opts.pauseMs);
        }
      };
      const onError = (err: Error): void => done(err);
      const onClose = (): void => done(new Error('connection closed during the read'));
      socket.on('data', onData);
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.write(message('Q', cstring(sql)));
    });
  }

  /** Sends Terminate and closes the socket. */
  close(): Promise<void> {
    return new Promise((resolveClose) => {
      if (this.#socket.destroyed) return resolveClose();
      this.#socket.once('close', () => resolveClose());
      this.#socket.end(message('X', Buffer.alloc(0)));
      setTimeout(() => this.#socket.destroy(), 2000).unref();
    });
  }
}
