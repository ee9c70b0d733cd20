import type { ErrorFields } from '../errors/pg-error.js';
import type { FieldDescription, FormatCode, TxStatus } from './fields.js';

/**
 * Every message of protocol v3 that ShardGate sends or receives, as plain
 * data. (F) = sent by the frontend (client), (B) = sent by the backend
 * (server), as in the PostgreSQL documentation. The codec in this folder turns
 * these into bytes and back; it does no I/O.
 */

/** Messages a client may send before the startup exchange ends (no type byte on the wire). */
export type StartupPacket =
  | { readonly type: 'StartupMessage'; readonly major: number; readonly minor: number; readonly parameters: Readonly<Record<string, string>> }
  | { readonly type: 'SSLRequest' }
  | { readonly type: 'GSSENCRequest' }
  | { readonly type: 'CancelRequest'; readonly processId: number; readonly secretKey: number };

/** (F) messages after startup. */
export type FrontendMessage =
  | { readonly type: 'Query'; readonly sql: string }
  | { readonly type: 'Parse'; readonly name: string; readonly sql: string; readonly paramTypes: readonly number[] }
  | {
      readonly type: 'Bind';
      readonly portal: string;
      readonly statement: string;
      readonly paramFormats: readonly FormatCode[];
      readonly params: readonly (Buffer | null)[];
      readonly resultFormats: readonly FormatCode[];
    }
  | { readonly type: 'Describe'; readonly target: 'S' | 'P'; readonly name: string }
  | { readonly type: 'Execute'; readonly portal: string; readonly maxRows: number }
  | { readonly type: 'Close'; readonly target: 'S' | 'P'; readonly name: string }
  | { readonly type: 'Sync' }
  | { readonly type: 'Flush' }
  | { readonly type: 'Terminate' }
  | { readonly type: 'CopyData'; readonly data: Buffer }
  | { readonly type: 'CopyDone' }
  | { readonly type: 'CopyFail'; readonly message: string }
  | { readonly type: 'FunctionCall' }
  /** 'p' is one byte for three messages; which one is meant depends on the authentication step. */
  | { readonly type: 'PasswordMessage'; readonly password: string }
  | { readonly type: 'SASLInitialResponse'; readonly mechanism: string; readonly data: Buffer | null }
  | { readonly type: 'SASLResponse'; readonly data: Buffer };

/** (B) messages. */
export type BackendMessage =
  | { readonly type: 'AuthenticationOk' }
  | { readonly type: 'AuthenticationCleartextPassword' }
  | { readonly type: 'AuthenticationMD5Password'; readonly salt: Buffer }
  | { readonly type: 'AuthenticationSASL'; readonly mechanisms: readonly string[] }
  | { readonly type: 'AuthenticationSASLContinue'; readonly data: Buffer }
  | { readonly type: 'AuthenticationSASLFinal'; readonly data: Buffer }
  | { readonly type: 'ParameterStatus'; readonly name: string; readonly value: string }
  | { readonly type: 'BackendKeyData'; readonly processId: number; readonly secretKey: number }
  | { readonly type: 'ReadyForQuery'; readonly status: TxStatus }
  | { readonly type: 'RowDescription'; readonly fields: readonly FieldDescription[] }
  | { readonly type: 'DataRow'; readonly values: readonly (Buffer | null)[] }
  | { readonly type: 'CommandComplete'; readonly tag: string }
  | { readonly type: 'EmptyQueryResponse' }
  | { readonly type: 'ErrorResponse'; readonly fields: ErrorFields }
  | { readonly type: 'NoticeResponse'; readonly fields: ErrorFields }
  | { readonly type: 'ParseComplete' }
  | { readonly type: 'BindComplete' }
  | { readonly type: 'CloseComplete' }
  | { readonly type: 'NoData' }
  | { readonly type: 'PortalSuspended' }
  | { readonly type: 'ParameterDescription'; readonly types: readonly number[] }
  | { readonly type: 'CopyInResponse'; readonly format: FormatCode; readonly columnFormats: readonly FormatCode[] }
  | { readonly type: 'CopyOutResponse'; readonly format: FormatCode; readonly columnFormats: readonly FormatCode[] }
  | { readonly type: 'CopyData'; readonly data: Buffer }
  | { readonly type: 'CopyDone' }
  | { readonly type: 'NotificationResponse'; readonly processId: number; readonly channel: string; readonly payload: string }
  | { readonly type: 'NegotiateProtocolVersion'; readonly newestMinor: number; readonly unrecognized: readonly string[] };

/** A framed message: its type byte (as a one-character string) and its body without the length word. */
export interface RawMessage {
  readonly code: string;
  readonly body: Buffer;
}

/**
 * Consecutive whole messages exactly as received, each with its type byte and
 * length word: `count` of them in `bytes`. Forwarded without decoding.
 */
export interface MessageRun {
  readonly bytes: Buffer;
  readonly count: number;
}
