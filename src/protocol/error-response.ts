import type { ErrorFields } from '../errors/pg-error.js';
import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend } from './message-types.js';

/*
 * 'E' ErrorResponse and 'N' NoticeResponse (B): a list of fields, each Byte1
 * field type + String value, ended by a single zero byte. Unknown field types
 * are skipped on decode, as the protocol asks of frontends.
 */
export const ERROR_RESPONSE = 0x45;
export const NOTICE_RESPONSE = 0x4e;

/** 'V': the severity never localized (PostgreSQL 9.6+); not kept in ErrorFields, re-derived on encode. */
const NONLOCALIZED_SEVERITY = 0x56;

type OptionalField = Exclude<keyof ErrorFields, 'severity' | 'code' | 'message'>;

/** Field type byte → ErrorFields key (letters as in the PostgreSQL docs, "Error and Notice Message Fields"). */
const FIELD_BY_LETTER: ReadonlyMap<number, keyof ErrorFields> = new Map<number, keyof ErrorFields>([
  [0x53, 'severity'], // 'S'
  [0x43, 'code'], // 'C'
  [0x4d, 'message'], // 'M'
  [0x44, 'detail'], // 'D'
  [0x48, 'hint'], // 'H'
  [0x50, 'position'], // 'P'
  [0x70, 'internalPosition'], // 'p'
  [0x71, 'internalQuery'], // 'q'
  [0x57, 'where'], // 'W'
  [0x73, 'schema'], // 's'
  [0x74, 'table'], // 't'
  [0x63, 'column'], // 'c'
  [0x64, 'dataType'], // 'd'
  [0x6e, 'constraint'], // 'n'
  [0x46, 'file'], // 'F'
  [0x4c, 'line'], // 'L'
  [0x52, 'routine'], // 'R'
]);

/** Order in which optional fields are written: the order PostgreSQL sends them. */
const OPTIONAL_FIELDS: readonly [number, OptionalField][] = [
  [0x44, 'detail'],
  [0x48, 'hint'],
  [0x50, 'position'],
  [0x70, 'internalPosition'],
  [0x71, 'internalQuery'],
  [0x57, 'where'],
  [0x73, 'schema'],
  [0x74, 'table'],
  [0x63, 'column'],
  [0x64, 'dataType'],
  [0x6e, 'constraint'],
  [0x46, 'file'],
  [0x4c, 'line'],
  [0x52, 'routine'],
];

/** Severities PostgreSQL sends untranslated in 'V'; a localized 'S' outside this set gets no 'V'. */
const ENGLISH_SEVERITIES = new Set(['ERROR', 'FATAL', 'PANIC', 'WARNING', 'NOTICE', 'DEBUG', 'INFO', 'LOG']);

/**
 * Decodes the field list of ErrorResponse / NoticeResponse (B). Every field is
 * kept verbatim. If 'S' is missing, 'V' stands in; a missing code or message
 * (which PostgreSQL always sends) decodes as XX000 / empty.
 */
export function decodeErrorFields(body: Buffer, what = 'ErrorResponse'): ErrorFields {
  const r = new BodyReader(body, what);
  const fields: { -readonly [K in keyof ErrorFields]?: string } = {};
  let nonLocalized: string | undefined;
  for (let type = r.byte(); type !== 0; type = r.byte()) {
    const value = r.cstring();
    const key = FIELD_BY_LETTER.get(type);
    if (key !== undefined) fields[key] = value;
    else if (type === NONLOCALIZED_SEVERITY) nonLocalized = value;
  }
  r.end();
  return {
    ...fields,
    severity: fields.severity ?? nonLocalized ?? 'ERROR',
    code: fields.code ?? 'XX000',
    message: fields.message ?? '',
  };
}

/** Appends the field list: S, V (when the severity is untranslated), C, M, then the optional fields present. */
export function writeErrorFields(w: BufferWriter, fields: ErrorFields): void {
  w.byte(0x53).cstring(fields.severity);
  if (ENGLISH_SEVERITIES.has(fields.severity)) w.byte(NONLOCALIZED_SEVERITY).cstring(fields.severity);
  w.byte(0x43).cstring(fields.code);
  w.byte(0x4d).cstring(fields.message);
  for (const [letter, key] of OPTIONAL_FIELDS) {
    const value = fields[key];
    if (value !== undefined) w.byte(letter).cstring(value);
  }
  w.byte(0);
}

/** Decodes an ErrorResponse (B) body. */
export function decodeErrorResponse(body: Buffer): Backend<'ErrorResponse'> {
  return { type: 'ErrorResponse', fields: decodeErrorFields(body, 'ErrorResponse') };
}

/** Decodes a NoticeResponse (B) body. */
export function decodeNoticeResponse(body: Buffer): Backend<'NoticeResponse'> {
  return { type: 'NoticeResponse', fields: decodeErrorFields(body, 'NoticeResponse') };
}

/** Appends an ErrorResponse or NoticeResponse (B). */
export function writeErrorResponse(w: BufferWriter, msg: Backend<'ErrorResponse' | 'NoticeResponse'>): void {
  const start = w.beginMessage(msg.type === 'ErrorResponse' ? ERROR_RESPONSE : NOTICE_RESPONSE);
  writeErrorFields(w, msg.fields);
  w.endMessage(start);
}
