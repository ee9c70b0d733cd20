import type { FormatCode, RawRow, TxStatus } from '../protocol/fields.js';
import type { ErrorFields } from '../errors/pg-error.js';
import type { CopyInSink, FieldsEvent, RowFrames, StatementDescription } from './shard-cursor.js';

/**
 * The contract between the engine and whoever speaks to clients: the wire
 * server (`server/`) and the library (`library.ts`) both drive a session
 * through this interface only.
 */

/** One client statement, from a simple Query (no params) or an extended-protocol portal. */
export interface ClientStatement {
  /** Exactly one statement's text. */
  readonly sql: string;
  readonly params?: readonly (Buffer | null)[];
  readonly paramFormats?: readonly FormatCode[];
  /** Parameter type OIDs from Parse (0 or missing = unspecified). */
  readonly paramTypes?: readonly number[];
  readonly resultFormats?: readonly FormatCode[];
  /**
   * true: the caller sends the result to a client as protocol messages, so
   * a statement whose result passes through from one shard unchanged may
   * yield 'frames' (the shard's DataRow messages as bytes) instead of 'rows',
   * and 'fields' with the shard's RowDescription bytes. Set by the wire server.
   */
  readonly relay?: boolean;
}

/** A named statement of the extended protocol (Parse), as pg_prepared_statements lists it. */
export interface ProtocolStatementInfo {
  readonly name: string;
  readonly sql: string;
  /** Types as Parse gave them (0: PostgreSQL infers it). */
  readonly paramTypes: readonly number[];
  readonly prepareTime: Date;
  /** Binds so far (PostgreSQL picks a plan at each). */
  readonly binds: number;
}

/** What executing a statement produces, in order. Errors are thrown as `PgError`. */
export type ExecEvent =
  | FieldsEvent
  | { readonly kind: 'rows'; readonly rows: readonly RawRow[] }
  /** Only for a statement with `relay`: rows as the shard's DataRow messages, to be sent as they are. */
  | RowFrames
  | { readonly kind: 'notice'; readonly fields: ErrorFields }
  | { readonly kind: 'complete'; readonly tag: string }
  /** The query string was empty. */
  | { readonly kind: 'empty' }
  /** A reported setting changed (client_encoding, DateStyle, TimeZone, …): send ParameterStatus. */
  | { readonly kind: 'parameterStatus'; readonly name: string; readonly value: string }
  /**
   * COPY FROM STDIN started: the caller feeds the client's data to `sink`
   * (write/end/fail); the iteration continues with 'complete' once `end()`
   * resolved, or throws after `fail()`.
   */
  | { readonly kind: 'copyIn'; readonly format: FormatCode; readonly columnFormats: readonly FormatCode[]; readonly sink: CopyInSink }
  | { readonly kind: 'copyOut'; readonly format: FormatCode; readonly columnFormats: readonly FormatCode[] }
  | { readonly kind: 'copyData'; readonly data: Buffer };

/** A client session: settings, prepared-statement independent state, and the current transaction. */
export interface EngineSession {
  /** I (idle), T (in a transaction block), E (in a failed transaction block). */
  readonly txStatus: TxStatus;
  /** Settings to report in ParameterStatus at startup. */
  initialParameters(): Promise<ReadonlyMap<string, string>>;
  /**
   * Executes one statement. Consume the iterable to the end (or break: the
   * rest is discarded). In autocommit mode the statement commits when the
   * iteration ends successfully.
   */
  execute(stmt: ClientStatement): AsyncIterable<ExecEvent>;
  /** Parameter types and result columns of a statement, without executing it. */
  describe(sql: string, paramTypes?: readonly number[]): Promise<StatementDescription>;
  /**
   * Several statements from one simple Query run as one implicit transaction
   * (as PostgreSQL does) unless they contain transaction control themselves.
   * Call `beginImplicit` before the first and `endImplicit` after the last
   * (`ok` false after an error: everything since beginImplicit rolls back).
   */
  beginImplicit(): void;
  endImplicit(ok: boolean): Promise<void>;
  /** Cancels the shard statements currently running for this session. */
  cancel(): Promise<void>;
  /** Where the session finds the client's protocol-level prepared statements (pg_prepared_statements); none if never called. */
  useProtocolStatements?(list: () => readonly ProtocolStatementInfo[]): void;
  /** Rolls back any open transaction everywhere and returns all backend connections. */
  close(): Promise<void>;
}
