import { sgError } from '../errors/catalogue.js';
import { decodePasswordMessage, writePasswordMessage, type PasswordKind } from './authentication.js';
import { decodeBind, writeBind } from './bind.js';
import { BufferWriter } from './buffer-writer.js';
import { decodeClose, writeClose } from './close.js';
import { COPY_DONE, decodeCopyData, decodeCopyFail, writeCopyData, writeCopyFail } from './copy.js';
import { decodeDescribe, writeDescribe } from './describe.js';
import { decodeExecute, writeExecute } from './execute.js';
import type { FrontendMessage, RawMessage } from './messages.js';
import { decodeParse, writeParse } from './parse.js';
import { decodeQuery, writeQuery } from './query.js';

/** 'S' Sync (F): empty body; ends an extended-query batch. */
export const SYNC = 0x53;
/** 'H' Flush (F): empty body. */
export const FLUSH = 0x48;
/** 'X' Terminate (F): empty body. */
export const TERMINATE = 0x58;
/** 'F' FunctionCall (F): decoded without its arguments; ShardGate refuses the message. */
export const FUNCTION_CALL = 0x46;

function emptyBody<T extends FrontendMessage>(raw: RawMessage, msg: T): T {
  if (raw.body.length !== 0) throw sgError('protocolViolation', { reason: `invalid ${msg.type} message: expected an empty body, got ${raw.body.length} bytes` });
  return msg;
}

/**
 * Decodes a (F) message. 'p' means PasswordMessage, SASLInitialResponse or
 * SASLResponse depending on the authentication step, which the caller passes
 * as `passwordKind` (default 'password'). Unknown type bytes and malformed
 * bodies throw 08P01. Byte fields (Bind values, CopyData, SASL data) alias
 * `raw.body`.
 */
export function decodeFrontend(raw: RawMessage, passwordKind: PasswordKind = 'password'): FrontendMessage {
  switch (raw.code) {
    case 'Q':
      return decodeQuery(raw.body);
    case 'P':
      return decodeParse(raw.body);
    case 'B':
      return decodeBind(raw.body);
    case 'D':
      return decodeDescribe(raw.body);
    case 'E':
      return decodeExecute(raw.body);
    case 'C':
      return decodeClose(raw.body);
    case 'S':
      return emptyBody(raw, { type: 'Sync' });
    case 'H':
      return emptyBody(raw, { type: 'Flush' });
    case 'X':
      return emptyBody(raw, { type: 'Terminate' });
    case 'd':
      return decodeCopyData(raw.body);
    case 'c':
      return emptyBody(raw, { type: 'CopyDone' });
    case 'f':
      return decodeCopyFail(raw.body);
    case 'F':
      return { type: 'FunctionCall' };
    case 'p':
      return decodePasswordMessage(raw.body, passwordKind);
    default:
      throw sgError('protocolViolation', { reason: `invalid frontend message type ${raw.code.charCodeAt(0)}` });
  }
}

/** Appends a (F) message to `w`. */
export function writeFrontend(w: BufferWriter, msg: FrontendMessage): void {
  switch (msg.type) {
    case 'Query':
      return writeQuery(w, msg);
    case 'Parse':
      return writeParse(w, msg);
    case 'Bind':
      return writeBind(w, msg);
    case 'Describe':
      return writeDescribe(w, msg);
    case 'Execute':
      return writeExecute(w, msg);
    case 'Close':
      return writeClose(w, msg);
    case 'Sync':
      return void w.emptyMessage(SYNC);
    case 'Flush':
      return void w.emptyMessage(FLUSH);
    case 'Terminate':
      return void w.emptyMessage(TERMINATE);
    case 'CopyData':
      return writeCopyData(w, msg.data);
    case 'CopyDone':
      return void w.emptyMessage(COPY_DONE);
    case 'CopyFail':
      return writeCopyFail(w, msg);
    case 'FunctionCall':
      // The message carries no arguments in our model, so it cannot be re-encoded faithfully.
      throw sgError('featureNotSupported', { feature: 'the FunctionCall message', hint: 'Call the function with a SELECT statement.' });
    case 'PasswordMessage':
    case 'SASLInitialResponse':
    case 'SASLResponse':
      return writePasswordMessage(w, msg);
  }
}

/** Encodes one (F) message. */
export function encodeFrontend(msg: FrontendMessage): Buffer {
  const w = new BufferWriter(msg.type === 'Bind' ? bindSizeHint(msg) : 128);
  writeFrontend(w, msg);
  return w.finish();
}

/** Encodes several (F) messages into one buffer (e.g. Parse/Bind/Describe/Execute/Sync). */
export function encodeFrontendMany(msgs: readonly FrontendMessage[]): Buffer {
  const w = new BufferWriter(256);
  for (const msg of msgs) writeFrontend(w, msg);
  return w.finish();
}

function bindSizeHint(msg: Extract<FrontendMessage, { type: 'Bind' }>): number {
  let size = 64 + msg.portal.length * 3 + msg.statement.length * 3 + 2 * (msg.paramFormats.length + msg.resultFormats.length);
  for (const p of msg.params) size += p === null ? 4 : 4 + p.length;
  return size;
}
