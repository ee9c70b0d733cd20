import type { Lsn, PgTimestamp } from './lsn.js';

/*
 * The messages of pgoutput, PostgreSQL's logical replication output plugin
 * (docs: "Logical Replication Message Formats"), as decoded values. Each is
 * one row of pg_logical_slot_{get,peek}_binary_changes, or the payload of one
 * XLogData on a replication connection. Field names follow the docs.
 *
 * `xid` on change messages is present only inside a streamed transaction
 * (between Stream Start and Stream Stop, protocol version 2 and later); it is
 * null elsewhere.
 */

/** A transaction id (Int32, unsigned). */
export type Xid = number;

/** One column of a TupleData. */
export type TupleColumn =
  /** 'n': the value is NULL. */
  | { readonly kind: 'null' }
  /** 'u': an unchanged TOASTed value; the actual value is not sent. */
  | { readonly kind: 'unchanged' }
  /** 't': the value in text format. */
  | { readonly kind: 'text'; readonly value: string }
  /** 'b': the value in binary format (only with the `binary` option); aliases the input. */
  | { readonly kind: 'binary'; readonly value: Buffer };

/** TupleData: one value per column of the relation, in attribute order. */
export type TupleData = readonly TupleColumn[];

/** One column of a Relation message. */
export interface RelationColumn {
  /** Part of the replica identity key (flag bit 1). */
  readonly isKey: boolean;
  readonly name: string;
  readonly typeOid: number;
  /** atttypmod; -1 when the type has none. */
  readonly typeModifier: number;
}

/** Replica identity setting of a relation (relreplident): d default, n nothing, f full, i index. */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';

/** Truncate's option bits. */
export const TRUNCATE_CASCADE = 1;
export const TRUNCATE_RESTART_IDENTITY = 2;

/** Every message pgoutput sends, discriminated by `kind`. */
export type PgoutputMessage =
  /** 'B' Begin: a committed transaction's changes follow. */
  | { readonly kind: 'Begin'; readonly finalLsn: Lsn; readonly commitTime: PgTimestamp; readonly xid: Xid }
  /** 'M' Message: from pg_logical_emit_message (sent only with the `messages` option). */
  | {
      readonly kind: 'Message';
      readonly xid: Xid | null;
      readonly transactional: boolean;
      readonly lsn: Lsn;
      readonly prefix: string;
      /** Aliases the input. */
      readonly content: Buffer;
    }
  /** 'C' Commit. */
  | { readonly kind: 'Commit'; readonly flags: number; readonly commitLsn: Lsn; readonly endLsn: Lsn; readonly commitTime: PgTimestamp }
  /** 'O' Origin: the transaction was replayed from another node (follows Begin). */
  | { readonly kind: 'Origin'; readonly originLsn: Lsn; readonly name: string }
  /** 'R' Relation: describes a table before its first change in this session (and after it changes). */
  | {
      readonly kind: 'Relation';
      readonly xid: Xid | null;
      readonly relationOid: number;
      /** Empty string for pg_catalog. */
      readonly namespace: string;
      readonly name: string;
      readonly replicaIdentity: ReplicaIdentity;
      readonly columns: readonly RelationColumn[];
    }
  /** 'Y' Type: describes a non-built-in type before a Relation that uses it. */
  | { readonly kind: 'Type'; readonly xid: Xid | null; readonly typeOid: number; readonly namespace: string; readonly name: string }
  /** 'I' Insert. */
  | { readonly kind: 'Insert'; readonly xid: Xid | null; readonly relationOid: number; readonly newTuple: TupleData }
  /**
   * 'U' Update. `key` ('K') is the old replica identity key when it changed;
   * `old` ('O') the whole old row under REPLICA IDENTITY FULL; at most one is set.
   */
  | {
      readonly kind: 'Update';
      readonly xid: Xid | null;
      readonly relationOid: number;
      readonly key: TupleData | null;
      readonly old: TupleData | null;
      readonly newTuple: TupleData;
    }
  /** 'D' Delete: `key` ('K') or `old` ('O', REPLICA IDENTITY FULL), exactly one set. */
  | { readonly kind: 'Delete'; readonly xid: Xid | null; readonly relationOid: number; readonly key: TupleData | null; readonly old: TupleData | null }
  /** 'T' Truncate. `options` holds TRUNCATE_CASCADE and TRUNCATE_RESTART_IDENTITY bits. */
  | { readonly kind: 'Truncate'; readonly xid: Xid | null; readonly options: number; readonly relationOids: readonly number[] }
  /** 'S' Stream Start: a block of an in-progress transaction's changes follows (protocol 2+). */
  | { readonly kind: 'StreamStart'; readonly xid: Xid; readonly firstSegment: boolean }
  /** 'E' Stream Stop: the block ends. */
  | { readonly kind: 'StreamStop' }
  /** 'c' Stream Commit: the streamed transaction committed. */
  | { readonly kind: 'StreamCommit'; readonly xid: Xid; readonly flags: number; readonly commitLsn: Lsn; readonly endLsn: Lsn; readonly commitTime: PgTimestamp }
  /**
   * 'A' Stream Abort: the streamed (sub)transaction aborted; `subXid` equals
   * `xid` for the top-level one. The abort LSN and time come only with
   * protocol 4's parallel streaming (PostgreSQL 16+), null otherwise.
   */
  | {
      readonly kind: 'StreamAbort';
      readonly xid: Xid;
      readonly subXid: Xid;
      readonly abortLsn: Lsn | null;
      readonly abortTime: PgTimestamp | null;
    }
  /** 'b' Begin Prepare: a prepared transaction's changes follow (protocol 3, two_phase). */
  | { readonly kind: 'BeginPrepare'; readonly prepareLsn: Lsn; readonly endLsn: Lsn; readonly prepareTime: PgTimestamp; readonly xid: Xid; readonly gid: string }
  /** 'P' Prepare: PREPARE TRANSACTION 'gid' happened; the outcome comes later. */
  | {
      readonly kind: 'Prepare';
      readonly flags: number;
      readonly prepareLsn: Lsn;
      readonly endLsn: Lsn;
      readonly prepareTime: PgTimestamp;
      readonly xid: Xid;
      readonly gid: string;
    }
  /** 'K' Commit Prepared. */
  | {
      readonly kind: 'CommitPrepared';
      readonly flags: number;
      readonly commitLsn: Lsn;
      readonly endLsn: Lsn;
      readonly commitTime: PgTimestamp;
      readonly xid: Xid;
      readonly gid: string;
    }
  /** 'r' Rollback Prepared. */
  | {
      readonly kind: 'RollbackPrepared';
      readonly flags: number;
      readonly prepareEndLsn: Lsn;
      readonly rollbackEndLsn: Lsn;
      readonly prepareTime: PgTimestamp;
      readonly rollbackTime: PgTimestamp;
      readonly xid: Xid;
      readonly gid: string;
    }
  /** 'p' Stream Prepare: a streamed transaction was prepared. */
  | {
      readonly kind: 'StreamPrepare';
      readonly flags: number;
      readonly prepareLsn: Lsn;
      readonly endLsn: Lsn;
      readonly prepareTime: PgTimestamp;
      readonly xid: Xid;
      readonly gid: string;
    };

/** The message of one kind. */
export type Pgoutput<K extends PgoutputMessage['kind']> = Extract<PgoutputMessage, { kind: K }>;

/*
 * Message type bytes (Byte1 at offset 0 of every message).
 */
export const PGOUTPUT_BEGIN = 0x42; // 'B'
export const PGOUTPUT_MESSAGE = 0x4d; // 'M'
export const PGOUTPUT_COMMIT = 0x43; // 'C'
export const PGOUTPUT_ORIGIN = 0x4f; // 'O'
export const PGOUTPUT_RELATION = 0x52; // 'R'
export const PGOUTPUT_TYPE = 0x59; // 'Y'
export const PGOUTPUT_INSERT = 0x49; // 'I'
export const PGOUTPUT_UPDATE = 0x55; // 'U'
export const PGOUTPUT_DELETE = 0x44; // 'D'
export const PGOUTPUT_TRUNCATE = 0x54; // 'T'
export const PGOUTPUT_STREAM_START = 0x53; // 'S'
export const PGOUTPUT_STREAM_STOP = 0x45; // 'E'
export const PGOUTPUT_STREAM_COMMIT = 0x63; // 'c'
export const PGOUTPUT_STREAM_ABORT = 0x41; // 'A'
export const PGOUTPUT_BEGIN_PREPARE = 0x62; // 'b'
export const PGOUTPUT_PREPARE = 0x50; // 'P'
export const PGOUTPUT_COMMIT_PREPARED = 0x4b; // 'K'
export const PGOUTPUT_ROLLBACK_PREPARED = 0x72; // 'r'
export const PGOUTPUT_STREAM_PREPARE = 0x70; // 'p'
