import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/** 'C' CommandComplete (B): String command tag ("SELECT 3", "INSERT 0 1", …). */
export const COMMAND_COMPLETE = 0x43;
/** 'I' EmptyQueryResponse (B): empty body; replaces CommandComplete for an empty query string. */
export const EMPTY_QUERY_RESPONSE = 0x49;

/** Decodes a CommandComplete (B) body. */
export function decodeCommandComplete(body: Buffer): Backend<'CommandComplete'> {
  const r = new BodyReader(body, 'CommandComplete');
  const tag = r.cstring();
  r.end();
  return { type: 'CommandComplete', tag };
}

/** Appends a CommandComplete (B). */
export function writeCommandComplete(w: BufferWriter, msg: Backend<'CommandComplete'>): void {
  const start = w.beginMessage(COMMAND_COMPLETE);
  w.cstring(msg.tag);
  w.endMessage(start);
}
