import { describe, expect, it } from 'vitest';
import type { RawMessage } from '../../../src/protocol/index.js';
import { decodeBackend, decodeFrontend, decodeStartup, DEFAULT_MAX_MESSAGE_SIZE, MessageReader } from '../../../src/protocol/index.js';
import { backendCases } from './backend-cases.js';
import { ascii, cstr, frame, i32, thrownCode } from './bytes.js';
import { frontendCases } from './frontend-cases.js';

function drain(reader: MessageReader): RawMessage[] {
  const out: RawMessage[] = [];
  for (let m = reader.next(); m !== null; m = reader.next()) out.push(m);
  return out;
}

/** Frames as comparable strings: type byte and body in hex. */
function fingerprint(msgs: readonly RawMessage[]): string[] {
  return msgs.map((m) => `${m.code}:${m.body.toString('hex')}`);
}

const backendStream = Buffer.concat(backendCases.map(([, , bytes]) => bytes));
// 'p' messages are left out: how to read them depends on the authentication step.
const frontendTyped = frontendCases.filter(([, , , kind]) => kind === undefined);
const startup = Buffer.concat([i32(4 + 4 + 5 + 4 + 1), Buffer.from([0, 3, 0, 0]), cstr('user'), cstr('app'), Buffer.from([0])]);
const frontendStream = Buffer.concat([startup, ...frontendTyped.map(([, , bytes]) => bytes)]);

describe('MessageReader', () => {
  it('yields the same (B) messages when the stream is split at every byte boundary', () => {
    const expected = backendCases.map(([, msg]) => msg);
    for (let cut = 0; cut <= backendStream.length; cut++) {
      const reader = new MessageReader();
      reader.push(backendStream.subarray(0, cut));
      const got = drain(reader);
      reader.push(backendStream.subarray(cut));
      got.push(...drain(reader));
      expect(got.map(decodeBackend)).toEqual(expected);
      expect(reader.buffered).toBe(0);
    }
  });

  it('yields the same (B) frames for every pair of cut points (three chunks)', () => {
    const stream = backendStream.subarray(0, 200);
    const whole = new MessageReader();
    whole.push(stream);
    const expected = fingerprint(drain(whole));
    const rest = whole.buffered;
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b++) {
        const reader = new MessageReader();
        const got: RawMessage[] = [];
        for (const piece of [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]) {
          reader.push(piece);
          got.push(...drain(reader));
        }
        expect(fingerprint(got)).toEqual(expected);
        expect(reader.buffered).toBe(rest);
      }
    }
  });

  it('yields the same startup packet and (F) messages when the stream is split at every byte boundary', () => {
    const expected = frontendTyped.map(([, msg]) => msg);
    for (let cut = 0; cut <= frontendStream.length; cut++) {
      const reader = new MessageReader();
      reader.push(frontendStream.subarray(0, cut));
      let body = reader.nextStartup();
      if (body === null) {
        reader.push(frontendStream.subarray(cut));
        body = reader.nextStartup()!;
        expect(decodeStartup(body)).toEqual({ type: 'StartupMessage', major: 3, minor: 0, parameters: { user: 'app' } });
        expect(drain(reader).map((m) => decodeFrontend(m))).toEqual(expected);
      } else {
        expect(decodeStartup(body)).toEqual({ type: 'StartupMessage', major: 3, minor: 0, parameters: { user: 'app' } });
        const got = drain(reader);
        reader.push(frontendStream.subarray(cut));
        got.push(...drain(reader));
        expect(got.map((m) => decodeFrontend(m))).toEqual(expected);
      }
      expect(reader.buffered).toBe(0);
    }
  });

  it('reassembles the stream fed one byte at a time', () => {
    const reader = new MessageReader();
    const got: RawMessage[] = [];
    for (let i = 0; i < backendStream.length; i++) {
      reader.push(backendStream.subarray(i, i + 1));
      got.push(...drain(reader));
    }
    expect(got.map(decodeBackend)).toEqual(backendCases.map(([, msg]) => msg));
  });

  it('reassembles a message spanning many chunks', () => {
    const payload = Buffer.alloc(100_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const bytes = frame('d', payload);
    const reader = new MessageReader();
    for (let i = 0; i < bytes.length; i += 1000) {
      expect(reader.next()).toBeNull();
      reader.push(bytes.subarray(i, i + 1000));
    }
    const msg = reader.next()!;
    expect(msg.code).toBe('d');
    expect(msg.body.equals(payload)).toBe(true);
    expect(reader.buffered).toBe(0);
  });

  it('returns bodies that alias the pushed chunk when a message lies inside one chunk', () => {
    const chunk = frame('Q', cstr('SELECT 1'));
    const reader = new MessageReader();
    reader.push(chunk);
    const msg = reader.next()!;
    expect(msg.body.buffer).toBe(chunk.buffer);
  });

  it('ignores empty chunks', () => {
    const reader = new MessageReader();
    reader.push(Buffer.alloc(0));
    expect(reader.next()).toBeNull();
    expect(reader.nextStartup()).toBeNull();
    expect(reader.buffered).toBe(0);
  });

  it('refuses an oversized message as soon as its header arrives, split across chunks (08P01)', () => {
    const reader = new MessageReader({ maxMessageSize: 1024 });
    reader.push(Buffer.from([0x51, 0, 0]));
    expect(reader.next()).toBeNull();
    reader.push(Buffer.from([0x04, 0x01])); // length 1025, no body sent
    expect(thrownCode(() => reader.next())).toBe('08P01');
  });

  it('accepts a message exactly at the limit', () => {
    const reader = new MessageReader({ maxMessageSize: 1024 });
    reader.push(frame('d', Buffer.alloc(1020)));
    expect(reader.next()!.body.length).toBe(1020);
  });

  it('refuses a header announcing more than 1 GiB - 1 by default without waiting for the body', () => {
    const reader = new MessageReader();
    reader.push(Buffer.concat([ascii('D'), i32(DEFAULT_MAX_MESSAGE_SIZE + 1)]));
    expect(thrownCode(() => reader.next())).toBe('08P01');
  });

  it.each([0, 3, -1, -2147483648])('refuses length word %i (08P01)', (len) => {
    const reader = new MessageReader();
    reader.push(Buffer.concat([ascii('Q'), i32(len)]));
    expect(thrownCode(() => reader.next())).toBe('08P01');
  });

  it('refuses an oversized startup packet before it arrives (08P01)', () => {
    const reader = new MessageReader({ maxMessageSize: 64 });
    reader.push(i32(65));
    expect(thrownCode(() => reader.nextStartup())).toBe('08P01');
  });

  it('keeps working across many small chunks (chunk list compaction)', () => {
    const one = frame('Q', cstr('SELECT 1'));
    const reader = new MessageReader();
    let count = 0;
    for (let round = 0; round < 200; round++) {
      // Leave a partial message behind every time so the chunk list never empties.
      for (let i = 0; i < one.length; i++) {
        reader.push(one.subarray(i, i + 1));
        count += drain(reader).length;
      }
    }
    expect(count).toBe(200);
  });
});
