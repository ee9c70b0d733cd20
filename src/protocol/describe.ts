import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Frontend } from './message-types.js';

/** 'D' Describe (F): Byte1 'S' (statement) or 'P' (portal), String name. */
export const DESCRIBE = 0x44;
/** 'n' NoData (B): empty body; the described statement or portal returns no rows. */
export const NO_DATA = 0x6e;

/** Reads the Byte1 target of Describe and Close: 'S' statement or 'P' portal. */
export function readTarget(r: BodyReader): 'S' | 'P' {
  const t = r.byte();
  if (t === 0x53) return 'S';
  if (t === 0x50) return 'P';
  throw r.fail(`target must be 'S' or 'P', got byte ${t}`);
}

/** Decodes a Describe (F) body. */
export function decodeDescribe(body: Buffer): Frontend<'Describe'> {
  const r = new BodyReader(body, 'Describe');
  const target = readTarget(r);
  const name = r.cstring();
  r.end();
  return { type: 'Describe', target, name };
}

/** Appends a Describe (F). */
export function writeDescribe(w: BufferWriter, msg: Frontend<'Describe'>): void {
  const start = w.beginMessage(DESCRIBE);
  w.byte(msg.target.charCodeAt(0)).cstring(msg.name);
  w.endMessage(start);
}
