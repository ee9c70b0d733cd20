import type { Pgoutput } from './pgoutput-message.js';
import type { WalReader } from './wal-reader.js';

/*
 * Transaction framing of pgoutput; each reader starts after the type byte.
 *   'B' Begin:   Int64 final LSN, Int64 commit time, Int32 xid.
 *   'C' Commit:  Int8 flags (0), Int64 commit LSN, Int64 end LSN, Int64 commit time.
 *   'O' Origin:  Int64 commit LSN on the origin, String origin name.
 *   'M' Message: [Int32 xid, streamed only], Int8 flags (1 transactional),
 *                Int64 LSN, String prefix, Int32 n, Byte[n] content.
 */

/** Flag bit of Message: emitted with transactional = true. */
const MESSAGE_TRANSACTIONAL = 1;

/** Reads a Begin body. */
export function readBegin(r: WalReader): Pgoutput<'Begin'> {
  return { kind: 'Begin', finalLsn: r.lsn(), commitTime: r.timestamp(), xid: r.xid() };
}

/** Reads a Commit body. */
export function readCommit(r: WalReader): Pgoutput<'Commit'> {
  return { kind: 'Commit', flags: r.byte(), commitLsn: r.lsn(), endLsn: r.lsn(), commitTime: r.timestamp() };
}

/** Reads an Origin body. */
export function readOrigin(r: WalReader): Pgoutput<'Origin'> {
  return { kind: 'Origin', originLsn: r.lsn(), name: r.cstring() };
}

/** Reads a Message body; `inStream` says whether the xid field is present. */
export function readLogicalMessage(r: WalReader, inStream: boolean): Pgoutput<'Message'> {
  const xid = inStream ? r.xid() : null;
  const flags = r.byte();
  const lsn = r.lsn();
  const prefix = r.cstring();
  const n = r.int32();
  if (n < 0) throw r.fail(`negative content length ${n}`);
  return { kind: 'Message', xid, transactional: (flags & MESSAGE_TRANSACTIONAL) !== 0, lsn, prefix, content: r.bytes(n) };
}
