import { sgError } from '../errors/catalogue.js';

/**
 * Appends protocol values (big-endian integers, NUL-terminated strings, raw
 * bytes) to one growing buffer, and frames messages in place: the length word
 * is reserved when a message begins and patched when it ends, so a message —
 * or a whole batch of them — costs one allocation when the initial size is
 * right, and amortised doubling otherwise.
 */
export class BufferWriter {
  #buf: Buffer;
  #pos = 0;

  /** `initialSize` lets a caller that knows the exact size allocate exactly once. */
  constructor(initialSize = 256) {
    this.#buf = Buffer.allocUnsafe(Math.max(initialSize, 16));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#pos;
  }

  #ensure(extra: number): void {
    const needed = this.#pos + extra;
    if (needed <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }

  /** Byte1 / Int8. */
  byte(value: number): this {
    this.#ensure(1);
    this.#buf[this.#pos++] = value & 0xff;
    return this;
  }

  /** Int16, signed (type sizes, attribute numbers). */
  int16(value: number): this {
    this.#ensure(2);
    this.#buf.writeInt16BE(value, this.#pos);
    this.#pos += 2;
    return this;
  }

  /**
   * Int16 used as a count (columns, parameters, format codes). PostgreSQL
   * reads these as unsigned 16-bit, so 65535 is the most any message can carry.
   */
  count16(value: number, what: string): this {
    if (value > 0xffff) throw sgError('protocolViolation', { reason: `too many ${what} (${value}); a message carries at most 65535` });
    this.#ensure(2);
    this.#buf.writeUInt16BE(value, this.#pos);
    this.#pos += 2;
    return this;
  }

  /**
   * Int32. Accepts any value representable in 32 bits, signed or unsigned
   * (process ids and secret keys are opaque 32-bit words; OIDs are unsigned).
   */
  int32(value: number): this {
    this.#ensure(4);
    // Byte stores instead of writeInt32BE: no range check (any 32-bit pattern is valid) and cheaper per call.
    const buf = this.#buf;
    const pos = this.#pos;
    buf[pos] = value >>> 24;
    buf[pos + 1] = value >>> 16;
    buf[pos + 2] = value >>> 8;
    buf[pos + 3] = value;
    this.#pos = pos + 4;
    return this;
  }

  /** Raw bytes, no length prefix. */
  bytes(value: Buffer): this {
    const n = value.length;
    this.#ensure(n);
    const buf = this.#buf;
    const pos = this.#pos;
    // Short values (typical row fields) are cheaper to copy in JS than through a native call.
    if (n <= 16) for (let i = 0; i < n; i++) buf[pos + i] = value[i]!;
    else buf.set(value, pos);
    this.#pos = pos + n;
    return this;
  }

  /**
   * String: UTF-8 bytes followed by one NUL. A string containing NUL cannot be
   * framed (the receiver would stop at it), so it is refused with 22021 as
   * PostgreSQL refuses a 0x00 byte in text.
   */
  cstring(value: string): this {
    if (value.includes('\0')) throw sgError('invalidNulByte');
    // Three bytes per UTF-16 unit bound the UTF-8 length; skip counting when that fits.
    const bound = value.length * 3 + 1;
    this.#ensure(bound <= this.#buf.length - this.#pos ? bound : Buffer.byteLength(value, 'utf8') + 1);
    this.#pos += this.#buf.write(value, this.#pos, 'utf8');
    this.#buf[this.#pos++] = 0;
    return this;
  }

  /**
   * Starts a typed message: Byte1(code) then an Int32 length placeholder.
   * Returns the offset to pass to `endMessage`.
   */
  beginMessage(code: number): number {
    this.#ensure(5);
    const start = this.#pos + 1;
    this.#buf[this.#pos] = code;
    this.#pos += 5;
    return start;
  }

  /** Appends a whole message whose body is empty: Byte1 code, Int32 4. */
  emptyMessage(code: number): this {
    return this.endMessage(this.beginMessage(code));
  }

  /** Starts an untyped (startup-phase) message: only the Int32 length placeholder. */
  beginUntyped(): number {
    this.#ensure(4);
    const start = this.#pos;
    this.#pos += 4;
    return start;
  }

  /** Patches the length word at `start`: it counts itself and the body, not the type byte. */
  endMessage(start: number): this {
    this.#buf.writeInt32BE(this.#pos - start, start);
    return this;
  }

  /** Drops what was written after `length` bytes (a message that failed half-way). */
  rewind(length: number): void {
    if (length < this.#pos) this.#pos = Math.max(0, length);
  }

  /**
   * The bytes written. The result aliases the writer's storage: write nothing
   * more to this writer once it has been taken.
   */
  finish(): Buffer {
    // An exactly sized writer hands over its buffer without creating a view.
    return this.#pos === this.#buf.length ? this.#buf : this.#buf.subarray(0, this.#pos);
  }
}
