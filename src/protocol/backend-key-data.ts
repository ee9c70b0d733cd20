import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/**
 * 'K' BackendKeyData (B): Int32 process id, Int32 secret key (protocol 3.0's
 * fixed 4-byte key). Both decode as signed 32-bit numbers; encoding accepts
 * signed or unsigned 32-bit values.
 */
export const BACKEND_KEY_DATA = 0x4b;

/** Decodes a BackendKeyData (B) body. */
export function decodeBackendKeyData(body: Buffer): Backend<'BackendKeyData'> {
  const r = new BodyReader(body, 'BackendKeyData');
  const processId = r.int32();
  const secretKey = r.int32();
  r.end();
  return { type: 'BackendKeyData', processId, secretKey };
}

/** Appends a BackendKeyData (B). */
export function writeBackendKeyData(w: BufferWriter, msg: Backend<'BackendKeyData'>): void {
  const start = w.beginMessage(BACKEND_KEY_DATA);
  w.int32(msg.processId).int32(msg.secretKey);
  w.endMessage(start);
}
