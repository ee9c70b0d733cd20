import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { FormatCode } from './fields.js';
import type { Backend, Frontend } from './message-types.js';

/*
 * COPY sub-protocol.
 *   'd' CopyData (F and B): Byte[n] data, the whole body.
 *   'c' CopyDone (F and B): empty body.
 *   'f' CopyFail (F): String error message.
 *   'G' CopyInResponse / 'H' CopyOutResponse (B): Int8 overall format (0 text, 1 binary),
 *       Int16 n columns, Int16[n] per-column format codes.
 */
export const COPY_DATA = 0x64;
export const COPY_DONE = 0x63;
export const COPY_FAIL = 0x66;
export const COPY_IN_RESPONSE = 0x47;
export const COPY_OUT_RESPONSE = 0x48;

/** CopyData (F or B) from its body; the data aliases the body. */
export function decodeCopyData(body: Buffer): { readonly type: 'CopyData'; readonly data: Buffer } {
  return { type: 'CopyData', data: body };
}

/** Appends a CopyData (F or B). */
export function writeCopyData(w: BufferWriter, data: Buffer): void {
  const start = w.beginMessage(COPY_DATA);
  w.bytes(data);
  w.endMessage(start);
}

/** Decodes a CopyFail (F) body. */
export function decodeCopyFail(body: Buffer): Frontend<'CopyFail'> {
  const r = new BodyReader(body, 'CopyFail');
  const message = r.cstring();
  r.end();
  return { type: 'CopyFail', message };
}

/** Appends a CopyFail (F). */
export function writeCopyFail(w: BufferWriter, msg: Frontend<'CopyFail'>): void {
  const start = w.beginMessage(COPY_FAIL);
  w.cstring(msg.message);
  w.endMessage(start);
}

type CopyResponse = Backend<'CopyInResponse' | 'CopyOutResponse'>;

/** Decodes a CopyInResponse or CopyOutResponse (B) body. */
export function decodeCopyResponse(body: Buffer, type: CopyResponse['type']): CopyResponse {
  const r = new BodyReader(body, type);
  const overall = r.byte();
  if (overall !== 0 && overall !== 1) throw r.fail(`unknown overall format ${overall}`);
  const n = r.uint16();
  const columnFormats: FormatCode[] = new Array<FormatCode>(n);
  for (let i = 0; i < n; i++) columnFormats[i] = r.format();
  r.end();
  return type === 'CopyInResponse' ? { type, format: overall, columnFormats } : { type, format: overall, columnFormats };
}

/** Appends a CopyInResponse or CopyOutResponse (B). */
export function writeCopyResponse(w: BufferWriter, msg: CopyResponse): void {
  const start = w.beginMessage(msg.type === 'CopyInResponse' ? COPY_IN_RESPONSE : COPY_OUT_RESPONSE);
  w.byte(msg.format).count16(msg.columnFormats.length, 'columns');
  for (const f of msg.columnFormats) w.int16(f);
  w.endMessage(start);
}
