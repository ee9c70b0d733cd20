import { describe, expect, it } from 'vitest';
import type { FrontendMessage } from '../../../src/protocol/index.js';
import { decodeFrontend, encodeFrontend, encodeFrontendMany, MessageReader } from '../../../src/protocol/index.js';
import { cstr, frame, i16, i32, thrownCode } from './bytes.js';
import { frontendCases } from './frontend-cases.js';

function raw(bytes: Buffer): { code: string; body: Buffer } {
  return { code: String.fromCharCode(bytes[0]!), body: bytes.subarray(5) };
}

describe('(F) messages', () => {
  it.each(frontendCases)('%s encodes to the documented bytes', (_, msg, bytes) => {
    expect(encodeFrontend(msg)).toEqual(bytes);
  });

  it.each(frontendCases)('%s decodes from the documented bytes', (_, msg, bytes, kind) => {
    expect(decodeFrontend(raw(bytes), kind)).toEqual(msg);
  });

  it('reads "p" as a PasswordMessage by default', () => {
    expect(decodeFrontend(raw(frame('p', cstr('pw'))))).toEqual({ type: 'PasswordMessage', password: 'pw' });
  });

  it('decodes FunctionCall so the server can refuse it', () => {
    expect(decodeFrontend(raw(frame('F', i32(1234), i16(0), i16(0), i16(0))))).toEqual({ type: 'FunctionCall' });
    expect(thrownCode(() => encodeFrontend({ type: 'FunctionCall' }))).toBe('0A000');
  });

  it('encodeFrontendMany concatenates an extended-query batch', () => {
    const batch = frontendCases.filter(([name]) => ['Parse', 'Bind', 'Describe P', 'Execute', 'Sync'].includes(name));
    expect(encodeFrontendMany(batch.map(([, m]) => m))).toEqual(Buffer.concat(batch.map(([, , b]) => b)));
  });

  it('decode(encode(x)) round-trips every case, including a Bind with many large parameters', () => {
    const bigBind: FrontendMessage = {
      type: 'Bind',
      portal: '',
      statement: 'big',
      paramFormats: [1],
      params: Array.from({ length: 300 }, (_, i) => (i % 5 === 0 ? null : Buffer.alloc(i * 3, i & 0xff))),
      resultFormats: [0, 1, 0],
    };
    for (const [, msg, , kind] of [...frontendCases, ['big', bigBind, Buffer.alloc(0), undefined] as const]) {
      const reader = new MessageReader();
      reader.push(encodeFrontend(msg));
      expect(decodeFrontend(reader.next()!, kind)).toEqual(msg);
      expect(reader.buffered).toBe(0);
    }
  });

  it('refuses more than 65535 parameters (08P01) rather than wrapping the count', () => {
    const params = Array.from({ length: 65536 }, () => null);
    expect(thrownCode(() => encodeFrontend({ type: 'Bind', portal: '', statement: '', paramFormats: [], params, resultFormats: [] }))).toBe('08P01');
  });

  it('refuses SQL containing NUL with 22021', () => {
    expect(thrownCode(() => encodeFrontend({ type: 'Query', sql: 'SELECT 1\u0000; DROP TABLE t' }))).toBe('22021');
  });
});
