import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Frontend } from './message-types.js';

/** 'E' Execute (F): String portal, Int32 maximum rows (0 = no limit). */
export const EXECUTE = 0x45;
/** 's' PortalSuspended (B): empty body; Execute stopped at its row limit. */
export const PORTAL_SUSPENDED = 0x73;

/** Decodes an Execute (F) body. */
export function decodeExecute(body: Buffer): Frontend<'Execute'> {
  const r = new BodyReader(body, 'Execute');
  const portal = r.cstring();
  const maxRows = r.int32();
  r.end();
  return { type: 'Execute', portal, maxRows };
}

/** Appends an Execute (F). */
export function writeExecute(w: BufferWriter, msg: Frontend<'Execute'>): void {
  const start = w.beginMessage(EXECUTE);
  w.cstring(msg.portal).int32(msg.maxRows);
  w.endMessage(start);
}
