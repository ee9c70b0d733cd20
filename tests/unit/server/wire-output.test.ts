import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageReader, decodeBackend } from '../../../src/protocol/index.js';
import type { BackendMessage } from '../../../src/protocol/messages.js';
import { WireOutput } from '../../../src/server/wire-output.js';

/** A connected socket pair on loopback: `out` writes, `received()` decodes what arrived. */
async function socketPair(): Promise<{ out: Socket; received: () => Promise<BackendMessage[]>; close: () => void }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = connect(port, '127.0.0.1');
  const out = await accepted;
  const reader = new MessageReader();
  client.on('data', (d: Buffer) => reader.push(d));
  return {
    out,
    received: async () => {
      await new Promise((r) => setTimeout(r, 50));
      const msgs: BackendMessage[] = [];
      for (let m = reader.next(); m !== null; m = reader.next()) msgs.push(decodeBackend(m));
      return msgs;
    },
    close: () => {
      client.destroy();
      out.destroy();
      server.close();
    },
  };
}

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

describe('WireOutput', () => {
  it('sends everything buffered in one write at flush, in order', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const out = new WireOutput(pair.out);
    let writes = 0;
    const write = pair.out.write.bind(pair.out);
    pair.out.write = ((...args: Parameters<typeof write>) => (writes++, write(...args))) as typeof pair.out.write;
    out.send({ type: 'BindComplete' });
    out.sendRow([Buffer.from('42'), null]);
    out.send({ type: 'CommandComplete', tag: 'SELECT 1' });
    out.send({ type: 'ReadyForQuery', status: 'I' });
    expect(out.buffered).toBeGreaterThan(0);
    await out.flush();
    expect(out.buffered).toBe(0);
    expect(writes).toBe(1);
    expect(await pair.received()).toEqual([
      { type: 'BindComplete' },
      { type: 'DataRow', values: [Buffer.from('42'), null] },
      { type: 'CommandComplete', tag: 'SELECT 1' },
      { type: 'ReadyForQuery', status: 'I' },
    ]);
  });

  it('leaves nothing of a message that cannot be encoded, so the stream stays framed', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const out = new WireOutput(pair.out);
    out.send({ type: 'ParseComplete' });
    const before = out.buffered;
    expect(() => out.send({ type: 'CommandComplete', tag: 'bad\u0000tag' })).toThrow();
    expect(out.buffered).toBe(before);
    out.send({ type: 'ReadyForQuery', status: 'I' });
    await out.flush();
    expect(await pair.received()).toEqual([{ type: 'ParseComplete' }, { type: 'ReadyForQuery', status: 'I' }]);
  });

  it('grows past its first buffer for a large batch of rows and flushes at 64 kB', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const out = new WireOutput(pair.out);
    const value = Buffer.alloc(100, 'x');
    let rows = 0;
    while (out.maybeFlush() === undefined) {
      out.sendRow([value]);
      rows++;
    }
    // Each row is 5 + 2 + 4 + 100 bytes: the flush came once 64 kB were buffered.
    expect(rows).toBe(Math.ceil((64 * 1024) / 111));
    expect(out.buffered).toBe(0);
    const got = await pair.received();
    expect(got).toHaveLength(rows);
    expect(got.every((m) => m.type === 'DataRow' && m.values[0]!.equals(value))).toBe(true);
  });
});
