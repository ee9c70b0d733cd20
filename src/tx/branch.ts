import type { ShardName } from '../config/names.js';
import type { TxConnection } from './types.js';

/**
 * open: inside its local transaction; prepared: PREPARE TRANSACTION succeeded;
 * idle: its local transaction is over (committed, rolled back, prepare failed);
 * unknown: the connection failed mid-statement, so the server's state is not known.
 */
export type BranchState = 'open' | 'prepared' | 'idle' | 'unknown';

/**
 * How far the branch's BEGIN got. queued: BEGIN … waits on the connection to
 * go out with the branch's first statement; nothing was sent, so the shard
 * holds nothing of the transaction. sent: BEGIN … went to the shard (ahead of
 * a statement, or on its own). failed: BEGIN … failed, or its connection
 * broke before it completed; the statement it carried did not run.
 */
export type BranchStart = 'queued' | 'sent' | 'failed';

/** One shard's part of a global transaction. */
export class Branch<C extends TxConnection> {
  wrote = false;
  /** Order of this branch's first write among the transaction's writers (1 = first); 0 until it writes. */
  firstWrite = 0;
  state: BranchState = 'open';
  start: BranchStart = 'sent';
  broken = false;
  released = false;
  /**
   * Set when the session keeps this branch's connection once the transaction
   * committed (it holds a cursor WITH HOLD): called instead of release().
   */
  keep: ((conn: C) => void) | undefined = undefined;
  constructor(readonly conn: C) {}
  get shard(): ShardName {
    return this.conn.shard;
  }
}

export type Settled<T> = { kind: 'ok'; value: T } | { kind: 'error'; error: unknown } | { kind: 'timeout' };

/** Waits for `promise` at most `ms`; never rejects. */
export async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<Settled<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), Math.max(0, ms));
  });
  try {
    return await Promise.race([
      promise.then(
        (value): Settled<T> => ({ kind: 'ok', value }),
        (error: unknown): Settled<T> => ({ kind: 'error', error }),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a cancelled PREPARE may take to answer before its connection is given up. */
export const CANCEL_GRACE_MS = 2_000;
