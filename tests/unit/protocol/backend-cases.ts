import type { BackendMessage } from '../../../src/protocol/index.js';
import { ascii, byte, cstr, frame, i16, i32 } from './bytes.js';

/** Each (B) message with bytes written out by hand from the PostgreSQL protocol docs. */
export const backendCases: readonly (readonly [string, BackendMessage, Buffer])[] = [
  ['AuthenticationOk', { type: 'AuthenticationOk' }, Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])],
  ['AuthenticationCleartextPassword', { type: 'AuthenticationCleartextPassword' }, Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])],
  ['AuthenticationMD5Password', { type: 'AuthenticationMD5Password', salt: Buffer.from([9, 8, 7, 6]) }, Buffer.from([0x52, 0, 0, 0, 12, 0, 0, 0, 5, 9, 8, 7, 6])],
  [
    'AuthenticationSASL',
    { type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] },
    frame('R', i32(10), cstr('SCRAM-SHA-256'), byte(0)),
  ],
  ['AuthenticationSASLContinue', { type: 'AuthenticationSASLContinue', data: ascii('r=abc,s=c2FsdA==,i=4096') }, frame('R', i32(11), ascii('r=abc,s=c2FsdA==,i=4096'))],
  ['AuthenticationSASLFinal', { type: 'AuthenticationSASLFinal', data: ascii('v=xyz') }, frame('R', i32(12), ascii('v=xyz'))],
  ['ParameterStatus', { type: 'ParameterStatus', name: 'client_encoding', value: 'UTF8' }, frame('S', cstr('client_encoding'), cstr('UTF8'))],
  ['BackendKeyData', { type: 'BackendKeyData', processId: 4242, secretKey: -559038737 }, Buffer.from([0x4b, 0, 0, 0, 12, 0, 0, 0x10, 0x92, 0xde, 0xad, 0xbe, 0xef])],
  ['ReadyForQuery I', { type: 'ReadyForQuery', status: 'I' }, Buffer.from([0x5a, 0, 0, 0, 5, 0x49])],
  ['ReadyForQuery T', { type: 'ReadyForQuery', status: 'T' }, Buffer.from([0x5a, 0, 0, 0, 5, 0x54])],
  ['ReadyForQuery E', { type: 'ReadyForQuery', status: 'E' }, Buffer.from([0x5a, 0, 0, 0, 5, 0x45])],
  [
    'RowDescription',
    {
      type: 'RowDescription',
      fields: [
        { name: 'id', tableOid: 16384, columnAttr: 1, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
        { name: 'naïve', tableOid: 0, columnAttr: 0, typeOid: 4_000_000_000, typeSize: -1, typeModifier: 68, format: 1 },
      ],
    },
    frame(
      'T',
      i16(2),
      cstr('id'), i32(16384), i16(1), i32(23), i16(4), i32(-1), i16(0),
      cstr('naïve'), i32(0), i16(0), i32(4_000_000_000), i16(-1), i32(68), i16(1),
    ),
  ],
  ['RowDescription empty', { type: 'RowDescription', fields: [] }, Buffer.from([0x54, 0, 0, 0, 6, 0, 0])],
  [
    'DataRow',
    { type: 'DataRow', values: [ascii('42'), null, Buffer.alloc(0), Buffer.from([0, 0xff])] },
    Buffer.from([0x44, 0, 0, 0, 26, 0, 4, 0, 0, 0, 2, 0x34, 0x32, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0xff]),
  ],
  ['DataRow no columns', { type: 'DataRow', values: [] }, Buffer.from([0x44, 0, 0, 0, 6, 0, 0])],
  ['CommandComplete', { type: 'CommandComplete', tag: 'INSERT 0 1' }, frame('C', cstr('INSERT 0 1'))],
  ['EmptyQueryResponse', { type: 'EmptyQueryResponse' }, Buffer.from([0x49, 0, 0, 0, 4])],
  [
    'ErrorResponse',
    {
      type: 'ErrorResponse',
      fields: { severity: 'ERROR', code: '23505', message: 'duplicate key', detail: 'Key (id)=(1) already exists.', constraint: 't_pkey', position: '8' },
    },
    frame(
      'E',
      ascii('S'), cstr('ERROR'), ascii('V'), cstr('ERROR'), ascii('C'), cstr('23505'), ascii('M'), cstr('duplicate key'),
      ascii('D'), cstr('Key (id)=(1) already exists.'), ascii('P'), cstr('8'), ascii('n'), cstr('t_pkey'), byte(0),
    ),
  ],
  [
    'NoticeResponse localized',
    { type: 'NoticeResponse', fields: { severity: 'HINWEIS', code: '00000', message: 'hallo' } },
    frame('N', ascii('S'), cstr('HINWEIS'), ascii('C'), cstr('00000'), ascii('M'), cstr('hallo'), byte(0)),
  ],
  ['ParseComplete', { type: 'ParseComplete' }, Buffer.from([0x31, 0, 0, 0, 4])],
  ['BindComplete', { type: 'BindComplete' }, Buffer.from([0x32, 0, 0, 0, 4])],
  ['CloseComplete', { type: 'CloseComplete' }, Buffer.from([0x33, 0, 0, 0, 4])],
  ['NoData', { type: 'NoData' }, Buffer.from([0x6e, 0, 0, 0, 4])],
  ['PortalSuspended', { type: 'PortalSuspended' }, Buffer.from([0x73, 0, 0, 0, 4])],
  ['ParameterDescription', { type: 'ParameterDescription', types: [23, 25, 0] }, frame('t', i16(3), i32(23), i32(25), i32(0))],
  ['CopyInResponse', { type: 'CopyInResponse', format: 0, columnFormats: [0, 0] }, frame('G', byte(0), i16(2), i16(0), i16(0))],
  ['CopyOutResponse', { type: 'CopyOutResponse', format: 1, columnFormats: [1] }, frame('H', byte(1), i16(1), i16(1))],
  ['CopyData', { type: 'CopyData', data: ascii('1\tabc\n') }, frame('d', ascii('1\tabc\n'))],
  ['CopyDone', { type: 'CopyDone' }, Buffer.from([0x63, 0, 0, 0, 4])],
  ['NotificationResponse', { type: 'NotificationResponse', processId: 77, channel: 'jobs', payload: '{"id":1}' }, frame('A', i32(77), cstr('jobs'), cstr('{"id":1}'))],
  [
    'NegotiateProtocolVersion',
    { type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized: ['_pq_.compression'] },
    frame('v', i32(0), i32(1), cstr('_pq_.compression')),
  ],
];
