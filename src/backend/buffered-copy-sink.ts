import type { ShardName } from '../config/names.js';
import type { CopyInSink } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { PgError, type ErrorFields } from '../errors/pg-error.js';
import type { FrontendMessage } from '../protocol/index.js';
import type { TxStatus } from '../protocol/fields.js';

/** Bytes gathered before one COPY statement is run on the shard. */
export const COPY_CHUNK_BYTES = 4 * 1024 * 1024;
/** Most bytes held when the data cannot be cut into chunks (binary format, HEADER). */
export const COPY_MAX_UNCHUNKED_BYTES = 256 * 1024 * 1024;

/** Signature that opens COPY's binary format: `PGCOPY\n\377\r\n\0`. */
const BINARY_SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);

export interface BufferedCopySinkOptions {
  readonly sql: string;
  readonly shard: ShardName;
  /** Sends messages as one request and reads to ReadyForQuery. */
  readonly roundTrip: (messages: readonly FrontendMessage[]) => Promise<{ tag: string; error: ErrorFields | null }>;
  readonly txStatus: () => TxStatus;
  /** Called once when the sink ended or failed: the connection is free again. */
  readonly onDone: () => void;
}

/**
 * COPY FROM STDIN for a shard that runs each request to completion (PGlite):
 * a COPY cannot wait for more data between requests there (PGlite stops when
 * its input ends mid-COPY), so each request carries Query, the data and
 * CopyDone together.
 *
 * Memory stays bounded: text and CSV data is sent in chunks of about
 * COPY_CHUNK_BYTES as separate COPY statements (writes are whole rows, so a
 * chunk boundary never cuts one). Started outside a transaction block, the
 * chunks run inside BEGIN … COMMIT, so the copy stays all-or-nothing. Binary
 * data and HEADER copies cannot be cut (the header or signature opens only the
 * first chunk) and are buffered whole, up to COPY_MAX_UNCHUNKED_BYTES (beyond
 * that: 0A000).
 *
 * Errors in the data are reported when the chunk holding them runs: by a
 * later write or by end().
 */
export class BufferedCopySink implements CopyInSink {
  readonly #o: BufferedCopySinkOptions;
  readonly #headerOption: boolean;
  #chunk: Buffer[] = [];
  #bytes = 0;
  #rows = 0;
  #chunkable: boolean | undefined;
  #began = false;
  #finished = false;

  constructor(opts: BufferedCopySinkOptions) {
    this.#o = opts;
    this.#headerOption = /\bheader\b/i.test(opts.sql);
  }

  async write(data: Buffer): Promise<void> {
    this.#assertOpen();
    if (data.length === 0) return;
    this.#chunkable ??= !this.#headerOption && !data.subarray(0, BINARY_SIGNATURE.length).equals(BINARY_SIGNATURE);
    this.#chunk.push(data);
    this.#bytes += data.length;
    if (this.#chunkable && this.#bytes >= COPY_CHUNK_BYTES) {
      await this.#guard(async () => {
        if (!this.#began && this.#o.txStatus() === 'I') {
          await this.#run([{ type: 'Query', sql: 'BEGIN' }]);
          this.#began = true;
        }
        await this.#flush();
      });
    } else if (!this.#chunkable && this.#bytes > COPY_MAX_UNCHUNKED_BYTES) {
      await this.fail('too much data');
      throw new PgError(
        sgError('featureNotSupported', {
          feature: `COPY FROM STDIN of more than ${COPY_MAX_UNCHUNKED_BYTES} bytes in binary format or with HEADER to an embedded shard`,
          hint: 'Use text or CSV format without HEADER.',
        }).fields,
        this.#o.shard,
      );
    }
  }

  async end(): Promise<string> {
    this.#assertOpen();
    return this.#guard(async () => {
      await this.#flush(true);
      if (this.#began) await this.#run([{ type: 'Query', sql: 'COMMIT' }]);
      this.#close();
      return `COPY ${this.#rows}`;
    });
  }

  async fail(_message?: string): Promise<void> {
    if (this.#finished) return;
    this.#chunk = [];
    try {
      // Nothing of this copy may stay: roll back the chunks already sent.
      if (this.#began) await this.#o.roundTrip([{ type: 'Query', sql: 'ROLLBACK' }]);
    } finally {
      this.#close();
    }
  }

  /** Runs one COPY statement with the data gathered so far. */
  async #flush(last = false): Promise<void> {
    if (this.#bytes === 0 && !(last && this.#rows === 0 && !this.#began)) return;
    const data = Buffer.concat(this.#chunk);
    this.#chunk = [];
    this.#bytes = 0;
    const tag = await this.#run([{ type: 'Query', sql: this.#o.sql }, { type: 'CopyData', data }, { type: 'CopyDone' }]);
    const m = /^COPY (\d+)$/.exec(tag);
    if (m !== null) this.#rows += Number(m[1]);
  }

  async #run(messages: readonly FrontendMessage[]): Promise<string> {
    const { tag, error } = await this.#o.roundTrip(messages);
    if (error !== null) throw new PgError(error, this.#o.shard);
    return tag;
  }

  /** On an error, ends the copy (rolling back what it began) before rethrowing. */
  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      await this.fail().catch(() => undefined);
      throw err;
    }
  }

  #assertOpen(): void {
    if (this.#finished) throw new PgError(sgError('internal', { reason: 'COPY already ended' }).fields, this.#o.shard);
  }

  #close(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#o.onDone();
  }
}
