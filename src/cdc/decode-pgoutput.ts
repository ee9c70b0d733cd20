import { readDelete, readInsert, readTruncate, readUpdate } from './change.js';
import * as T from './pgoutput-message.js';
import type { PgoutputMessage } from './pgoutput-message.js';
import { readRelation, readType } from './relation.js';
import { readStreamAbort, readStreamCommit, readStreamStart } from './stream.js';
import { readBegin, readCommit, readLogicalMessage, readOrigin } from './transaction.js';
import { readBeginPrepare, readCommitPrepared, readPrepare, readRollbackPrepared, readStreamPrepare } from './two-phase.js';
import { WalReader } from './wal-reader.js';

/** What decoding one message needs to know from the ones before it. */
export interface PgoutputContext {
  /**
   * Inside a Stream Start … Stream Stop block: Message, Relation, Type and
   * the change messages then carry the streamed transaction's xid first.
   */
  readonly inStream: boolean;
}

const NAMES: Readonly<Record<number, string>> = {
  [T.PGOUTPUT_BEGIN]: 'Begin',
  [T.PGOUTPUT_MESSAGE]: 'Message',
  [T.PGOUTPUT_COMMIT]: 'Commit',
  [T.PGOUTPUT_ORIGIN]: 'Origin',
  [T.PGOUTPUT_RELATION]: 'Relation',
  [T.PGOUTPUT_TYPE]: 'Type',
  [T.PGOUTPUT_INSERT]: 'Insert',
  [T.PGOUTPUT_UPDATE]: 'Update',
  [T.PGOUTPUT_DELETE]: 'Delete',
  [T.PGOUTPUT_TRUNCATE]: 'Truncate',
  [T.PGOUTPUT_STREAM_START]: 'Stream Start',
  [T.PGOUTPUT_STREAM_STOP]: 'Stream Stop',
  [T.PGOUTPUT_STREAM_COMMIT]: 'Stream Commit',
  [T.PGOUTPUT_STREAM_ABORT]: 'Stream Abort',
  [T.PGOUTPUT_BEGIN_PREPARE]: 'Begin Prepare',
  [T.PGOUTPUT_PREPARE]: 'Prepare',
  [T.PGOUTPUT_COMMIT_PREPARED]: 'Commit Prepared',
  [T.PGOUTPUT_ROLLBACK_PREPARED]: 'Rollback Prepared',
  [T.PGOUTPUT_STREAM_PREPARE]: 'Stream Prepare',
};

function readBody(code: number, r: WalReader, inStream: boolean): PgoutputMessage {
  switch (code) {
    case T.PGOUTPUT_BEGIN: return readBegin(r);
    case T.PGOUTPUT_MESSAGE: return readLogicalMessage(r, inStream);
    case T.PGOUTPUT_COMMIT: return readCommit(r);
    case T.PGOUTPUT_ORIGIN: return readOrigin(r);
    case T.PGOUTPUT_RELATION: return readRelation(r, inStream);
    case T.PGOUTPUT_TYPE: return readType(r, inStream);
    case T.PGOUTPUT_INSERT: return readInsert(r, inStream);
    case T.PGOUTPUT_UPDATE: return readUpdate(r, inStream);
    case T.PGOUTPUT_DELETE: return readDelete(r, inStream);
    case T.PGOUTPUT_TRUNCATE: return readTruncate(r, inStream);
    case T.PGOUTPUT_STREAM_START: return readStreamStart(r);
    case T.PGOUTPUT_STREAM_STOP: return { kind: 'StreamStop' };
    case T.PGOUTPUT_STREAM_COMMIT: return readStreamCommit(r);
    case T.PGOUTPUT_STREAM_ABORT: return readStreamAbort(r);
    case T.PGOUTPUT_BEGIN_PREPARE: return readBeginPrepare(r);
    case T.PGOUTPUT_PREPARE: return readPrepare(r);
    case T.PGOUTPUT_COMMIT_PREPARED: return readCommitPrepared(r);
    case T.PGOUTPUT_ROLLBACK_PREPARED: return readRollbackPrepared(r);
    case T.PGOUTPUT_STREAM_PREPARE: return readStreamPrepare(r);
    default: throw new WalReader(Buffer.alloc(0), 'pgoutput').fail(`unknown message type 0x${code.toString(16)}`);
  }
}

/**
 * Decodes one pgoutput message (a whole row of
 * pg_logical_slot_peek_binary_changes, or one XLogData payload). Every field
 * is read with bounds checks and the body must be consumed exactly: a short,
 * long or unknown message fails with 08P01 naming the message, never yields
 * a partial value. Buffers in the result (binary columns, Message content)
 * alias `data`.
 */
export function decodePgoutput(data: Buffer, context: PgoutputContext = { inStream: false }): PgoutputMessage {
  if (data.length === 0) throw new WalReader(data, 'pgoutput').fail('empty message');
  const code = data[0]!;
  const r = new WalReader(data.subarray(1), NAMES[code] ?? 'pgoutput');
  const message = readBody(code, r, context.inStream);
  r.end();
  return message;
}

/**
 * Decodes the messages of one replication session in order, keeping the one
 * piece of state the format needs: whether a Stream Start … Stream Stop block
 * is open (which adds the xid field to the messages inside it). Nested Stream
 * Start, or Stream Stop outside a block, fail with 08P01.
 */
export class PgoutputDecoder {
  #inStream = false;

  /** True between a Stream Start and its Stream Stop. */
  get inStream(): boolean {
    return this.#inStream;
  }

  /** Decodes the next message of the session. */
  decode(data: Buffer): PgoutputMessage {
    const message = decodePgoutput(data, { inStream: this.#inStream });
    if (message.kind === 'StreamStart') {
      if (this.#inStream) throw new WalReader(data, 'Stream Start').fail('a stream block is already open');
      this.#inStream = true;
    } else if (message.kind === 'StreamStop') {
      if (!this.#inStream) throw new WalReader(data, 'Stream Stop').fail('no stream block is open');
      this.#inStream = false;
    }
    return message;
  }
}
