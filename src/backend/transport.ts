import type { FrontendMessage, MessageRun, RawMessage } from '../protocol/index.js';

/**
 * How a backend connection exchanges protocol messages with its shard. The
 * connection core (`BackendConnection`) speaks protocol v3 through this and
 * nothing else, so networked PostgreSQL and embedded PGlite share every line
 * of statement handling.
 *
 * - `network`: a socket; replies flow as the server produces them, and the
 *   transport pauses reading while too many unread bytes are buffered.
 * - `embedded`: request/response; nothing runs until a reply is awaited, then
 *   everything sent so far runs at once and its whole reply is returned.
 */
export interface Transport {
  readonly kind: 'network' | 'embedded';
  /** False once closed or once the peer went away. */
  readonly alive: boolean;
  /** Bytes received from the shard and not read yet (what a slow consumer makes us hold). */
  readonly buffered: number;
  /** Queues messages for the shard (a socket writes them at once). */
  send(messages: readonly FrontendMessage[]): void;
  /** Resolves when the transport can take more data (socket drained). */
  drained(): Promise<void>;
  /** The next message already received, or null; never waits. */
  tryRead(): RawMessage | null;
  /**
   * Whole messages of type `code` already received and lying together in one
   * received chunk, as their bytes (see MessageReader.nextRun); null when the
   * next message is not one, or not at hand in one piece (read it with
   * tryRead/read). Never waits.
   */
  tryReadRun(code: number, maxBytes: number): MessageRun | null;
  /** The next message; rejects with a PgError (08006) once the connection is gone and nothing is left to read. */
  read(): Promise<RawMessage>;
  /** Asks the shard to cancel what runs on this connection; resolves once the request was delivered. */
  cancel(): Promise<void>;
  /** Ends the connection politely (Terminate); never rejects. */
  close(): Promise<void>;
  /** Called once when the connection dies by itself (not after `close()`). */
  onDeath(listener: () => void): void;
}
