import { sgError } from '../errors/catalogue.js';
import type { PgError } from '../errors/pg-error.js';

/**
 * Reads the body of one message with bounds checks: every read past the end,
 * missing NUL terminator or leftover byte becomes a protocol violation
 * (08P01) naming the message, never a RangeError or a silently short value.
 */
export class BodyReader {
  readonly #buf: Buffer;
  readonly #what: string;
  #pos = 0;

  constructor(body: Buffer, what: string) {
    this.#buf = body;
    this.#what = what;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  /** A protocol-violation error naming this message. */
  fail(reason: string): PgError {
    return sgError('protocolViolation', { reason: `invalid ${this.#what} message: ${reason}` });
  }

  #need(n: number): void {
    if (this.#buf.length - this.#pos < n) throw this.fail(`expected ${n} more bytes at offset ${this.#pos}, body has ${this.#buf.length}`);
  }

  byte(): number {
    this.#need(1);
    return this.#buf[this.#pos++]!;
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  /** Int16 read as PostgreSQL reads counts: unsigned. */
  uint16(): number {
    this.#need(2);
    const v = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** Int32 holding an OID (unsigned). */
  uint32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** NUL-terminated UTF-8 string. */
  cstring(): string {
    const end = this.#buf.indexOf(0, this.#pos);
    if (end === -1) throw this.fail(`string at offset ${this.#pos} has no NUL terminator`);
    const s = this.#buf.toString('utf8', this.#pos, end);
    this.#pos = end + 1;
    return s;
  }

  /** `n` raw bytes; the result aliases the body. */
  bytes(n: number): Buffer {
    this.#need(n);
    const b = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return b;
  }

  /** Everything not yet read; aliases the body. */
  rest(): Buffer {
    const b = this.#buf.subarray(this.#pos);
    this.#pos = this.#buf.length;
    return b;
  }

  /** A format code (Int16): only 0 (text) and 1 (binary) exist. */
  format(): 0 | 1 {
    const f = this.int16();
    if (f !== 0 && f !== 1) throw this.fail(`unknown format code ${f}`);
    return f;
  }

  /** Asserts that the whole body was consumed, as PostgreSQL's pq_getmsgend does. */
  end(): void {
    if (this.#pos !== this.#buf.length) throw this.fail(`${this.#buf.length - this.#pos} unexpected bytes after the last field`);
  }
}
