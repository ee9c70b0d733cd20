import { sgError } from '../errors/catalogue.js';
import type { MessageRun, RawMessage } from './messages.js';

/**
 * Largest length word PostgreSQL itself accepts (PQ_LARGE_MESSAGE_LIMIT:
 * MaxAllocSize - 1 = 1 GiB - 2; we allow 1 GiB - 1). The length word counts
 * itself and the body, not the type byte.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 0x3fff_ffff;

/**
 * Largest startup-phase packet PostgreSQL accepts (MAX_STARTUP_PACKET_LENGTH),
 * length word included. The smallest is 8: the length word and a 4-byte code.
 */
export const MAX_STARTUP_PACKET_SIZE = 10_000;
const MIN_STARTUP_PACKET_SIZE = 8;

/** A typed message header is Byte1 code + Int32 length. */
const HEADER_SIZE = 5;
const EMPTY = Buffer.alloc(0);
/** Type byte → one-character string, built once. */
const CODES: readonly string[] = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));

/** Options for {@link MessageReader}. */
export interface MessageReaderOptions {
  /** Largest accepted length word, in bytes (defaults to {@link DEFAULT_MAX_MESSAGE_SIZE}). */
  readonly maxMessageSize?: number;
}

/**
 * Splits a byte stream into messages. Chunks are kept as a list and each
 * message is copied at most once (only when it straddles chunks), so the cost
 * is linear in the bytes received however the stream is cut.
 *
 * A length word below 4 or above the limit throws (08P01) as soon as the
 * five header bytes are buffered, before any of the body is awaited. After a
 * throw the stream is unusable: framing is lost.
 *
 * Bodies returned may alias the pushed chunks (zero-copy): a caller that
 * reuses or mutates a chunk after pushing it must copy first. Sockets never
 * reuse chunks.
 */
export class MessageReader {
  readonly #max: number;
  #chunks: Buffer[] = [];
  /** Index of the first live chunk in `#chunks`. */
  #head = 0;
  /** Read position inside the first live chunk. */
  #offset = 0;
  #buffered = 0;

  constructor(opts: MessageReaderOptions = {}) {
    this.#max = opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  }

  /** Bytes received and not yet returned as messages. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Appends bytes received from the peer. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * The next startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest,
   * CancelRequest), which has no type byte: Int32 length then the body.
   * Returns the body (bytes after the length word, for `decodeStartup`), or
   * null until the whole packet has arrived.
   */
  nextStartup(): Buffer | null {
    if (this.#buffered < 4) return null;
    const len = this.#int32At(0);
    if (len < MIN_STARTUP_PACKET_SIZE) throw sgError('protocolViolation', { reason: `invalid length of startup packet (${len})` });
    const limit = Math.min(this.#max, MAX_STARTUP_PACKET_SIZE);
    if (len > limit) throw sgError('messageTooLarge', { size: len, limit });
    if (this.#buffered < len) return null;
    this.#skip(4);
    return this.#take(len - 4);
  }

  /** The next typed message, or null until a whole one has arrived. */
  next(): RawMessage | null {
    if (this.#buffered < HEADER_SIZE) return null;
    const first = this.#chunks[this.#head]!;
    const at = this.#offset;
    if (at + HEADER_SIZE <= first.length) {
      // Fast path: header in the first chunk (nearly always, as sockets deliver 64 KiB reads).
      const len = ((first[at + 1]! << 24) | (first[at + 2]! << 16) | (first[at + 3]! << 8) | first[at + 4]!) | 0;
      const end = at + 1 + len;
      if (len >= 4 && len <= this.#max && end <= first.length) {
        const body = first.subarray(at + HEADER_SIZE, end);
        this.#buffered -= len + 1;
        if (end === first.length) this.#dropHead();
        else this.#offset = end;
        return { code: CODES[first[at]!]!, body };
      }
    }
    const code = this.#byteAt(0);
    const len = this.#int32At(1);
    if (len < 4) throw sgError('protocolViolation', { reason: `invalid message length ${len} for message type ${JSON.stringify(String.fromCharCode(code))}` });
    if (len > this.#max) throw sgError('messageTooLarge', { size: len, limit: this.#max });
    if (this.#buffered < len + 1) return null;
    this.#skip(HEADER_SIZE);
    return { code: CODES[code]!, body: this.#take(len - 4) };
  }

  /**
   * The longest run of whole messages of type `code` (a byte value) at the
   * front of the stream that lies in the first buffered chunk, as one view
   * of their bytes, 5-byte headers included: what a relay forwards as it is.
   * The run stops before a message of another type, one that is incomplete or
   * crosses into the next chunk, and before it would exceed `maxBytes` (a
   * first message longer than that is still returned alone). Null when no
   * message qualifies: read the next one with `next()`, which also throws on
   * a bad length word this method stops at. Only the headers are read.
   */
  nextRun(code: number, maxBytes: number): MessageRun | null {
    if (this.#buffered < HEADER_SIZE) return null;
    const chunk = this.#chunks[this.#head]!;
    const start = this.#offset;
    const limit = chunk.length;
    let at = start;
    let count = 0;
    while (at + HEADER_SIZE <= limit && chunk[at] === code) {
      const len = ((chunk[at + 1]! << 24) | (chunk[at + 2]! << 16) | (chunk[at + 3]! << 8) | chunk[at + 4]!) | 0;
      const end = at + 1 + len;
      if (len < 4 || len > this.#max || end > limit || (count > 0 && end - start > maxBytes)) break;
      at = end;
      count++;
    }
    if (count === 0) return null;
    this.#buffered -= at - start;
    if (at === limit) this.#dropHead();
    else this.#offset = at;
    return { bytes: chunk.subarray(start, at), count };
  }

  #byteAt(index: number): number {
    let i = index + this.#offset;
    for (let c = this.#head; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c]!;
      if (i < chunk.length) return chunk[i]!;
      i -= chunk.length;
    }
    throw new RangeError('MessageReader: read past buffered bytes');
  }

  #int32At(index: number): number {
    const first = this.#chunks[this.#head]!;
    const at = this.#offset + index;
    if (at + 4 <= first.length) return first.readInt32BE(at);
    return ((this.#byteAt(index) << 24) | (this.#byteAt(index + 1) << 16) | (this.#byteAt(index + 2) << 8) | this.#byteAt(index + 3)) | 0;
  }

  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const chunk = this.#chunks[this.#head]!;
      const avail = chunk.length - this.#offset;
      if (n < avail) {
        this.#offset += n;
        return;
      }
      n -= avail;
      this.#dropHead();
    }
  }

  /** Removes `n` bytes from the front: a view when they lie in one chunk, else one copy. */
  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[this.#head]!;
    if (this.#offset + n <= first.length) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const chunk = this.#chunks[this.#head]!;
      const count = Math.min(n - written, chunk.length - this.#offset);
      chunk.copy(out, written, this.#offset, this.#offset + count);
      written += count;
      this.#skip(count);
    }
    return out;
  }

  #dropHead(): void {
    // Release the consumed chunk now rather than at the next compaction.
    this.#chunks[this.#head] = EMPTY;
    this.#head++;
    this.#offset = 0;
    // Compact occasionally so the list neither grows forever nor is shifted per message.
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
