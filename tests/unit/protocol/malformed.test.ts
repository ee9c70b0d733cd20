import { describe, expect, it } from 'vitest';
import type { PasswordKind } from '../../../src/protocol/index.js';
import { decodeBackend, decodeFrontend } from '../../../src/protocol/index.js';
import { backendCases } from './backend-cases.js';
import { ascii, byte, cstr, frame, i16, i32, thrownCode } from './bytes.js';
import { frontendCases } from './frontend-cases.js';

/** Messages whose body ends in free-form bytes: cutting or extending them still leaves a valid message. */
const OPEN_ENDED = new Set(['AuthenticationSASLContinue', 'AuthenticationSASLFinal', 'CopyData', 'SASLResponse']);

function raw(bytes: Buffer, body = bytes.subarray(5)): { code: string; body: Buffer } {
  return { code: String.fromCharCode(bytes[0]!), body };
}

describe('malformed input', () => {
  const backend = backendCases.filter(([name]) => !OPEN_ENDED.has(name));
  const frontend = frontendCases.filter(([name]) => !OPEN_ENDED.has(name));

  it.each(backend)('(B) %s: every truncated body and a body with an extra byte throw 08P01', (_, __, bytes) => {
    const body = bytes.subarray(5);
    for (let len = 0; len < body.length; len++) expect(thrownCode(() => decodeBackend(raw(bytes, body.subarray(0, len))))).toBe('08P01');
    expect(thrownCode(() => decodeBackend(raw(bytes, Buffer.concat([body, Buffer.from([0])]))))).toBe('08P01');
  });

  it.each(frontend)('(F) %s: every truncated body and a body with an extra byte throw 08P01', (_, __, bytes, kind) => {
    const body = bytes.subarray(5);
    for (let len = 0; len < body.length; len++) expect(thrownCode(() => decodeFrontend(raw(bytes, body.subarray(0, len)), kind))).toBe('08P01');
    expect(thrownCode(() => decodeFrontend(raw(bytes, Buffer.concat([body, Buffer.from([0])])), kind))).toBe('08P01');
  });

  it.each([
    ['unknown type byte', frame('z')],
    ['Describe target other than S/P', frame('D', ascii('X'), cstr('n'))],
    ['Close target other than S/P', frame('C', ascii('s'), cstr('n'))],
    ['Bind parameter length below -1', frame('B', cstr(''), cstr(''), i16(0), i16(1), i32(-2), i16(0))],
    ['Bind parameter length past the end', frame('B', cstr(''), cstr(''), i16(0), i16(1), i32(100), ascii('ab'), i16(0))],
    ['Bind format code 2', frame('B', cstr(''), cstr(''), i16(1), i16(2), i16(0), i16(0))],
    ['Bind parameter count past the end', frame('B', cstr(''), cstr(''), i16(0), i16(500))],
    ['Parse type count past the end', frame('P', cstr(''), cstr('SELECT 1'), i16(3), i32(23))],
    ['Query without NUL', frame('Q', ascii('SELECT 1'))],
    ['Sync with a body', frame('S', byte(0))],
    ['SASLInitialResponse length below -1', frame('p', cstr('SCRAM-SHA-256'), i32(-5))],
    ['SASLInitialResponse length past the end', frame('p', cstr('SCRAM-SHA-256'), i32(40), ascii('n,,'))],
  ])('(F) %s throws 08P01', (name, bytes) => {
    const kind: PasswordKind | undefined = name.startsWith('SASLInitial') ? 'saslInitial' : undefined;
    expect(thrownCode(() => decodeFrontend(raw(bytes), kind))).toBe('08P01');
  });

  it.each([
    ['unknown type byte', frame('W', byte(0), i16(0))],
    ['ReadyForQuery status X', frame('Z', ascii('X'))],
    ['DataRow value length below -1', frame('D', i16(1), i32(-7))],
    ['DataRow count past the end', frame('D', i16(3), i32(1), ascii('a'))],
    ['DataRow value past the end', frame('D', i16(1), i32(10), ascii('abc'))],
    ['RowDescription format code 3', frame('T', i16(1), cstr('a'), i32(0), i16(0), i32(23), i16(4), i32(-1), i16(3))],
    ['Authentication method GSS', frame('R', i32(7))],
    ['Authentication method unknown', frame('R', i32(99))],
    ['AuthenticationMD5Password short salt', frame('R', i32(5), Buffer.from([1, 2]))],
    ['ErrorResponse without terminator', frame('E', ascii('S'), cstr('ERROR'))],
    ['CopyInResponse overall format 2', frame('G', byte(2), i16(0))],
    ['NegotiateProtocolVersion negative count', frame('v', i32(0), i32(-1))],
    ['NoData with a body', frame('n', byte(1))],
  ])('(B) %s throws 08P01', (_, bytes) => {
    expect(thrownCode(() => decodeBackend(raw(bytes)))).toBe('08P01');
  });
});
