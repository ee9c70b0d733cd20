import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/** 't' ParameterDescription (B): Int16 n, Int32[n] parameter type OIDs. */
export const PARAMETER_DESCRIPTION = 0x74;

/** Decodes a ParameterDescription (B) body. */
export function decodeParameterDescription(body: Buffer): Backend<'ParameterDescription'> {
  const r = new BodyReader(body, 'ParameterDescription');
  const n = r.uint16();
  const types: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) types[i] = r.uint32();
  r.end();
  return { type: 'ParameterDescription', types };
}

/** Appends a ParameterDescription (B). */
export function writeParameterDescription(w: BufferWriter, msg: Backend<'ParameterDescription'>): void {
  const start = w.beginMessage(PARAMETER_DESCRIPTION);
  w.count16(msg.types.length, 'parameter types');
  for (const oid of msg.types) w.int32(oid);
  w.endMessage(start);
}
