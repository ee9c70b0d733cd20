import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Frontend } from './message-types.js';

/** 'Q' Query (F): String sql. */
export const QUERY = 0x51;

/** Decodes a Query (F) body. */
export function decodeQuery(body: Buffer): Frontend<'Query'> {
  const r = new BodyReader(body, 'Query');
  const sql = r.cstring();
  r.end();
  return { type: 'Query', sql };
}

/** Appends a Query (F). */
export function writeQuery(w: BufferWriter, msg: Frontend<'Query'>): void {
  const start = w.beginMessage(QUERY);
  w.cstring(msg.sql);
  w.endMessage(start);
}
