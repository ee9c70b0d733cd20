import { afterEach, describe, expect, it } from 'vitest';
import { startFixture } from './server-fixture.js';
import type { Fixture } from './server-fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

/** A typed message header with the given type byte and length word, and no body. */
function header(code: string, length: number): Buffer {
  const b = Buffer.alloc(5);
  b.write(code, 0, 'latin1');
  b.writeUInt32BE(length >>> 0, 1);
  return b;
}

describe('bad input ends only the offending connection', () => {
  it('answers an oversized message length with FATAL 08P01 and keeps serving others', async () => {
    fx = await startFixture();
    const bystander = await fx.client();
    for (const length of [0x7fff_ffff, 0x8000_0000, 64 * 1024 * 1024 + 1]) {
      const client = await WireClient.login(fx.port);
      client.sendRaw(header('Q', length));
      const messages = await client.closed();
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatchObject({ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '08P01' } });
    }
    expect((await bystander.query('select 1')).rowCount).toBe(1);
    const later = await fx.client();
    expect((await later.query('select rows(2)')).rowCount).toBe(2);
  });

  it('answers garbage bytes with FATAL 08P01, during startup and after it', async () => {
    fx = await startFixture();
    const http = await WireClient.open(fx.port);
    http.sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await http.closed()).toMatchObject([{ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '08P01' } }]);

    const tiny = await WireClient.open(fx.port);
    tiny.sendRaw(Buffer.from([0, 0, 0, 2]));
    expect(await tiny.closed()).toMatchObject([{ type: 'ErrorResponse', fields: { code: '08P01' } }]);

    const client = await WireClient.login(fx.port);
    client.sendRaw(Buffer.concat([header('\u0001', 4)]));
    expect(await client.closed()).toMatchObject([{ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '08P01' } }]);
    await expect(fx.client().then((c) => c.query('select 1'))).resolves.toMatchObject({ rowCount: 1 });
  });

  it('refuses a password message after authentication with FATAL 08P01 and closes the session', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'PasswordMessage', password: 'x' }]);
    expect(await client.closed()).toMatchObject([{ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '08P01' } }]);
    expect(fx.engine.last.closed).toBe(true);
  });

  it('refuses FunctionCall with 0A000 and stays usable', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.sendRaw(Buffer.concat([header('F', 4)]));
    const messages = await client.until('ReadyForQuery');
    expect(messages[0]).toMatchObject({ type: 'ErrorResponse', fields: { severity: 'ERROR', code: '0A000' } });
    client.send([{ type: 'Query', sql: 'select 1' }]);
    expect((await client.until('ReadyForQuery')).length).toBe(4);
    client.end();
  });

  it('disconnects a client that does not complete startup in time', async () => {
    fx = await startFixture({}, { startupTimeoutMs: 50 });
    const client = await WireClient.open(fx.port);
    expect(await client.closed()).toEqual([]);
  });

  it('ends every session with FATAL 57P01 when the server closes', async () => {
    fx = await startFixture();
    const a = await WireClient.login(fx.port);
    const b = await WireClient.login(fx.port);
    b.send([{ type: 'Query', sql: 'begin' }]);
    await b.until('ReadyForQuery');
    const server = fx.server;
    const engine = fx.engine;
    fx = null;
    await server.close();
    for (const client of [a, b]) expect(await client.closed()).toMatchObject([{ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '57P01' } }]);
    expect(engine.sessions.every((s) => s.closed)).toBe(true);
    expect(server.clientCount).toBe(0);
  });
});

describe('backpressure', () => {
  it('pulls rows from the engine only as fast as a slow client reads them', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    const rows = 1000;
    const rowBytes = 128 * 1024;
    client.send([{ type: 'Query', sql: `select big(${rows}, ${rowBytes})` }]);
    await client.expect('RowDescription');
    const session = fx.engine.last;
    let consumed = 0;
    let maxLead = 0;
    for (;;) {
      const msg = await client.next();
      if (msg.type !== 'DataRow') {
        expect(msg).toEqual({ type: 'CommandComplete', tag: `SELECT ${rows}` });
        break;
      }
      consumed++;
      maxLead = Math.max(maxLead, session.produced - consumed);
      if (consumed % 10 === 0) {
        // Read slowly: stop reading for a moment so a producer without backpressure runs far ahead.
        client.socket.pause();
        await new Promise((resolve) => setTimeout(resolve, 1));
        client.socket.resume();
      }
    }
    expect(consumed).toBe(rows);
    // Socket buffers (kernel send + receive, at most ~36 MiB here) hold a few hundred rows of 128 KiB;
    // without backpressure the producer runs ~all 1000 rows ahead.
    expect(maxLead).toBeLessThan(rows / 2);
    client.end();
  });
});
