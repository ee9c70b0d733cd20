import type { Pgoutput } from './pgoutput-message.js';
import type { WalReader } from './wal-reader.js';

/*
 * Two-phase commit decoding (protocol 3, option `two_phase`, on a slot created
 * with two_phase); each reader starts after the type byte. Every message ends
 * with Int32 xid, String gid (the PREPARE TRANSACTION identifier).
 *   'b' Begin Prepare:     Int64 prepare LSN, Int64 end LSN, Int64 prepare time, xid, gid.
 *   'P' Prepare:           Int8 flags (0), Int64 prepare LSN, Int64 end LSN, Int64 prepare time, xid, gid.
 *   'K' Commit Prepared:   Int8 flags (0), Int64 commit LSN, Int64 end LSN, Int64 commit time, xid, gid.
 *   'r' Rollback Prepared: Int8 flags (0), Int64 prepare end LSN, Int64 rollback end LSN,
 *                          Int64 prepare time, Int64 rollback time, xid, gid.
 *   'p' Stream Prepare:    Int8 flags (0), Int64 prepare LSN, Int64 end LSN, Int64 prepare time, xid, gid.
 */

/** Reads a Begin Prepare body. */
export function readBeginPrepare(r: WalReader): Pgoutput<'BeginPrepare'> {
  return { kind: 'BeginPrepare', prepareLsn: r.lsn(), endLsn: r.lsn(), prepareTime: r.timestamp(), xid: r.xid(), gid: r.cstring() };
}

/** Reads a Prepare body. */
export function readPrepare(r: WalReader): Pgoutput<'Prepare'> {
  return { kind: 'Prepare', flags: r.byte(), prepareLsn: r.lsn(), endLsn: r.lsn(), prepareTime: r.timestamp(), xid: r.xid(), gid: r.cstring() };
}

/** Reads a Commit Prepared body. */
export function readCommitPrepared(r: WalReader): Pgoutput<'CommitPrepared'> {
  return { kind: 'CommitPrepared', flags: r.byte(), commitLsn: r.lsn(), endLsn: r.lsn(), commitTime: r.timestamp(), xid: r.xid(), gid: r.cstring() };
}

/** Reads a Rollback Prepared body. */
export function readRollbackPrepared(r: WalReader): Pgoutput<'RollbackPrepared'> {
  return {
    kind: 'RollbackPrepared',
    flags: r.byte(),
    prepareEndLsn: r.lsn(),
    rollbackEndLsn: r.lsn(),
    prepareTime: r.timestamp(),
    rollbackTime: r.timestamp(),
    xid: r.xid(),
    gid: r.cstring(),
  };
}

/** Reads a Stream Prepare body. */
export function readStreamPrepare(r: WalReader): Pgoutput<'StreamPrepare'> {
  return { kind: 'StreamPrepare', flags: r.byte(), prepareLsn: r.lsn(), endLsn: r.lsn(), prepareTime: r.timestamp(), xid: r.xid(), gid: r.cstring() };
}
