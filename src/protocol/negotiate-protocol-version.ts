import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/**
 * 'v' NegotiateProtocolVersion (B): Int32 newest minor version supported for the
 * requested major, Int32 n, String[n] protocol options (`_pq_.…`) not recognized.
 */
export const NEGOTIATE_PROTOCOL_VERSION = 0x76;

/** Decodes a NegotiateProtocolVersion (B) body. */
export function decodeNegotiateProtocolVersion(body: Buffer): Backend<'NegotiateProtocolVersion'> {
  const r = new BodyReader(body, 'NegotiateProtocolVersion');
  const newestMinor = r.int32();
  const n = r.int32();
  if (n < 0) throw r.fail(`negative option count ${n}`);
  const unrecognized: string[] = [];
  for (let i = 0; i < n; i++) unrecognized.push(r.cstring());
  r.end();
  return { type: 'NegotiateProtocolVersion', newestMinor, unrecognized };
}

/** Appends a NegotiateProtocolVersion (B). */
export function writeNegotiateProtocolVersion(w: BufferWriter, msg: Backend<'NegotiateProtocolVersion'>): void {
  const start = w.beginMessage(NEGOTIATE_PROTOCOL_VERSION);
  w.int32(msg.newestMinor).int32(msg.unrecognized.length);
  for (const option of msg.unrecognized) w.cstring(option);
  w.endMessage(start);
}
