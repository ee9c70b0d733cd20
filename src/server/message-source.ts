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

/** Unread client bytes at which the socket is paused (it resumes when a message is awaited again). */
export const CLIENT_PAUSE_AT_BYTES = 256 * 1024;

/**
 * Pulls framed messages from a client socket on demand. The socket reads
 * freely until CLIENT_PAUSE_AT_BYTES are buffered and unread, then pauses
 * until a message is awaited, so a client that pipelines a lot is held back
 * by TCP instead of by our memory: at most that much plus one read chunk and
 * one partial message is buffered. A socket that keeps reading costs no
 * system calls between statements (pausing and resuming each time would cost
 * two). Before waiting for more input it calls
 * `beforeWait` (the connection flushes its output there), so a client waiting
 * for an answer is never left without it.
 */
export class MessageSource {
  readonly #socket: Socket;
  readonly #reader: MessageReader;
  readonly #beforeWait: () => Promise<void>;
  #ended = false;
  #paused = true;
  #wake: (() => void) | null = null;

  constructor(socket: Socket, reader: MessageReader, beforeWait: () => Promise<void>) {
    this.#socket = socket;
    this.#reader = reader;
    this.#beforeWait = beforeWait;
    socket.on('data', (chunk: Buffer) => {
      this.#reader.push(chunk);
      if (this.#reader.buffered >= CLIENT_PAUSE_AT_BYTES) {
        this.#paused = true;
        socket.pause();
      }
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
      if (this.#paused) {
        this.#paused = false;
        this.#socket.resume();
      }
    });
    return true;
  }
}
