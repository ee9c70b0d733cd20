import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { ScramClient, decodeBackend, encodeFrontendMany, encodeStartup } from '../../../src/protocol/index.js';
import type { BackendMessage, FrontendMessage } from '../../../src/protocol/messages.js';

type Typed<T extends BackendMessage['type']> = Extract<BackendMessage, { type: T }>;

/**
 * A protocol-level client written from the PostgreSQL documentation, for what
 * node-pg and psql cannot send (Execute with maxRows, malformed bytes, raw
 * startup packets). Reads are explicit: nothing is consumed until asked for.
 */
export class WireClient {
  readonly socket: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #pending: (() => void) | null = null;
  #ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#wake();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<WireClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new WireClient(socket);
  }

  /** Connects and logs in with SCRAM; resolves after the first ReadyForQuery. */
  static async login(port: number, opts: { user?: string; password?: string; database?: string } = {}): Promise<WireClient> {
    const client = await WireClient.open(port);
    await client.startup(opts);
    return client;
  }

  /** Sends a StartupMessage and logs in with SCRAM (or none under trust); resolves after the first ReadyForQuery. */
  async startup(opts: { user?: string; password?: string; database?: string } = {}): Promise<BackendMessage[]> {
    this.sendRaw(encodeStartup({ type: 'StartupMessage', major: 3, minor: 0, parameters: { user: opts.user ?? 'app', database: opts.database ?? 'app' } }));
    const first = await this.next();
    if (first.type === 'AuthenticationSASL') {
      const scram = new ScramClient(opts.password ?? 'secret');
      this.send([{ type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: scram.clientFirst() }]);
      const cont = await this.expect('AuthenticationSASLContinue');
      this.send([{ type: 'SASLResponse', data: scram.clientFinal(cont.data) }]);
      const final = await this.next();
      if (final.type === 'ErrorResponse') throw new Error(`login failed: ${final.fields.code}`);
      if (final.type !== 'AuthenticationSASLFinal') throw new Error(`unexpected ${final.type}`);
      scram.verifyServerFinal(final.data);
      await this.expect('AuthenticationOk');
    } else if (first.type !== 'AuthenticationOk') {
      throw new Error(`unexpected ${first.type}`);
    }
    return this.until('ReadyForQuery');
  }

  send(msgs: readonly FrontendMessage[]): void {
    this.socket.write(encodeFrontendMany(msgs));
  }

  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** One raw byte answer (SSLRequest's 'S'/'N'). */
  async byte(): Promise<string> {
    while (this.#buf.length === 0) {
      if (this.#ended) throw new Error('connection closed by the server');
      await this.#wait();
    }
    const byte = String.fromCharCode(this.#buf[0]!);
    this.#buf = this.#buf.subarray(1);
    return byte;
  }

  /** The next message; throws when the server closed the connection instead. */
  async next(): Promise<BackendMessage> {
    for (;;) {
      const raw = this.#take();
      if (raw !== null) return decodeBackend(raw);
      if (this.#ended) throw new Error('connection closed by the server');
      await this.#wait();
    }
  }

  async expect<T extends BackendMessage['type']>(type: T): Promise<Typed<T>> {
    const msg = await this.next();
    if (msg.type !== type) throw new Error(`expected ${type}, got ${msg.type}${msg.type === 'ErrorResponse' ? ` ${msg.fields.code}` : ''}`);
    return msg as Typed<T>;
  }

  /** Messages up to and including the first of type `type`. */
  async until(type: BackendMessage['type']): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const msg = await this.next();
      out.push(msg);
      if (msg.type === type) return out;
    }
  }

  /** Resolves when the server has closed the connection; returns the messages received before. */
  async closed(): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const raw = this.#take();
      if (raw !== null) {
        out.push(decodeBackend(raw));
        continue;
      }
      if (this.#ended) return out;
      await this.#wait();
    }
  }

  /**
   * The messages up to and including the `count`-th ReadyForQuery, undecoded:
   * each frame's bytes as received (type byte, length word, body).
   */
  async framesUntilReady(count = 1): Promise<Buffer[]> {
    const out: Buffer[] = [];
    let ready = 0;
    while (ready < count) {
      const raw = this.#take();
      if (raw === null) {
        if (this.#ended) throw new Error('connection closed by the server');
        await this.#wait();
        continue;
      }
      out.push(Buffer.concat([Buffer.from(raw.code, 'latin1'), Buffer.from([0, 0, 0, 0]), raw.body]));
      out.at(-1)!.writeInt32BE(raw.body.length + 4, 1);
      if (raw.code === 'Z') ready++;
    }
    return out;
  }

  end(): void {
    this.socket.destroy();
  }

  /** Type byte, Int32 length (counting itself), body. */
  #take(): { code: string; body: Buffer } | null {
    if (this.#buf.length < 5) return null;
    const len = this.#buf.readInt32BE(1);
    if (this.#buf.length < len + 1) return null;
    const raw = { code: String.fromCharCode(this.#buf[0]!), body: this.#buf.subarray(5, len + 1) };
    this.#buf = this.#buf.subarray(len + 1);
    return raw;
  }

  #wake(): void {
    const pending = this.#pending;
    this.#pending = null;
    pending?.();
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => (this.#pending = resolve));
  }
}
