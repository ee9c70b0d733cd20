import type { ShardName } from '../config/names.js';
import type { ErrorFields, PgError } from '../errors/pg-error.js';
import type { FieldDescription, FormatCode, RawRow, TxStatus } from '../protocol/fields.js';

/**
 * One statement for a shard. Parameters are passed through as the client sent
 * them (text or binary per `paramFormats`); `paramTypes` are OIDs, 0 meaning
 * "let the server infer".
 */
export interface ShardQuery {
  readonly sql: string;
  readonly params?: readonly (Buffer | string | null)[];
  readonly paramFormats?: readonly FormatCode[];
  readonly paramTypes?: readonly number[];
  /** Result column formats, as in Bind (F): empty = all text, one = all columns, else per column. */
  readonly resultFormats?: readonly FormatCode[];
  /** Rows per batch; the producer holds at most about this many rows before the consumer takes them. */
  readonly batchSize?: number;
  /** false: parse as the unnamed statement, never kept in the connection's statement cache (for text used once). Default true. */
  readonly cache?: boolean;
  /**
   * true: the caller forwards the result to a client unchanged, so its rows
   * may come as 'frames' (the shard's DataRow messages as bytes, never
   * decoded) instead of 'rows', and its RowDescription with its bytes.
   * Everything else (notices, the tag, errors, transaction status) is as without it.
   */
  readonly relay?: boolean;
}

/**
 * DataRow (B) messages exactly as the shard sent them, type byte and length
 * word included, in order: `frames` are runs of whole messages, `rows` of them
 * in all. Only for a query with `relay`; the bytes are never decoded, so they
 * reach the client as the shard wrote them.
 */
export interface RowFrames {
  readonly kind: 'frames';
  readonly frames: readonly Buffer[];
  readonly rows: number;
}

/**
 * The result's columns. `frame`: the RowDescription (B) message as the shard
 * sent it (type byte and length word included), for a query with `relay`,
 * to be forwarded instead of encoding `fields` again.
 */
export interface FieldsEvent {
  readonly kind: 'fields';
  readonly fields: readonly FieldDescription[];
  readonly frame?: Buffer;
}

/** What a shard answers while running one statement, in order. */
export type ShardEvent =
  | FieldsEvent
  | { readonly kind: 'rows'; readonly rows: readonly RawRow[] }
  | RowFrames
  | { readonly kind: 'notice'; readonly fields: ErrorFields }
  | { readonly kind: 'complete'; readonly tag: string };

/** Parameter and result description of a statement (Describe (F) on a shard). */
export interface StatementDescription {
  readonly paramTypes: readonly number[];
  /** null when the statement returns no rows (NoData). */
  readonly fields: readonly FieldDescription[] | null;
}

/** Receives COPY FROM STDIN data for one shard. */
export interface CopyInSink {
  /** Sends raw COPY data (whole rows, already in the statement's format). Resolves when the shard can take more. */
  write(data: Buffer): Promise<void>;
  /** Ends the copy; resolves with the command tag (`COPY n`). */
  end(): Promise<string>;
  /** Aborts the copy with CopyFail (F); the shard raises an error, which this swallows. */
  fail(message: string): Promise<void>;
}

/**
 * What became of statements queued with `ShardCursor.prelude`: `sent` once
 * they went to the shard (with the operation they precede), `failed` when one
 * of them failed or the connection broke before they all completed. `failed`
 * means the operation they preceded did not run.
 */
export type PreludeEvent = { readonly kind: 'sent' } | { readonly kind: 'failed'; readonly error: PgError };

/**
 * A backend connection to one shard, held by one session for the length of a
 * transaction or of one autocommit statement. Declared here, implemented in
 * `backend/` for networked PostgreSQL and for embedded PGlite alike.
 *
 * Errors from the shard are thrown as `PgError` with every field the shard
 * sent and the shard's name.
 */
/** How copyOut hands out the shard's CopyData. */
export interface CopyOutOptions {
  /** Join payloads into Buffers of about this many bytes (0 or absent: one payload per Buffer, as the shard sent them). */
  readonly batchBytes?: number;
}

export interface ShardCursor {
  readonly shard: ShardName;
  /** Transaction status after the last completed statement. */
  readonly txStatus: TxStatus;
  /**
   * Runs one statement and streams what the shard answers. Breaking out of the
   * iteration early is allowed: the rest of the result is discarded (or the
   * statement cancelled) and the connection stays usable.
   */
  query(q: ShardQuery): AsyncIterable<ShardEvent>;
  /** Runs statements without parameters (simple query) and returns the last command tag. */
  exec(sql: string): Promise<string>;
  /** Runs a statement and collects all rows as text (for ShardGate's own small catalog and control queries). */
  rows(sql: string, params?: readonly (string | null)[]): Promise<(string | null)[][]>;
  describe(sql: string, paramTypes?: readonly number[]): Promise<StatementDescription>;
  copyIn(sql: string): Promise<CopyInSink>;
  /**
   * Runs COPY … TO STDOUT and yields its CopyData payloads, one row each; with
   * `batchBytes`, many payloads joined per Buffer (up to about that many bytes,
   * always whole payloads). The final value is the command tag.
   */
  copyOut(sql: string, opts?: CopyOutOptions): AsyncGenerator<Buffer, string>;
  /** Asks the shard to cancel the statement running on this connection, if any. */
  cancel(): Promise<void>;
  /**
   * Queues `statements` (each exactly one SQL command without parameters) to
   * run ahead of the next operation (query, exec, rows, describe, copyIn,
   * copyOut), sent in the same write and answered before it: an error in one
   * of them skips the rest and the operation, which then throws that error.
   * Their results are never seen by the caller. `listener` hears, synchronously,
   * when they are sent and whether they failed. A second call replaces
   * statements not sent yet (an empty list withdraws them); release() drops
   * them. Returns false when this cursor cannot queue statements: the caller
   * must run them itself. Optional: absent means false.
   */
  prelude?(statements: readonly string[], listener: (event: PreludeEvent) => void): boolean;
  /**
   * Session settings currently applied on this connection (lower-cased name →
   * value as SQL text). The session layer compares them with its own and sends
   * SET/RESET for the difference.
   */
  readonly settings: Map<string, string>;
  /** Returns the connection to its pool; `broken` closes it instead (protocol state unknown). */
  release(broken?: boolean): void;
}

/** Hands out backend connections per shard. */
export interface ShardConnector {
  readonly shards: readonly ShardName[];
  /** Waits up to `timeoutMs` for a connection; throws `shardBusy` (40P01) after that. */
  acquire(shard: ShardName, timeoutMs: number): Promise<ShardCursor>;
  /** Pool figures per shard, for metrics and tests. */
  stats(): ReadonlyMap<ShardName, { readonly inUse: number; readonly idle: number; readonly waiting: number }>;
  close(): Promise<void>;
}
