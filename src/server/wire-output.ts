import type { Socket } from 'node:net';
import { BufferWriter, writeBackend, writeDataRow } from '../protocol/index.js';
import type { BackendMessage } from '../protocol/messages.js';
import type { RawRow } from '../protocol/fields.js';

/** Buffered output is written to the socket once it reaches this many bytes. */
const FLUSH_THRESHOLD = 64 * 1024;
/** First size of the buffer messages are written into; it doubles as needed. */
const INITIAL_BYTES = 1024;

/**
 * Buffered, backpressured output to one client. Messages are encoded straight
 * into one growing buffer and go out as one socket write at Sync, Flush,
 * before waiting for input, or once the buffer exceeds 64 KiB — so a
 * pipelined P/B/D/E/S batch is answered with one write and one allocation.
 * `flush` waits for 'drain' when the socket's buffer is full: a client that
 * reads slowly stops whoever produces rows, and memory stays bounded by the
 * threshold plus the kernel's socket buffers.
 */
export class WireOutput {
  readonly #socket: Socket;
  #writer: BufferWriter | null = null;
  /** Size of the next buffer: what the last flush held (a result streaming rows fills whole buffers), at least INITIAL_BYTES. */
  #nextBytes = INITIAL_BYTES;
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
    return this.#writer?.length ?? 0;
  }

  /** Appends one message; a message that cannot be encoded (it throws) leaves nothing behind. */
  send(msg: BackendMessage): void {
    if (this.closed) return;
    const w = (this.#writer ??= new BufferWriter(this.#nextBytes));
    const before = w.length;
    try {
      writeBackend(w, msg);
    } catch (err) {
      w.rewind(before);
      throw err;
    }
  }

  sendRow(row: RawRow): void {
    if (this.closed) return;
    const w = (this.#writer ??= new BufferWriter(this.#nextBytes));
    const before = w.length;
    try {
      writeDataRow(w, row);
    } catch (err) {
      w.rewind(before);
      throw err;
    }
  }

  sendRaw(bytes: Buffer): void {
    if (this.closed) return;
    (this.#writer ??= new BufferWriter(Math.max(this.#nextBytes, bytes.length))).bytes(bytes);
  }

  /** Flushes when the buffer is large; call after each batch of rows. A promise only when it flushed. */
  maybeFlush(): Promise<void> | undefined {
    return this.buffered >= FLUSH_THRESHOLD ? this.flush() : undefined;
  }

  /** Hands everything buffered to the socket and waits until the socket can take more (or is closed). */
  async flush(): Promise<void> {
    const w = this.#writer;
    this.#writer = null;
    if (w === null || w.length === 0 || this.closed) return;
    this.#nextBytes = Math.max(INITIAL_BYTES, Math.min(w.length + (w.length >> 2), 2 * FLUSH_THRESHOLD));
    if (!this.#socket.write(w.finish())) await this.#drained();
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
