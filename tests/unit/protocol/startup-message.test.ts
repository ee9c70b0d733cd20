import { describe, expect, it } from 'vitest';
import type { StartupPacket } from '../../../src/protocol/index.js';
import { decodeStartup, encodeStartup, MessageReader } from '../../../src/protocol/index.js';
import { cstr, i32, thrownCode } from './bytes.js';

function untyped(...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([i32(b.length + 4), b]);
}

const cases: readonly (readonly [string, StartupPacket, Buffer])[] = [
  ['SSLRequest', { type: 'SSLRequest' }, Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])],
  ['GSSENCRequest', { type: 'GSSENCRequest' }, Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])],
  ['CancelRequest', { type: 'CancelRequest', processId: 1234, secretKey: -2 }, Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x04, 0xd2, 0xff, 0xff, 0xff, 0xfe])],
  [
    'StartupMessage 3.0',
    { type: 'StartupMessage', major: 3, minor: 0, parameters: { user: 'app', database: 'app', application_name: 'psql' } },
    untyped(Buffer.from([0, 3, 0, 0]), cstr('user'), cstr('app'), cstr('database'), cstr('app'), cstr('application_name'), cstr('psql'), Buffer.from([0])),
  ],
  ['StartupMessage no parameters', { type: 'StartupMessage', major: 3, minor: 0, parameters: {} }, Buffer.from([0, 0, 0, 9, 0, 3, 0, 0, 0])],
  ['StartupMessage 3.2', { type: 'StartupMessage', major: 3, minor: 2, parameters: { user: 'u' } }, untyped(Buffer.from([0, 3, 0, 2]), cstr('user'), cstr('u'), Buffer.from([0]))],
];

describe('startup packets (F)', () => {
  it.each(cases)('%s encodes to the documented bytes', (_, packet, bytes) => {
    expect(encodeStartup(packet)).toEqual(bytes);
  });

  it.each(cases)('%s decodes from the documented bytes via MessageReader.nextStartup', (_, packet, bytes) => {
    const reader = new MessageReader();
    reader.push(bytes);
    expect(decodeStartup(reader.nextStartup()!)).toEqual(packet);
    expect(reader.buffered).toBe(0);
  });

  it('decodes another major version with its numbers so the server can refuse it', () => {
    // Protocol 2.0 packets have a fixed layout; only the version is read.
    const body = Buffer.concat([Buffer.from([0, 2, 0, 0]), Buffer.alloc(292)]);
    expect(decodeStartup(body)).toEqual({ type: 'StartupMessage', major: 2, minor: 0, parameters: {} });
    expect(decodeStartup(Buffer.from([0x12, 0x34, 0, 7]))).toEqual({ type: 'StartupMessage', major: 0x1234, minor: 7, parameters: {} });
  });

  it('keeps a "__proto__" parameter as an ordinary key', () => {
    const p = decodeStartup(Buffer.concat([Buffer.from([0, 3, 0, 0]), cstr('__proto__'), cstr('x'), Buffer.from([0])]));
    expect(p.type === 'StartupMessage' && Object.keys(p.parameters)).toEqual(['__proto__']);
  });

  it.each([
    ['missing final terminator', Buffer.concat([Buffer.from([0, 3, 0, 0]), cstr('user'), cstr('app')])],
    ['value without NUL', Buffer.concat([Buffer.from([0, 3, 0, 0]), cstr('user'), Buffer.from('app')])],
    ['bytes after terminator', Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from([0, 1])])],
    ['SSLRequest with extra bytes', Buffer.from([0x04, 0xd2, 0x16, 0x2f, 0])],
    ['short CancelRequest', Buffer.from([0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1])],
    ['no version', Buffer.from([0, 3])],
  ])('refuses %s with 08P01', (_, body) => {
    expect(thrownCode(() => decodeStartup(body))).toBe('08P01');
  });

  it('refuses startup lengths below 8 or above 10000 as soon as the length word arrives', () => {
    const tooShort = new MessageReader();
    tooShort.push(i32(7));
    expect(thrownCode(() => tooShort.nextStartup())).toBe('08P01');
    const tooLong = new MessageReader();
    tooLong.push(i32(10_001));
    expect(thrownCode(() => tooLong.nextStartup())).toBe('08P01');
  });
});
