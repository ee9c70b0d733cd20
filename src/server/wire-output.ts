import type { Socket } from 'node:net';
import { encodeBackend, encodeDataRow } from '../protocol/index.js';
import type { BackendMessage } from '../protocol/messages.js';
import type { RawRow } from '../protocol/fields.js';

/** Buffered output is written to the socket once it reaches this many bytes. */
const FLUSH_THRESHOLD = 64 * 1024;

/**
 * Buffered, backpressured output to one client. Messages accumulate in memory
 * and go out as one socket write at Sync, Flush, before waiting for input, or
 * once the buffer exceeds 64 KiB — so a pipelined P/B/D/E/S batch is answered
 * with one write. `flush` waits for 'drain' when the socket's buffer is full:
 * a client that reads slowly stops whoever produces rows, and memory stays
 * bounded by the threshold plus the kernel's socket buffers.
 */
export class WireOutput {
  readonly #socket: Socket;
  #chunks: Buffer[] = [];
  #size = 0;
  #closed = false;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.once('close', () => {
      this.#closed = true;
    });
  }

  /** True once the socket is gone: nothing sent afterwards reaches the client. */
  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  /** Bytes buffered and not yet handed to the socket. */
  get buffered(): number {
    return this.#size;
  }

  send(msg: BackendMessage): void {
    this.sendRaw(encodeBackend(msg));
  }

  sendRow(row: RawRow): void {
    this.sendRaw(encodeDataRow(row));
  }

  sendRaw(bytes: Buffer): void {
    if (this.closed) return;
    this.#chunks.push(bytes);
    this.#size += bytes.length;
  }

  /** Flushes when the buffer is large; call after each batch of rows. A promise only when it flushed. */
  maybeFlush(): Promise<void> | undefined {
    return this.#size >= FLUSH_THRESHOLD ? this.flush() : undefined;
  }

  /** Hands everything buffered to the socket and waits until the socket can take more (or is closed). */
  async flush(): Promise<void> {
    if (this.#size === 0 || this.closed) {
      this.#chunks = [];
      this.#size = 0;
      return;
    }
    const bytes = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    this.#size = 0;
    if (!this.#socket.write(bytes)) await this.#drained();
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      const done = (): void => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }
}
