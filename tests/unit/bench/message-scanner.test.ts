import { describe, expect, it } from 'vitest';
import { MessageScanner } from '../../../src/bench/raw-pg-client.js';

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

// RowDescription-ish body, two DataRows, CommandComplete, ReadyForQuery.
const STREAM = Buffer.concat([
  msg('T', Buffer.from('fields')),
  msg('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x31])),
  msg('D', Buffer.from([0, 1, 0, 0, 0, 2, 0x31, 0x32])),
  msg('C', Buffer.from('SELECT 2\0')),
  msg('Z', Buffer.from('I')),
]);

function scan(chunks: Buffer[]): [string, string | null][] {
  const seen: [string, string | null][] = [];
  const scanner = new MessageScanner((type, body) => seen.push([String.fromCharCode(type), body === null ? null : body.toString('latin1')]));
  for (const c of chunks) scanner.push(c);
  return seen;
}

const EXPECTED: [string, string | null][] = [
  ['T', 'fields'],
  ['D', null],
  ['D', null],
  ['C', 'SELECT 2\0'],
  ['Z', 'I'],
];

describe('MessageScanner', () => {
  it('splits a stream into messages and drops DataRow bodies', () => {
    expect(scan([STREAM])).toEqual(EXPECTED);
  });

  it('gives the same messages wherever the stream is cut', () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      expect(scan([STREAM.subarray(0, cut), STREAM.subarray(cut)])).toEqual(EXPECTED);
    }
  });

  it('handles one byte at a time and empty bodies', () => {
    const withEmpty = Buffer.concat([msg('1', Buffer.alloc(0)), STREAM]);
    const bytes = [...withEmpty].map((b) => Buffer.from([b]));
    expect(scan(bytes)).toEqual([['1', ''], ...EXPECTED]);
  });
});
