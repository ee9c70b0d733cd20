import { BodyReader } from './body-reader.js';
import { BufferWriter } from './buffer-writer.js';
import type { StartupPacket } from './messages.js';

/*
 * Startup-phase packets (F) have no type byte:
 *   Int32 length (counts itself) | Int32 code | body
 * The code is a protocol version (major << 16 | minor) or one of the request
 * codes below, which PostgreSQL chose as versions 1234.5678–1234.5680 so no
 * real version collides with them.
 */

/** Protocol 3.0: 3 << 16 | 0. Followed by name/value String pairs and a final NUL. */
export const PROTOCOL_3_0 = 196_608;
/** SSLRequest: 1234 << 16 | 5679; the packet is exactly 8 bytes. */
export const SSL_REQUEST_CODE = 80_877_103;
/** GSSENCRequest: 1234 << 16 | 5680; exactly 8 bytes. */
export const GSSENC_REQUEST_CODE = 80_877_104;
/** CancelRequest: 1234 << 16 | 5678, then Int32 process id and Int32 secret key; 16 bytes. */
export const CANCEL_REQUEST_CODE = 80_877_102;

/**
 * Decodes a startup-phase packet from its body (the bytes after the length
 * word). A version other than 3.x decodes as a StartupMessage with that
 * major/minor and no parameters, so the server can refuse it by name; the
 * parameter layout of other versions is not parsed. Malformed packets throw
 * 08P01.
 */
export function decodeStartup(body: Buffer): StartupPacket {
  const r = new BodyReader(body, 'startup packet');
  const version = r.int32();
  switch (version) {
    case SSL_REQUEST_CODE:
      r.end();
      return { type: 'SSLRequest' };
    case GSSENC_REQUEST_CODE:
      r.end();
      return { type: 'GSSENCRequest' };
    case CANCEL_REQUEST_CODE: {
      const processId = r.int32();
      const secretKey = r.int32();
      r.end();
      return { type: 'CancelRequest', processId, secretKey };
    }
  }
  const major = version >>> 16;
  const minor = version & 0xffff;
  if (major !== 3) return { type: 'StartupMessage', major, minor, parameters: {} };
  const entries: [string, string][] = [];
  // Pairs of Strings end with one empty name: the packet's last byte must be that NUL.
  while (true) {
    if (r.remaining === 0) throw r.fail('expected terminator as last byte');
    const name = r.cstring();
    if (name === '') break;
    entries.push([name, r.cstring()]);
  }
  r.end();
  // fromEntries defines own properties, so a name like "__proto__" stays an ordinary key.
  return { type: 'StartupMessage', major, minor, parameters: Object.fromEntries(entries) };
}

/** Encodes a startup-phase packet, length word included. */
export function encodeStartup(p: StartupPacket): Buffer {
  const w = new BufferWriter(p.type === 'StartupMessage' ? 128 : 16);
  const start = w.beginUntyped();
  switch (p.type) {
    case 'SSLRequest':
      w.int32(SSL_REQUEST_CODE);
      break;
    case 'GSSENCRequest':
      w.int32(GSSENC_REQUEST_CODE);
      break;
    case 'CancelRequest':
      w.int32(CANCEL_REQUEST_CODE).int32(p.processId).int32(p.secretKey);
      break;
    case 'StartupMessage':
      w.int32(((p.major & 0xffff) << 16) | (p.minor & 0xffff));
      for (const [name, value] of Object.entries(p.parameters)) w.cstring(name).cstring(value);
      w.byte(0);
      break;
  }
  return w.endMessage(start).finish();
}
