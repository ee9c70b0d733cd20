import { sgError } from '../errors/catalogue.js';
import { decodeAuthentication, writeAuthentication } from './authentication.js';
import { decodeBackendKeyData, writeBackendKeyData } from './backend-key-data.js';
import { BIND_COMPLETE } from './bind.js';
import { BufferWriter } from './buffer-writer.js';
import { CLOSE_COMPLETE } from './close.js';
import { decodeCommandComplete, EMPTY_QUERY_RESPONSE, writeCommandComplete } from './command-complete.js';
import { COPY_DONE, decodeCopyData, decodeCopyResponse, writeCopyData, writeCopyResponse } from './copy.js';
import { dataRowSize, decodeDataRow, writeDataRow } from './data-row.js';
import { NO_DATA } from './describe.js';
import { decodeErrorResponse, decodeNoticeResponse, writeErrorResponse } from './error-response.js';
import { PORTAL_SUSPENDED } from './execute.js';
import type { BackendMessage, RawMessage } from './messages.js';
import { decodeNegotiateProtocolVersion, writeNegotiateProtocolVersion } from './negotiate-protocol-version.js';
import { decodeNotificationResponse, writeNotificationResponse } from './notification-response.js';
import { decodeParameterDescription, writeParameterDescription } from './parameter-description.js';
import { decodeParameterStatus, writeParameterStatus } from './parameter-status.js';
import { PARSE_COMPLETE } from './parse.js';
import { decodeReadyForQuery, writeReadyForQuery } from './ready-for-query.js';
import { decodeRowDescription, writeRowDescription } from './row-description.js';

function emptyBody<T extends BackendMessage>(raw: RawMessage, msg: T): T {
  if (raw.body.length !== 0) throw sgError('protocolViolation', { reason: `invalid ${msg.type} message: expected an empty body, got ${raw.body.length} bytes` });
  return msg;
}

/**
 * Decodes a (B) message, as read from a PostgreSQL server. DataRow values,
 * CopyData and SASL data are zero-copy views aliasing `raw.body` (and so the
 * chunk it was read from). ErrorResponse / NoticeResponse fields keep every
 * value the server sent. Unknown type bytes (including CopyBothResponse,
 * which ShardGate never requests) and malformed bodies throw 08P01.
 */
export function decodeBackend(raw: RawMessage): BackendMessage {
  const body = raw.body;
  switch (raw.code) {
    case 'D':
      return decodeDataRow(body);
    case 'C':
      return decodeCommandComplete(body);
    case 'Z':
      return decodeReadyForQuery(body);
    case 'T':
      return decodeRowDescription(body);
    case 'R':
      return decodeAuthentication(body);
    case 'S':
      return decodeParameterStatus(body);
    case 'K':
      return decodeBackendKeyData(body);
    case 'E':
      return decodeErrorResponse(body);
    case 'N':
      return decodeNoticeResponse(body);
    case 'I':
      return emptyBody(raw, { type: 'EmptyQueryResponse' });
    case '1':
      return emptyBody(raw, { type: 'ParseComplete' });
    case '2':
      return emptyBody(raw, { type: 'BindComplete' });
    case '3':
      return emptyBody(raw, { type: 'CloseComplete' });
    case 'n':
      return emptyBody(raw, { type: 'NoData' });
    case 's':
      return emptyBody(raw, { type: 'PortalSuspended' });
    case 't':
      return decodeParameterDescription(body);
    case 'G':
      return decodeCopyResponse(body, 'CopyInResponse');
    case 'H':
      return decodeCopyResponse(body, 'CopyOutResponse');
    case 'd':
      return decodeCopyData(body);
    case 'c':
      return emptyBody(raw, { type: 'CopyDone' });
    case 'A':
      return decodeNotificationResponse(body);
    case 'v':
      return decodeNegotiateProtocolVersion(body);
    default:
      throw sgError('protocolViolation', { reason: `invalid backend message type ${raw.code.charCodeAt(0)}` });
  }
}

/** Appends a (B) message to `w`. */
export function writeBackend(w: BufferWriter, msg: BackendMessage): void {
  switch (msg.type) {
    case 'DataRow':
      return writeDataRow(w, msg.values);
    case 'CommandComplete':
      return writeCommandComplete(w, msg);
    case 'ReadyForQuery':
      return writeReadyForQuery(w, msg);
    case 'RowDescription':
      return writeRowDescription(w, msg);
    case 'AuthenticationOk':
    case 'AuthenticationCleartextPassword':
    case 'AuthenticationMD5Password':
    case 'AuthenticationSASL':
    case 'AuthenticationSASLContinue':
    case 'AuthenticationSASLFinal':
      return writeAuthentication(w, msg);
    case 'ParameterStatus':
      return writeParameterStatus(w, msg);
    case 'BackendKeyData':
      return writeBackendKeyData(w, msg);
    case 'ErrorResponse':
    case 'NoticeResponse':
      return writeErrorResponse(w, msg);
    case 'EmptyQueryResponse':
      return void w.emptyMessage(EMPTY_QUERY_RESPONSE);
    case 'ParseComplete':
      return void w.emptyMessage(PARSE_COMPLETE);
    case 'BindComplete':
      return void w.emptyMessage(BIND_COMPLETE);
    case 'CloseComplete':
      return void w.emptyMessage(CLOSE_COMPLETE);
    case 'NoData':
      return void w.emptyMessage(NO_DATA);
    case 'PortalSuspended':
      return void w.emptyMessage(PORTAL_SUSPENDED);
    case 'ParameterDescription':
      return writeParameterDescription(w, msg);
    case 'CopyInResponse':
    case 'CopyOutResponse':
      return writeCopyResponse(w, msg);
    case 'CopyData':
      return writeCopyData(w, msg.data);
    case 'CopyDone':
      return void w.emptyMessage(COPY_DONE);
    case 'NotificationResponse':
      return writeNotificationResponse(w, msg);
    case 'NegotiateProtocolVersion':
      return writeNegotiateProtocolVersion(w, msg);
  }
}

/** Encodes one (B) message. */
export function encodeBackend(msg: BackendMessage): Buffer {
  const w = new BufferWriter(sizeHint(msg));
  writeBackend(w, msg);
  return w.finish();
}

/** Encodes several (B) messages into one buffer, in order: one socket write for a batch. */
export function encodeMany(msgs: readonly BackendMessage[]): Buffer {
  let hint = 0;
  for (const msg of msgs) hint += sizeHint(msg);
  const w = new BufferWriter(hint);
  for (const msg of msgs) writeBackend(w, msg);
  return w.finish();
}

/** Exact for byte-heavy messages, a small guess otherwise: the writer grows if it is short. */
function sizeHint(msg: BackendMessage): number {
  switch (msg.type) {
    case 'DataRow':
      return dataRowSize(msg.values);
    case 'CopyData':
    case 'AuthenticationSASLContinue':
    case 'AuthenticationSASLFinal':
      return 9 + msg.data.length;
    case 'RowDescription':
      return 7 + msg.fields.length * 40;
    default:
      return 64;
  }
}
