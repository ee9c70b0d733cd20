/**
 * Splits COPY FROM STDIN data (text or CSV format) into whole rows and reads
 * one column of each, so that rows can be routed to shards while their bytes
 * are forwarded unchanged.
 *
 * Data arrives in arbitrary chunks; an incomplete row is kept until the rest
 * arrives, so memory holds at most one row plus one chunk.
 */

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

export interface CopyRowOptions {
  readonly format: 'text' | 'csv';
  /** One-byte delimiter (tab for text, comma for CSV by default). */
  readonly delimiter: string;
  readonly nullString: string;
  readonly quote: string;
  readonly escape: string;
  readonly header: boolean;
  /** 0-based column to read from each row; null reads none. */
  readonly keyColumn: number | null;
}

/** One complete row: its bytes (ending in a newline) and the value of the key column (null for SQL NULL). */
export interface CopyRow {
  readonly bytes: Buffer;
  readonly key: string | null;
}

/** Thrown for data that is not valid COPY input; the session turns it into a 22P04 error. */
export class CopyFormatError extends Error {}

export class CopyRowSplitter {
  readonly #opts: CopyRowOptions;
  readonly #delim: number;
  readonly #quote: number;
  readonly #escape: number;
  #carry: Buffer = Buffer.alloc(0);
  #headerPending: boolean;
  #ended = false;
  #rowNumber = 0;
  /** The header line, once seen (sent ahead of the rows on every shard that opens). */
  header: Buffer | null = null;

  constructor(opts: CopyRowOptions) {
    this.#opts = opts;
    this.#delim = byte(opts.delimiter, 'delimiter');
    this.#quote = byte(opts.quote, 'quote');
    this.#escape = byte(opts.escape, 'escape');
    this.#headerPending = opts.header;
  }

  /** Adds a chunk; returns the rows it completed. */
  push(chunk: Buffer): CopyRow[] {
    if (this.#ended) return [];
    this.#carry = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    return this.#take(false);
  }

  /** No more data: returns the last row even without a final newline. */
  finish(): CopyRow[] {
    if (this.#ended) return [];
    const rows = this.#take(true);
    this.#ended = true;
    return rows;
  }

  #take(final: boolean): CopyRow[] {
    const rows: CopyRow[] = [];
    const buf = this.#carry;
    let start = 0;
    while (start < buf.length && !this.#ended) {
      const end = this.#opts.format === 'csv' ? this.#csvRowEnd(buf, start, final) : this.#textRowEnd(buf, start);
      let stop: number;
      if (end === -1) {
        if (!final) break;
        stop = buf.length;
      } else {
        stop = end + 1;
      }
      let bytes = buf.subarray(start, stop);
      start = stop;
      if (bytes[bytes.length - 1] !== LF) bytes = Buffer.concat([bytes, Buffer.from('\n')]);
      const content = trimEol(bytes);
      // "\." alone on a line ends the data (older clients still send it).
      if (content.length === 2 && content[0] === BACKSLASH && content[1] === DOT) {
        this.#ended = true;
        break;
      }
      this.#rowNumber++;
      if (this.#headerPending) {
        this.#headerPending = false;
        this.header = Buffer.from(bytes);
        continue;
      }
      const key = this.#opts.keyColumn === null ? null : this.#field(content, this.#opts.keyColumn);
      rows.push({ bytes: Buffer.from(bytes), key });
    }
    this.#carry = this.#ended ? Buffer.alloc(0) : buf.subarray(start);
    return rows;
  }

  /** Index of the newline ending the row at `start`, or -1. A backslash escapes the next byte, newline included. */
  #textRowEnd(buf: Buffer, start: number): number {
    for (let i = start; i < buf.length; i++) {
      const b = buf[i];
      if (b === BACKSLASH) i++;
      else if (b === LF) return i;
    }
    return -1;
  }

  /** Index of the newline ending the CSV row at `start` (newlines inside quotes are data), or -1. */
  #csvRowEnd(buf: Buffer, start: number, final: boolean): number {
    let inQuote = false;
    for (let i = start; i < buf.length; i++) {
      const b = buf[i];
      if (inQuote) {
        if (b === this.#escape && this.#escape !== this.#quote) {
          if (i + 1 >= buf.length) break;
          const next = buf[i + 1];
          if (next === this.#quote || next === this.#escape) i++;
        } else if (b === this.#quote) {
          // A doubled quote is a quote character; whether it is doubled may depend on the next chunk.
          if (i + 1 >= buf.length && !final) return -1;
          if (this.#escape === this.#quote && buf[i + 1] === this.#quote) i++;
          else inQuote = false;
        }
      } else if (b === this.#quote) {
        inQuote = true;
      } else if (b === LF) {
        return i;
      }
    }
    if (inQuote && final) throw new CopyFormatError(`unterminated CSV quoted field in row ${this.#rowNumber + 1}`);
    return -1;
  }

  #field(line: Buffer, column: number): string | null {
    return this.#opts.format === 'csv' ? this.#csvField(line, column) : this.#textField(line, column);
  }

  #textField(line: Buffer, column: number): string | null {
    let index = 0;
    let from = 0;
    for (let i = 0; i <= line.length; i++) {
      if (i < line.length && line[i] === BACKSLASH) {
        i++;
        continue;
      }
      if (i === line.length || line[i] === this.#delim) {
        if (index === column) {
          const raw = line.subarray(from, i).toString('utf8');
          return raw === this.#opts.nullString ? null : unescapeText(raw);
        }
        index++;
        from = i + 1;
      }
    }
    throw new CopyFormatError(`missing data for column ${column + 1} in row ${this.#rowNumber}`);
  }

  #csvField(line: Buffer, column: number): string | null {
    let index = 0;
    let value: number[] = [];
    let quoted = false;
    let inQuote = false;
    for (let i = 0; i <= line.length; i++) {
      const b = line[i];
      if (i < line.length && inQuote) {
        if (b === this.#escape && this.#escape !== this.#quote && (line[i + 1] === this.#quote || line[i + 1] === this.#escape)) {
          value.push(line[++i]!);
        } else if (b === this.#quote) {
          if (this.#escape === this.#quote && line[i + 1] === this.#quote) value.push(line[++i]!);
          else inQuote = false;
        } else {
          value.push(b!);
        }
        continue;
      }
      if (i < line.length && b === this.#quote) {
        inQuote = true;
        quoted = true;
        continue;
      }
      if (i === line.length || b === this.#delim) {
        if (index === column) {
          const text = Buffer.from(value).toString('utf8');
          return !quoted && text === this.#opts.nullString ? null : text;
        }
        index++;
        value = [];
        quoted = false;
        continue;
      }
      value.push(b!);
    }
    throw new CopyFormatError(`missing data for column ${column + 1} in row ${this.#rowNumber}`);
  }
}

function byte(s: string, what: string): number {
  const b = Buffer.from(s, 'utf8');
  if (b.length !== 1) throw new CopyFormatError(`COPY ${what} must be a single one-byte character`);
  return b[0]!;
}

function trimEol(bytes: Buffer): Buffer {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === LF) end--;
  if (end > 0 && bytes[end - 1] === CR) end--;
  return bytes.subarray(0, end);
}

const TEXT_ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** Decodes COPY text-format backslash escapes (\n, \t, \\, octal \NNN, hex \xHH, any other character as itself). */
export function unescapeText(raw: string): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch !== '\\' || i + 1 >= raw.length) {
      out += ch;
      continue;
    }
    const next = raw[++i]!;
    if (TEXT_ESCAPES[next] !== undefined) {
      out += TEXT_ESCAPES[next];
    } else if (/[0-7]/.test(next)) {
      const m = /^[0-7]{1,3}/.exec(raw.slice(i))![0];
      out += String.fromCharCode(parseInt(m, 8));
      i += m.length - 1;
    } else if (next === 'x' && /^[0-9a-fA-F]/.test(raw.slice(i + 1))) {
      const m = /^[0-9a-fA-F]{1,2}/.exec(raw.slice(i + 1))![0];
      out += String.fromCharCode(parseInt(m, 16));
      i += m.length;
    } else {
      out += next;
    }
  }
  return out;
}
