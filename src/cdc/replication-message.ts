import type { Lsn, PgTimestamp } from './lsn.js';
import { WalReader } from './wal-reader.js';

/*
 * The streaming replication protocol's messages inside CopyData (docs:
 * "Streaming Replication Protocol", START_REPLICATION). Each is one CopyData
 * body; the first byte says which.
 *   'w' XLogData (B):               Int64 start of the data in WAL, Int64 current end of
 *                                   WAL on the server, Int64 send time, Byte[n] data
 *                                   (for logical replication: one pgoutput message).
 *   'k' Primary keepalive (B):      Int64 current end of WAL, Int64 send time,
 *                                   Byte1 1 when the server asks for a reply now.
 *   'r' Standby status update (F):  Int64 last WAL byte + 1 received and written,
 *                                   Int64 … flushed, Int64 … applied, Int64 client time,
 *                                   Byte1 1 to ask the server for a keepalive now.
 * Times are microseconds since 2000-01-01 UTC.
 */
export const XLOG_DATA = 0x77; // 'w'
export const PRIMARY_KEEPALIVE = 0x6b; // 'k'
export const STANDBY_STATUS_UPDATE = 0x72; // 'r'

/** A message the server sends inside CopyData during START_REPLICATION. */
export type ReplicationMessage =
  | { readonly kind: 'XLogData'; readonly walStart: Lsn; readonly walEnd: Lsn; readonly sendTime: PgTimestamp; /** Aliases the input. */ readonly data: Buffer }
  | { readonly kind: 'PrimaryKeepalive'; readonly walEnd: Lsn; readonly sendTime: PgTimestamp; readonly replyRequested: boolean };

/** Decodes a CopyData body from the server (B); 08P01 on anything but a whole XLogData or keepalive. */
export function decodeReplicationMessage(body: Buffer): ReplicationMessage {
  const code = body[0];
  if (code === XLOG_DATA) {
    const r = new WalReader(body.subarray(1), 'XLogData');
    return { kind: 'XLogData', walStart: r.lsn(), walEnd: r.lsn(), sendTime: r.timestamp(), data: r.rest() };
  }
  if (code === PRIMARY_KEEPALIVE) {
    const r = new WalReader(body.subarray(1), 'Primary keepalive');
    const message = { kind: 'PrimaryKeepalive', walEnd: r.lsn(), sendTime: r.timestamp(), replyRequested: r.byte() === 1 } as const;
    r.end();
    return message;
  }
  const what = code === undefined ? 'an empty body' : `type 0x${code.toString(16)}`;
  throw new WalReader(body, 'replication CopyData').fail(`expected XLogData ('w') or Primary keepalive ('k'), got ${what}`);
}

/** The client's progress report (F): positions are "last byte + 1", INVALID_LSN when unknown. */
export interface StandbyStatusUpdate {
  readonly written: Lsn;
  readonly flushed: Lsn;
  readonly applied: Lsn;
  readonly clientTime: PgTimestamp;
  readonly replyRequested: boolean;
}

/** Size of a Standby status update body: type byte, four Int64, one Byte1. */
const STANDBY_STATUS_UPDATE_SIZE = 1 + 8 * 4 + 1;

/**
 * Encodes a Standby status update as a CopyData body (wrap it with
 * writeCopyData). The server may remove WAL and advance the slot up to
 * `flushed`: report there only what is durably handled downstream.
 */
export function encodeStandbyStatusUpdate(msg: StandbyStatusUpdate): Buffer {
  const b = Buffer.alloc(STANDBY_STATUS_UPDATE_SIZE);
  b[0] = STANDBY_STATUS_UPDATE;
  b.writeBigUInt64BE(msg.written, 1);
  b.writeBigUInt64BE(msg.flushed, 9);
  b.writeBigUInt64BE(msg.applied, 17);
  b.writeBigInt64BE(msg.clientTime, 25);
  b[33] = msg.replyRequested ? 1 : 0;
  return b;
}
