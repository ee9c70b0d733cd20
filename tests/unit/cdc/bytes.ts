/**
 * Byte builders for the cdc codec tests: expected bytes are written out by
 * hand from the PostgreSQL docs' layouts, independently of the decoder.
 */
export const u8 = (v: number): Buffer => Buffer.from([v]);
export const ch = (c: string): Buffer => Buffer.from(c, 'latin1');
export const i16 = (v: number): Buffer => Buffer.from([(v >> 8) & 0xff, v & 0xff]);
export const i32 = (v: number): Buffer => Buffer.from([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
/** Int64 from two 32-bit halves (high, low), as an LSN's X/Y. */
export const i64 = (high: number, low: number): Buffer => Buffer.concat([i32(high), i32(low)]);
export const str = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), u8(0)]);
export const msg = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
