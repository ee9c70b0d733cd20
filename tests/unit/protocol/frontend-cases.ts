import type { FrontendMessage, PasswordKind } from '../../../src/protocol/index.js';
import { ascii, cstr, frame, i16, i32 } from './bytes.js';

/** Each (F) message with bytes written out by hand from the PostgreSQL protocol docs; the third column says how to read 'p'. */
const table: readonly (readonly [string, FrontendMessage, Buffer, PasswordKind?])[] = [
  ['Query', { type: 'Query', sql: 'SELECT 1' }, Buffer.from([0x51, 0, 0, 0, 13, ...ascii('SELECT 1'), 0])],
  ['Query empty', { type: 'Query', sql: '' }, Buffer.from([0x51, 0, 0, 0, 5, 0])],
  ['Query unicode', { type: 'Query', sql: "SELECT 'ß€😀'" }, frame('Q', cstr("SELECT 'ß€😀'"))],
  [
    'Parse',
    { type: 'Parse', name: 's1', sql: 'SELECT $1::int, $2', paramTypes: [23, 0] },
    frame('P', cstr('s1'), cstr('SELECT $1::int, $2'), i16(2), i32(23), i32(0)),
  ],
  ['Parse unnamed', { type: 'Parse', name: '', sql: 'SELECT 1', paramTypes: [] }, frame('P', cstr(''), cstr('SELECT 1'), i16(0))],
  [
    'Bind',
    {
      type: 'Bind',
      portal: 'p1',
      statement: 's1',
      paramFormats: [0, 1],
      params: [ascii('42'), null, Buffer.from([0, 0, 0, 7])],
      resultFormats: [1],
    },
    frame('B', cstr('p1'), cstr('s1'), i16(2), i16(0), i16(1), i16(3), i32(2), ascii('42'), i32(-1), i32(4), Buffer.from([0, 0, 0, 7]), i16(1), i16(1)),
  ],
  [
    'Bind minimal',
    { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
    Buffer.from([0x42, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
  ],
  ['Describe S', { type: 'Describe', target: 'S', name: 's1' }, Buffer.from([0x44, 0, 0, 0, 8, 0x53, 0x73, 0x31, 0])],
  ['Describe P', { type: 'Describe', target: 'P', name: '' }, Buffer.from([0x44, 0, 0, 0, 6, 0x50, 0])],
  ['Execute', { type: 'Execute', portal: '', maxRows: 0 }, Buffer.from([0x45, 0, 0, 0, 9, 0, 0, 0, 0, 0])],
  ['Execute limited', { type: 'Execute', portal: 'p', maxRows: 100 }, frame('E', cstr('p'), i32(100))],
  ['Close S', { type: 'Close', target: 'S', name: 's1' }, Buffer.from([0x43, 0, 0, 0, 8, 0x53, 0x73, 0x31, 0])],
  ['Close P', { type: 'Close', target: 'P', name: 'p' }, Buffer.from([0x43, 0, 0, 0, 7, 0x50, 0x70, 0])],
  ['Sync', { type: 'Sync' }, Buffer.from([0x53, 0, 0, 0, 4])],
  ['Flush', { type: 'Flush' }, Buffer.from([0x48, 0, 0, 0, 4])],
  ['Terminate', { type: 'Terminate' }, Buffer.from([0x58, 0, 0, 0, 4])],
  ['CopyData', { type: 'CopyData', data: ascii('a,b\n') }, frame('d', ascii('a,b\n'))],
  ['CopyDone', { type: 'CopyDone' }, Buffer.from([0x63, 0, 0, 0, 4])],
  ['CopyFail', { type: 'CopyFail', message: 'aborted' }, frame('f', cstr('aborted'))],
  ['PasswordMessage', { type: 'PasswordMessage', password: 'md5abc' }, frame('p', cstr('md5abc')), 'password'],
  [
    'SASLInitialResponse',
    { type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: ascii('n,,n=,r=abc') },
    frame('p', cstr('SCRAM-SHA-256'), i32(11), ascii('n,,n=,r=abc')),
    'saslInitial',
  ],
  [
    'SASLInitialResponse without data',
    { type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: null },
    frame('p', cstr('SCRAM-SHA-256'), i32(-1)),
    'saslInitial',
  ],
  ['SASLResponse', { type: 'SASLResponse', data: ascii('c=biws,r=abc,p=xyz') }, frame('p', ascii('c=biws,r=abc,p=xyz')), 'sasl'],
];

export const frontendCases: readonly (readonly [string, FrontendMessage, Buffer, PasswordKind | undefined])[] = table.map(([name, msg, bytes, kind]) => [name, msg, bytes, kind] as const);
