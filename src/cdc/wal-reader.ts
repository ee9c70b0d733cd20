import { BodyReader } from '../protocol/body-reader.js';
import type { Lsn, PgTimestamp } from './lsn.js';

/**
 * The protocol's BodyReader (bounds-checked, failing with 08P01 naming the
 * message) plus the 64-bit fields of the replication protocols: LSNs
 * (unsigned) and timestamps (signed microseconds since 2000-01-01).
 */
export class WalReader extends BodyReader {
  /** Int64 (XLogRecPtr). */
  lsn(): Lsn {
    return this.bytes(8).readBigUInt64BE(0) as Lsn;
  }

  /** Int64 (TimestampTz). */
  timestamp(): PgTimestamp {
    return this.bytes(8).readBigInt64BE(0) as PgTimestamp;
  }

  /** Int32 (TransactionId): unsigned. */
  xid(): number {
    return this.uint32();
  }
}
