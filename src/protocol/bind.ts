import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { FormatCode } from './fields.js';
import type { Frontend } from './message-types.js';

/*
 * 'B' Bind (F):
 *   String portal, String statement,
 *   Int16 n, Int16[n] parameter format codes (0 → all text, 1 → one for all, n → one each),
 *   Int16 n, then per parameter Int32 length (-1 = NULL) and Byte[length] value,
 *   Int16 n, Int16[n] result format codes (same 0 / 1 / n rule).
 */
export const BIND = 0x42;
/** '2' BindComplete (B): empty body. */
export const BIND_COMPLETE = 0x32;

/**
 * Decodes a Bind (F) body. Parameter values are views into the body (no
 * copy), so they keep the whole received chunk alive: copy values that are
 * stored beyond the current message (e.g. in a long-lived portal). Format-code counts are kept as sent; checking them against the
 * statement is the session's job, as in PostgreSQL.
 */
export function decodeBind(body: Buffer): Frontend<'Bind'> {
  const r = new BodyReader(body, 'Bind');
  const portal = r.cstring();
  const statement = r.cstring();
  const paramFormats = readFormats(r);
  const n = r.uint16();
  const params: (Buffer | null)[] = new Array<Buffer | null>(n);
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    if (len < -1) throw r.fail(`parameter ${i + 1} has negative length ${len}`);
    params[i] = len === -1 ? null : r.bytes(len);
  }
  const resultFormats = readFormats(r);
  r.end();
  return { type: 'Bind', portal, statement, paramFormats, params, resultFormats };
}

function readFormats(r: BodyReader): FormatCode[] {
  const n = r.uint16();
  const formats: FormatCode[] = new Array<FormatCode>(n);
  for (let i = 0; i < n; i++) formats[i] = r.format();
  return formats;
}

/** Appends a Bind (F). */
export function writeBind(w: BufferWriter, msg: Frontend<'Bind'>): void {
  const start = w.beginMessage(BIND);
  w.cstring(msg.portal).cstring(msg.statement);
  w.count16(msg.paramFormats.length, 'parameter format codes');
  for (const f of msg.paramFormats) w.int16(f);
  w.count16(msg.params.length, 'parameters');
  for (const p of msg.params) {
    if (p === null) w.int32(-1);
    else w.int32(p.length).bytes(p);
  }
  w.count16(msg.resultFormats.length, 'result format codes');
  for (const f of msg.resultFormats) w.int16(f);
  w.endMessage(start);
}
