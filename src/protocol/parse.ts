import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Frontend } from './message-types.js';

/** 'P' Parse (F): String statement name, String sql, Int16 n, Int32[n] parameter type OIDs (0 = unspecified). */
export const PARSE = 0x50;
/** '1' ParseComplete (B): empty body. */
export const PARSE_COMPLETE = 0x31;

/** Decodes a Parse (F) body. */
export function decodeParse(body: Buffer): Frontend<'Parse'> {
  const r = new BodyReader(body, 'Parse');
  const name = r.cstring();
  const sql = r.cstring();
  const n = r.uint16();
  const paramTypes: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) paramTypes[i] = r.uint32();
  r.end();
  return { type: 'Parse', name, sql, paramTypes };
}

/** Appends a Parse (F). */
export function writeParse(w: BufferWriter, msg: Frontend<'Parse'>): void {
  const start = w.beginMessage(PARSE);
  w.cstring(msg.name).cstring(msg.sql).count16(msg.paramTypes.length, 'parameter types');
  for (const oid of msg.paramTypes) w.int32(oid);
  w.endMessage(start);
}
