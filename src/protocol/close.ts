import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { readTarget } from './describe.js';
import type { Frontend } from './message-types.js';

/** 'C' Close (F): Byte1 'S' (statement) or 'P' (portal), String name. */
export const CLOSE = 0x43;
/** '3' CloseComplete (B): empty body. */
export const CLOSE_COMPLETE = 0x33;

/** Decodes a Close (F) body. */
export function decodeClose(body: Buffer): Frontend<'Close'> {
  const r = new BodyReader(body, 'Close');
  const target = readTarget(r);
  const name = r.cstring();
  r.end();
  return { type: 'Close', target, name };
}

/** Appends a Close (F). */
export function writeClose(w: BufferWriter, msg: Frontend<'Close'>): void {
  const start = w.beginMessage(CLOSE);
  w.byte(msg.target.charCodeAt(0)).cstring(msg.name);
  w.endMessage(start);
}
