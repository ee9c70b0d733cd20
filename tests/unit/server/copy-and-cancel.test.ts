import { afterEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import { encodeStartup } from '../../../src/protocol/index.js';
import { eventually, sqlstate, startFixture } from './server-fixture.js';
import type { Fixture } from './server-fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

function psql(port: number, sql: string, input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-X', '-A', '-t', '-c', sql, 'app'], {
    env: { PGPASSWORD: 'secret' },
    input,
    timeoutMs: 20_000,
  });
}

/** Sends a CancelRequest on a new connection and waits until the server closes it. */
async function sendCancel(port: number, processId: number, secretKey: number): Promise<void> {
  const conn = await WireClient.open(port);
  conn.sendRaw(encodeStartup({ type: 'CancelRequest', processId, secretKey }));
  expect(await conn.closed()).toEqual([]);
}

describe('COPY relay', () => {
  it('relays COPY FROM STDIN data from psql into the sink', async () => {
    fx = await startFixture();
    const result = await psql(fx.port, 'copy t from stdin', '1\tone\n2\ttwo\n3\tthree\n\\.\n');
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('COPY 3');
    // psql passes the end-of-data marker on as data, as PostgreSQL expects in text format.
    expect(Buffer.concat(fx.engine.last.copied).toString()).toBe('1\tone\n2\ttwo\n3\tthree\n\\.\n');
  });

  it('relays COPY TO STDOUT data to psql, ending with CopyDone before CommandComplete', async () => {
    fx = await startFixture();
    const result = await psql(fx.port, 'copy t to stdout');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('a\nb\nc\n');
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'Query', sql: 'copy t to stdout' }]);
    const messages = await client.until('ReadyForQuery');
    expect(messages.map((m) => m.type)).toEqual(['CopyOutResponse', 'CopyData', 'CopyData', 'CopyData', 'CopyDone', 'CommandComplete', 'ReadyForQuery']);
    client.end();
  });

  it('ignores Flush and Sync during copy-in and turns CopyFail into the statement error', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'Query', sql: 'copy t from stdin' }]);
    expect(await client.next()).toMatchObject({ type: 'CopyInResponse', format: 0 });
    client.send([{ type: 'CopyData', data: Buffer.from('1\n') }, { type: 'Flush' }, { type: 'Sync' }, { type: 'CopyFail', message: 'client gave up' }]);
    const messages = await client.until('ReadyForQuery');
    expect(messages.map((m) => m.type)).toEqual(['ErrorResponse', 'ReadyForQuery']);
    expect(messages[0]).toMatchObject({ fields: { code: '57014' } });
    expect(fx.engine.last.copyFailed).toBe('client gave up');
    // Data arriving after the copy ended is ignored, as PostgreSQL does.
    client.send([{ type: 'CopyData', data: Buffer.from('late\n') }, { type: 'CopyDone' }, { type: 'Query', sql: 'select 1' }]);
    expect((await client.until('ReadyForQuery')).map((m) => m.type)).toEqual(['RowDescription', 'DataRow', 'CommandComplete', 'ReadyForQuery']);
    client.end();
  });

  it('runs COPY through the extended protocol too', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([
      { type: 'Parse', name: '', sql: 'copy t from stdin', paramTypes: [] },
      { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Execute', portal: '', maxRows: 0 },
      { type: 'Sync' },
    ]);
    await client.until('CopyInResponse');
    // The Sync sent with the batch arrived during copy-in and was ignored; clients (libpq) send another after CopyDone.
    client.send([{ type: 'CopyData', data: Buffer.from('x\ny\n') }, { type: 'CopyDone' }, { type: 'Sync' }]);
    const messages = await client.until('ReadyForQuery');
    expect(messages).toEqual([{ type: 'CommandComplete', tag: 'COPY 2' }, { type: 'ReadyForQuery', status: 'I' }]);
    client.end();
  });
});

describe('CancelRequest', () => {
  it('cancels the running statement with the right key and ignores a wrong one', async () => {
    fx = await startFixture();
    const client = await fx.client();
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    const running = sqlstate(client.query('select sleep()'));
    await eventually(() => fx!.engine.last.executed.length === 1);
    const session = fx.engine.last;

    await sendCancel(fx.port, processID, secretKey ^ 1);
    await sendCancel(fx.port, processID + 1, secretKey);
    expect(session.cancels).toBe(0);

    await sendCancel(fx.port, processID, secretKey);
    expect(await running).toBe('57014');
    expect(session.cancels).toBe(1);
    expect((await client.query('select 1')).rowCount).toBe(1);
    // Cancel connections are never counted as clients.
    expect(fx.server.clientCount).toBe(1);
  });
});
