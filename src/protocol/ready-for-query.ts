import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/** 'Z' ReadyForQuery (B): Byte1 status — 'I' idle, 'T' in a transaction block, 'E' in a failed block. */
export const READY_FOR_QUERY = 0x5a;

/** Decodes a ReadyForQuery (B) body. */
export function decodeReadyForQuery(body: Buffer): Backend<'ReadyForQuery'> {
  const r = new BodyReader(body, 'ReadyForQuery');
  const status = String.fromCharCode(r.byte());
  r.end();
  if (status !== 'I' && status !== 'T' && status !== 'E') throw r.fail(`unknown transaction status ${JSON.stringify(status)}`);
  return { type: 'ReadyForQuery', status };
}

/** Appends a ReadyForQuery (B). */
export function writeReadyForQuery(w: BufferWriter, msg: Backend<'ReadyForQuery'>): void {
  const start = w.beginMessage(READY_FOR_QUERY);
  w.byte(msg.status.charCodeAt(0));
  w.endMessage(start);
}
