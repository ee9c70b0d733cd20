import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/** 'A' NotificationResponse (B): Int32 notifying process id, String channel, String payload. */
export const NOTIFICATION_RESPONSE = 0x41;

/** Decodes a NotificationResponse (B) body. */
export function decodeNotificationResponse(body: Buffer): Backend<'NotificationResponse'> {
  const r = new BodyReader(body, 'NotificationResponse');
  const processId = r.int32();
  const channel = r.cstring();
  const payload = r.cstring();
  r.end();
  return { type: 'NotificationResponse', processId, channel, payload };
}

/** Appends a NotificationResponse (B). */
export function writeNotificationResponse(w: BufferWriter, msg: Backend<'NotificationResponse'>): void {
  const start = w.beginMessage(NOTIFICATION_RESPONSE);
  w.int32(msg.processId).cstring(msg.channel).cstring(msg.payload);
  w.endMessage(start);
}
