import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/** 'S' ParameterStatus (B): String name, String value. */
export const PARAMETER_STATUS = 0x53;

/** Decodes a ParameterStatus (B) body. */
export function decodeParameterStatus(body: Buffer): Backend<'ParameterStatus'> {
  const r = new BodyReader(body, 'ParameterStatus');
  const name = r.cstring();
  const value = r.cstring();
  r.end();
  return { type: 'ParameterStatus', name, value };
}

/** Appends a ParameterStatus (B). */
export function writeParameterStatus(w: BufferWriter, msg: Backend<'ParameterStatus'>): void {
  const start = w.beginMessage(PARAMETER_STATUS);
  w.cstring(msg.name).cstring(msg.value);
  w.endMessage(start);
}
