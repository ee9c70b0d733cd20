import { sgError } from '../errors/catalogue.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/*
 * 'D' DataRow (B): Int16 n, then per column Int32 length (-1 = NULL, no bytes follow)
 * and Byte[length] value. Header: 1 type byte + 4 length + 2 count = 7 bytes.
 */
export const DATA_ROW = 0x44;
const NULL_LENGTH = -1;

function malformed(reason: string): Error {
  return sgError('protocolViolation', { reason: `invalid DataRow message: ${reason}` });
}

/**
 * Decodes a DataRow (B) body. Values are zero-copy views: they alias the body
 * and hence the chunk it was read from; copy a value that must outlive it
 * when the chunk may be reused.
 */
export function decodeDataRow(body: Buffer): Backend<'DataRow'> {
  if (body.length < 2) throw malformed('missing column count');
  const n = (body[0]! << 8) | body[1]!;
  const values: (Buffer | null)[] = new Array<Buffer | null>(n);
  let pos = 2;
  for (let i = 0; i < n; i++) {
    if (pos + 4 > body.length) throw malformed(`column ${i + 1} of ${n} is past the end`);
    const len = (body[pos]! << 24) | (body[pos + 1]! << 16) | (body[pos + 2]! << 8) | body[pos + 3]!;
    pos += 4;
    if (len === NULL_LENGTH) {
      values[i] = null;
      continue;
    }
    if (len < 0 || pos + len > body.length) throw malformed(`column ${i + 1} has invalid length ${len}`);
    values[i] = body.subarray(pos, pos + len);
    pos += len;
  }
  if (pos !== body.length) throw malformed(`${body.length - pos} unexpected bytes after the last column`);
  return { type: 'DataRow', values };
}

/** Exact encoded size of a DataRow, type byte included. */
export function dataRowSize(values: readonly (Buffer | null)[]): number {
  let size = 7;
  for (const v of values) size += v === null ? 4 : 4 + v.length;
  return size;
}

/** Appends a DataRow (B). */
export function writeDataRow(w: BufferWriter, values: readonly (Buffer | null)[]): void {
  const start = w.beginMessage(DATA_ROW);
  w.count16(values.length, 'columns');
  for (const v of values) {
    if (v === null) w.int32(NULL_LENGTH);
    else w.int32(v.length).bytes(v);
  }
  w.endMessage(start);
}

/**
 * Encodes one DataRow (B) from values already in wire format: the proxy's
 * per-row path. Sizes the output first and writes it with byte stores, so a
 * row costs exactly one allocation and no intermediate views.
 */
export function encodeDataRow(values: readonly (Buffer | null)[]): Buffer {
  const n = values.length;
  if (n > 0xffff) throw sgError('protocolViolation', { reason: `too many columns (${n}); a message carries at most 65535` });
  const size = dataRowSize(values);
  const out = Buffer.allocUnsafe(size);
  const len = size - 1; // the length word excludes the type byte
  out[0] = DATA_ROW;
  out[1] = len >>> 24;
  out[2] = len >>> 16;
  out[3] = len >>> 8;
  out[4] = len;
  out[5] = n >>> 8;
  out[6] = n;
  let pos = 7;
  for (let c = 0; c < n; c++) {
    const v = values[c]!;
    if (v === null) {
      // -1 as Int32: NULL, no value bytes follow.
      out[pos] = out[pos + 1] = out[pos + 2] = out[pos + 3] = 0xff;
      pos += 4;
      continue;
    }
    const vlen = v.length;
    out[pos] = vlen >>> 24;
    out[pos + 1] = vlen >>> 16;
    out[pos + 2] = vlen >>> 8;
    out[pos + 3] = vlen;
    pos += 4;
    // Short values are cheaper to copy in JS than through a native call.
    if (vlen <= 16) for (let i = 0; i < vlen; i++) out[pos + i] = v[i]!;
    else out.set(v, pos);
    pos += vlen;
  }
  return out;
}
