import type { Pgoutput } from './pgoutput-message.js';
import type { WalReader } from './wal-reader.js';

/*
 * Streaming of in-progress transactions (protocol 2+, option `streaming`);
 * each reader starts after the type byte.
 *   'S' Stream Start:  Int32 xid, Int8 first segment (1 for the first block of this xid).
 *   'E' Stream Stop:   no fields.
 *   'c' Stream Commit: Int32 xid, Int8 flags (0), Int64 commit LSN, Int64 end LSN, Int64 commit time.
 *   'A' Stream Abort:  Int32 xid, Int32 subtransaction xid, and only with protocol 4's
 *                      parallel streaming: Int64 abort LSN, Int64 abort time.
 */

/** Reads a Stream Start body. */
export function readStreamStart(r: WalReader): Pgoutput<'StreamStart'> {
  return { kind: 'StreamStart', xid: r.xid(), firstSegment: r.byte() === 1 };
}

/** Reads a Stream Commit body. */
export function readStreamCommit(r: WalReader): Pgoutput<'StreamCommit'> {
  return { kind: 'StreamCommit', xid: r.xid(), flags: r.byte(), commitLsn: r.lsn(), endLsn: r.lsn(), commitTime: r.timestamp() };
}

/** Reads a Stream Abort body, with or without protocol 4's abort LSN and time. */
export function readStreamAbort(r: WalReader): Pgoutput<'StreamAbort'> {
  const xid = r.xid();
  const subXid = r.xid();
  // The body's length tells the forms apart: the extra fields are 16 bytes or absent.
  if (r.remaining === 0) return { kind: 'StreamAbort', xid, subXid, abortLsn: null, abortTime: null };
  return { kind: 'StreamAbort', xid, subXid, abortLsn: r.lsn(), abortTime: r.timestamp() };
}
