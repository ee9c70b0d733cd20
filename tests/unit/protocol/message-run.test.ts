import { describe, expect, it } from 'vitest';
import { decodeBackend, MessageReader, splitMessages } from '../../../src/protocol/index.js';
import { backendCases } from './backend-cases.js';
import { ascii, frame, i16, i32, thrownCode } from './bytes.js';

const D = 0x44;

/** A DataRow built by hand: one text column per value (null = NULL). */
function dataRow(...values: (string | null)[]): Buffer {
  return frame('D', i16(values.length), ...values.map((v) => (v === null ? i32(-1) : Buffer.concat([i32(Buffer.byteLength(v)), Buffer.from(v)]))));
}

const rows = [dataRow('1', 'one'), dataRow(null, ''), dataRow('x'.repeat(300)), dataRow('4', null, 'four')];
const complete = frame('C', ascii('SELECT 4\0'));
const ready = frame('Z', ascii('I'));
const stream = Buffer.concat([frame('T', i16(0)), ...rows, frame('N', ascii('SWARNING\0C01000\0Mmid\0\0')), dataRow('5'), complete, ready]);

/** Reads `reader` as a relay does: DataRow runs as bytes, anything else as a message (re-framed here to compare bytes). */
function relayRead(reader: MessageReader, maxBytes: number): { bytes: Buffer[]; runs: number; rows: number } {
  const bytes: Buffer[] = [];
  let runs = 0;
  let count = 0;
  for (;;) {
    const run = reader.nextRun(D, maxBytes);
    if (run !== null) {
      bytes.push(run.bytes);
      runs++;
      count += run.count;
      continue;
    }
    const msg = reader.next();
    if (msg === null) return { bytes, runs, rows: count };
    bytes.push(Buffer.concat([ascii(msg.code), i32(msg.body.length + 4), msg.body]));
    if (msg.code === 'D') count++;
  }
}

describe('MessageReader.nextRun', () => {
  it('returns the whole DataRows of one chunk as one view of the received bytes, headers included', () => {
    const reader = new MessageReader();
    const chunk = Buffer.concat([...rows, complete]);
    reader.push(chunk);
    const run = reader.nextRun(D, 1 << 20)!;
    expect(run.count).toBe(4);
    expect(run.bytes.equals(Buffer.concat(rows))).toBe(true);
    // A view, not a copy: relaying it costs no copy of the rows.
    expect(run.bytes.buffer).toBe(chunk.buffer);
    expect(reader.nextRun(D, 1 << 20)).toBeNull();
    expect(decodeBackend(reader.next()!)).toEqual({ type: 'CommandComplete', tag: 'SELECT 4' });
    expect(reader.buffered).toBe(0);
  });

  it('gives back the same bytes however the stream is split (every cut point, every pair of cut points)', () => {
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b += 7) {
        const reader = new MessageReader();
        const out: Buffer[] = [];
        let rowCount = 0;
        for (const piece of [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]) {
          reader.push(piece);
          const got = relayRead(reader, 1 << 20);
          out.push(...got.bytes);
          rowCount += got.rows;
        }
        expect(Buffer.concat(out).equals(stream)).toBe(true);
        expect(rowCount).toBe(5);
        expect(reader.buffered).toBe(0);
      }
    }
  });

  it('stops a run before maxBytes, but always returns a first message larger than that', () => {
    const reader = new MessageReader();
    reader.push(Buffer.concat(rows));
    const first = reader.nextRun(D, 1)!;
    expect(first.count).toBe(1);
    expect(first.bytes.equals(rows[0]!)).toBe(true);
    const next = reader.nextRun(D, rows[1]!.length + rows[2]!.length)!;
    expect(next.count).toBe(2);
    expect(next.bytes.equals(Buffer.concat([rows[1]!, rows[2]!]))).toBe(true);
  });

  it('leaves a message with a bad length word to next(), which refuses it (08P01)', () => {
    const reader = new MessageReader();
    reader.push(Buffer.concat([rows[0]!, ascii('D'), i32(2), i16(0)]));
    expect(reader.nextRun(D, 1 << 20)!.count).toBe(1);
    expect(reader.nextRun(D, 1 << 20)).toBeNull();
    expect(thrownCode(() => reader.next())).toBe('08P01');
  });

  it('returns null for another message type and for an incomplete message', () => {
    const reader = new MessageReader();
    const all = Buffer.concat(backendCases.map(([, , bytes]) => bytes).filter((b) => b[0] !== D));
    reader.push(all);
    expect(reader.nextRun(D, 1 << 20)).toBeNull();
    const partial = new MessageReader();
    partial.push(rows[2]!.subarray(0, rows[2]!.length - 1));
    expect(partial.nextRun(D, 1 << 20)).toBeNull();
    expect(partial.next()).toBeNull();
  });
});

describe('splitMessages', () => {
  const runs = [Buffer.concat([rows[0]!, rows[1]!]), rows[2]!, Buffer.concat([rows[3]!, dataRow('5')])];

  it('cuts runs after every message count, head and tail together giving back the bytes in order', () => {
    const all = Buffer.concat(runs);
    const single = [rows[0]!, rows[1]!, rows[2]!, rows[3]!, dataRow('5')];
    for (let n = 0; n <= 5; n++) {
      const { head, tail } = splitMessages(runs, n);
      expect(Buffer.concat(head).equals(Buffer.concat(single.slice(0, n)))).toBe(true);
      expect(Buffer.concat(tail).equals(Buffer.concat(single.slice(n)))).toBe(true);
      expect(Buffer.concat([...head, ...tail]).equals(all)).toBe(true);
    }
  });

  it('refuses to cut past the end or inside a message (08P01)', () => {
    expect(thrownCode(() => splitMessages(runs, 6))).toBe('08P01');
    expect(thrownCode(() => splitMessages([rows[2]!.subarray(0, 20)], 1))).toBe('08P01');
  });
});
