import type { Pgoutput, TupleColumn, TupleData } from './pgoutput-message.js';
import type { WalReader } from './wal-reader.js';

/*
 * Row changes of pgoutput; each reader starts after the type byte.
 *   'I' Insert:   [Int32 xid, streamed only], Int32 relation OID, Byte1 'N', TupleData.
 *   'U' Update:   [Int32 xid], Int32 relation OID, optional (Byte1 'K' | 'O', TupleData),
 *                 Byte1 'N', TupleData.
 *   'D' Delete:   [Int32 xid], Int32 relation OID, Byte1 'K' | 'O', TupleData.
 *   'T' Truncate: [Int32 xid], Int32 n relations, Int8 options (1 CASCADE,
 *                 2 RESTART IDENTITY), Int32[n] relation OIDs.
 * TupleData: Int16 n columns, then per column Byte1 'n' (NULL), 'u' (unchanged
 * TOASTed value), or 't' (text) / 'b' (binary) followed by Int32 n, Byte[n].
 */
const TUPLE_NEW = 0x4e; // 'N'
const TUPLE_KEY = 0x4b; // 'K'
const TUPLE_OLD = 0x4f; // 'O'
const COLUMN_NULL = 0x6e; // 'n'
const COLUMN_UNCHANGED = 0x75; // 'u'
const COLUMN_TEXT = 0x74; // 't'
const COLUMN_BINARY = 0x62; // 'b'

const NULL_COLUMN: TupleColumn = { kind: 'null' };
const UNCHANGED_COLUMN: TupleColumn = { kind: 'unchanged' };

/** Reads a TupleData. */
export function readTupleData(r: WalReader): TupleData {
  const n = r.uint16();
  const columns: TupleColumn[] = new Array<TupleColumn>(n);
  for (let i = 0; i < n; i++) {
    const kind = r.byte();
    if (kind === COLUMN_NULL) columns[i] = NULL_COLUMN;
    else if (kind === COLUMN_UNCHANGED) columns[i] = UNCHANGED_COLUMN;
    else if (kind === COLUMN_TEXT || kind === COLUMN_BINARY) {
      const len = r.int32();
      if (len < 0) throw r.fail(`column ${i} has negative length ${len}`);
      const bytes = r.bytes(len);
      columns[i] = kind === COLUMN_TEXT ? { kind: 'text', value: bytes.toString('utf8') } : { kind: 'binary', value: bytes };
    } else throw r.fail(`column ${i} has unknown kind 0x${kind.toString(16)}`);
  }
  return columns;
}

function expectByte(r: WalReader, want: number, what: string): void {
  const got = r.byte();
  if (got !== want) throw r.fail(`expected ${what} ('${String.fromCharCode(want)}'), got 0x${got.toString(16)}`);
}

/** Reads an Insert body. */
export function readInsert(r: WalReader, inStream: boolean): Pgoutput<'Insert'> {
  const xid = inStream ? r.xid() : null;
  const relationOid = r.uint32();
  expectByte(r, TUPLE_NEW, 'new tuple');
  return { kind: 'Insert', xid, relationOid, newTuple: readTupleData(r) };
}

/** Reads an Update body. */
export function readUpdate(r: WalReader, inStream: boolean): Pgoutput<'Update'> {
  const xid = inStream ? r.xid() : null;
  const relationOid = r.uint32();
  let key: TupleData | null = null;
  let old: TupleData | null = null;
  let marker = r.byte();
  if (marker === TUPLE_KEY || marker === TUPLE_OLD) {
    if (marker === TUPLE_KEY) key = readTupleData(r);
    else old = readTupleData(r);
    marker = r.byte();
  }
  if (marker !== TUPLE_NEW) throw r.fail(`expected new tuple ('N'), got 0x${marker.toString(16)}`);
  return { kind: 'Update', xid, relationOid, key, old, newTuple: readTupleData(r) };
}

/** Reads a Delete body. */
export function readDelete(r: WalReader, inStream: boolean): Pgoutput<'Delete'> {
  const xid = inStream ? r.xid() : null;
  const relationOid = r.uint32();
  const marker = r.byte();
  if (marker !== TUPLE_KEY && marker !== TUPLE_OLD) throw r.fail(`expected key ('K') or old tuple ('O'), got 0x${marker.toString(16)}`);
  const tuple = readTupleData(r);
  return { kind: 'Delete', xid, relationOid, key: marker === TUPLE_KEY ? tuple : null, old: marker === TUPLE_OLD ? tuple : null };
}

/** Reads a Truncate body. */
export function readTruncate(r: WalReader, inStream: boolean): Pgoutput<'Truncate'> {
  const xid = inStream ? r.xid() : null;
  const n = r.int32();
  if (n < 0) throw r.fail(`negative relation count ${n}`);
  const options = r.byte();
  const relationOids: number[] = [];
  for (let i = 0; i < n; i++) relationOids.push(r.uint32());
  return { kind: 'Truncate', xid, options, relationOids };
}
