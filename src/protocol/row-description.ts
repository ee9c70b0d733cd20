import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { FieldDescription } from './fields.js';
import type { Backend } from './message-types.js';

/*
 * 'T' RowDescription (B): Int16 n, then per field:
 *   String name, Int32 table OID (0 if none), Int16 column attribute number (0 if none),
 *   Int32 type OID, Int16 type size (negative = variable), Int32 type modifier, Int16 format code.
 * Fixed part per field: 4 + 2 + 4 + 2 + 4 + 2 = 18 bytes after the name's NUL.
 */
export const ROW_DESCRIPTION = 0x54;

/** Decodes a RowDescription (B) body. */
export function decodeRowDescription(body: Buffer): Backend<'RowDescription'> {
  const r = new BodyReader(body, 'RowDescription');
  const n = r.uint16();
  const fields: FieldDescription[] = new Array<FieldDescription>(n);
  for (let i = 0; i < n; i++) {
    fields[i] = {
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttr: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.format(),
    };
  }
  r.end();
  return { type: 'RowDescription', fields };
}

/** Appends a RowDescription (B). */
export function writeRowDescription(w: BufferWriter, msg: Backend<'RowDescription'>): void {
  const start = w.beginMessage(ROW_DESCRIPTION);
  w.count16(msg.fields.length, 'columns');
  for (const f of msg.fields) {
    w.cstring(f.name).int32(f.tableOid).int16(f.columnAttr).int32(f.typeOid).int16(f.typeSize).int32(f.typeModifier).int16(f.format);
  }
  w.endMessage(start);
}
