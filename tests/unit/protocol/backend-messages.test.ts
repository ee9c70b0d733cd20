import { describe, expect, it } from 'vitest';
import type { BackendMessage } from '../../../src/protocol/index.js';
import { decodeBackend, encodeBackend, encodeDataRow, encodeMany, MessageReader } from '../../../src/protocol/index.js';
import { ascii, byte, cstr, frame } from './bytes.js';
import { backendCases } from './backend-cases.js';

function raw(bytes: Buffer): { code: string; body: Buffer } {
  return { code: String.fromCharCode(bytes[0]!), body: bytes.subarray(5) };
}

describe('(B) messages', () => {
  it.each(backendCases)('%s encodes to the documented bytes', (_, msg, bytes) => {
    expect(encodeBackend(msg)).toEqual(bytes);
  });

  it.each(backendCases)('%s decodes from the documented bytes', (_, msg, bytes) => {
    expect(decodeBackend(raw(bytes))).toEqual(msg);
  });

  it('decodes ErrorResponse fields by letter, skips unknown letters, keeps every known one', () => {
    const letters = 'SCMDHPpqWstcdnFLR';
    const pieces = [...letters].map((l) => Buffer.concat([ascii(l), cstr(`v${l}`)]));
    const bytes = frame('E', ascii('V'), cstr('ERROR'), ascii('Z'), cstr('future field'), ...pieces, byte(0));
    expect(decodeBackend(raw(bytes))).toEqual({
      type: 'ErrorResponse',
      fields: {
        severity: 'vS', code: 'vC', message: 'vM', detail: 'vD', hint: 'vH', position: 'vP', internalPosition: 'vp',
        internalQuery: 'vq', where: 'vW', schema: 'vs', table: 'vt', column: 'vc', dataType: 'vd', constraint: 'vn',
        file: 'vF', line: 'vL', routine: 'vR',
      },
    });
  });

  it('uses the non-localized severity when S is missing', () => {
    const bytes = frame('E', ascii('V'), cstr('FATAL'), ascii('C'), cstr('57P01'), ascii('M'), cstr('bye'), byte(0));
    expect(decodeBackend(raw(bytes))).toEqual({ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '57P01', message: 'bye' } });
  });

  it('encodeDataRow matches the generic encoder', () => {
    const values = [ascii('x'), null, Buffer.alloc(300, 1)];
    expect(encodeDataRow(values)).toEqual(encodeBackend({ type: 'DataRow', values }));
  });

  it('encodeDataRow produces exactly the row bytes (no slack)', () => {
    const row = encodeDataRow([ascii('abc')]);
    expect(row.length).toBe(1 + 4 + 2 + 4 + 3);
  });

  it('encodeMany concatenates in order', () => {
    const all = encodeMany(backendCases.map(([, m]) => m));
    expect(all).toEqual(Buffer.concat(backendCases.map(([, , b]) => b)));
  });

  it('decode(encode(x)) round-trips every case and a large row', () => {
    const big: BackendMessage = { type: 'DataRow', values: Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? null : Buffer.alloc(i, i & 0xff))) };
    for (const msg of [...backendCases.map(([, m]) => m), big]) {
      const reader = new MessageReader();
      reader.push(encodeBackend(msg));
      expect(decodeBackend(reader.next()!)).toEqual(msg);
      expect(reader.buffered).toBe(0);
    }
  });

  it('refuses a string containing NUL with 22021 instead of corrupting the frame', () => {
    expect(() => encodeBackend({ type: 'CommandComplete', tag: 'SELECT\u00001' })).toThrow(expect.objectContaining({ code: '22021' }));
  });
});
