import type { ShardName } from '../config/names.js';
import type { CopyInSink } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { PgError, type ErrorFields } from '../errors/pg-error.js';
import type { FrontendMessage } from '../protocol/index.js';

export interface NetworkCopySinkOptions {
  readonly shard: ShardName;
  /** Queues messages on the socket without waiting for a reply. */
  readonly send: (messages: readonly FrontendMessage[]) => void;
  /** Resolves when the socket can take more. */
  readonly drained: () => Promise<void>;
  /** Sends messages and reads to ReadyForQuery. */
  readonly roundTrip: (messages: readonly FrontendMessage[]) => Promise<{ tag: string; error: ErrorFields | null }>;
  /** Called once when the copy ended or failed: the connection is free again. */
  readonly onDone: () => void;
}

/**
 * COPY FROM STDIN streamed to a networked shard, already in copy-in mode:
 * each write is one CopyData and waits for the socket to drain, so memory
 * stays bounded by the socket's buffer. Errors in the data are reported by end().
 */
export class NetworkCopySink implements CopyInSink {
  readonly #o: NetworkCopySinkOptions;
  #finished = false;

  constructor(opts: NetworkCopySinkOptions) {
    this.#o = opts;
  }

  async write(data: Buffer): Promise<void> {
    this.#assertOpen();
    this.#o.send([{ type: 'CopyData', data }]);
    await this.#o.drained();
  }

  async end(): Promise<string> {
    const { tag, error } = await this.#finish({ type: 'CopyDone' });
    if (error !== null) throw new PgError(error, this.#o.shard);
    return tag;
  }

  /** Sends CopyFail; the shard's resulting error (57014) is expected and swallowed. */
  async fail(message: string): Promise<void> {
    if (this.#finished) return;
    await this.#finish({ type: 'CopyFail', message });
  }

  async #finish(last: FrontendMessage): Promise<{ tag: string; error: ErrorFields | null }> {
    this.#assertOpen();
    this.#finished = true;
    try {
      return await this.#o.roundTrip([last]);
    } finally {
      this.#o.onDone();
    }
  }

  #assertOpen(): void {
    if (this.#finished) throw new PgError(sgError('internal', { reason: 'COPY already ended' }).fields, this.#o.shard);
  }
}
