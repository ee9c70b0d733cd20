import type { Socket } from 'node:net';
import type { MessageReader } from '../protocol/index.js';
import type { RawMessage } from '../protocol/messages.js';

/** The client closed its connection while a statement still needed it; nothing more can be sent. */
export class ClientGoneError extends Error {
  constructor() {
    super('client connection closed');
    this.name = 'ClientGoneError';
  }
}

/**
 * Pulls framed messages from a client socket on demand. The socket stays
 * paused except while a message is awaited, so a client that pipelines a lot
 * is held back by TCP instead of by our memory: at most one read chunk plus
 * one partial message is buffered. Before waiting for more input it calls
 * `beforeWait` (the connection flushes its output there), so a client waiting
 * for an answer is never left without it.
 */
export class MessageSource {
  readonly #socket: Socket;
  readonly #reader: MessageReader;
  readonly #beforeWait: () => Promise<void>;
  #ended = false;
  #wake: (() => void) | null = null;

  constructor(socket: Socket, reader: MessageReader, beforeWait: () => Promise<void>) {
    this.#socket = socket;
    this.#reader = reader;
    this.#beforeWait = beforeWait;
    socket.on('data', (chunk: Buffer) => {
      socket.pause();
      this.#reader.push(chunk);
      this.#notify();
    });
    const end = (): void => {
      this.#ended = true;
      this.#notify();
    };
    socket.once('end', end);
    socket.once('close', end);
    socket.pause();
  }

  /** True once the client closed its side. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The next startup packet body, or null when the client went away. Throws PgError 08P01 on a bad length. */
  async nextStartup(): Promise<Buffer | null> {
    for (;;) {
      const body = this.#reader.nextStartup();
      if (body !== null) return body;
      if (!(await this.#more())) return null;
    }
  }

  /** The next message if it has been received already; never waits. */
  tryNext(): RawMessage | null {
    return this.#reader.next();
  }

  /** The next message, or null when the client went away. Throws PgError 08P01 on a bad or oversized length. */
  async next(): Promise<RawMessage | null> {
    for (;;) {
      const msg = this.#reader.next();
      if (msg !== null) return msg;
      if (!(await this.#more())) return null;
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    await this.#beforeWait();
    if (this.#ended) return false;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#socket.resume();
    });
    return true;
  }
}
