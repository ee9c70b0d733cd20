import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import { encodeStartup } from '../../../src/protocol/index.js';
import { isLoopbackAddress } from '../../../src/server/auth-verifiers.js';
import { FakeEngine, testConfig } from './fake-engine.js';
import { eventually, serveSocket, sqlstate, startFixture } from './server-fixture.js';
import type { Fixture } from './server-fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

function psql(port: number, args: string[], password: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-X', '-A', '-t', '-w', ...args, 'app'], {
    env: { PGPASSWORD: password, PGSSLMODE: 'prefer', PGCONNECT_TIMEOUT: '10' },
    timeoutMs: 20_000,
  });
}

describe('startup and authentication', () => {
  it('answers SSLRequest and GSSENCRequest with N and goes on in plain text', async () => {
    fx = await startFixture();
    const client = await WireClient.open(fx.port);
    client.sendRaw(encodeStartup({ type: 'SSLRequest' }));
    expect(await client.byte()).toBe('N');
    client.sendRaw(encodeStartup({ type: 'GSSENCRequest' }));
    expect(await client.byte()).toBe('N');
    const messages = await client.startup();
    expect(messages.map((m) => m.type)).toEqual(expect.arrayContaining(['ParameterStatus', 'BackendKeyData', 'ReadyForQuery']));
    expect(messages.at(-1)).toEqual({ type: 'ReadyForQuery', status: 'I' });
    client.end();
  });

  it('logs psql in with SCRAM-SHA-256 (after SSLRequest) and runs a query', async () => {
    fx = await startFixture();
    const result = await psql(fx.port, ['-c', 'select 1'], 'secret');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe('1');
    expect(fx.engine.last.opts).toMatchObject({ user: 'app', database: 'app' });
  });

  it('refuses a wrong password with 28P01 (psql and node-pg)', async () => {
    fx = await startFixture();
    const result = await psql(fx.port, ['-c', 'select 1'], 'wrong');
    expect(result.code).toBe(2);
    expect(await sqlstate(fx.client({ password: 'wrong' }))).toBe('28P01');
    expect(fx.engine.sessions).toHaveLength(0);
  });

  it('refuses an unknown user with the same 28P01 after a full exchange', async () => {
    fx = await startFixture();
    expect(await sqlstate(fx.client({ user: 'nobody', password: 'secret' }))).toBe('28P01');
    const client = await WireClient.open(fx.port);
    client.sendRaw(encodeStartup({ type: 'StartupMessage', major: 3, minor: 0, parameters: { user: 'nobody', database: 'app' } }));
    expect((await client.next()).type).toBe('AuthenticationSASL');
    client.end();
  });

  it('refuses an unknown database with 3D000', async () => {
    fx = await startFixture();
    expect(await sqlstate(fx.client({ database: 'other' }))).toBe('3D000');
  });

  it('refuses protocol 4.0 with 0A000 and negotiates 3.1 down to 3.0', async () => {
    fx = await startFixture();
    const old = await WireClient.open(fx.port);
    old.sendRaw(encodeStartup({ type: 'StartupMessage', major: 4, minor: 0, parameters: {} }));
    const [error] = await old.closed();
    expect(error).toMatchObject({ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '0A000' } });

    const newer = await WireClient.open(fx.port);
    newer.sendRaw(encodeStartup({ type: 'StartupMessage', major: 3, minor: 1, parameters: { user: 'app', database: 'app', _pq_Xtest: 'x', '_pq_.ext': '1' } }));
    expect(await newer.next()).toEqual({ type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized: ['_pq_.ext'] });
    newer.end();
  });

  it('accepts trust on a loopback listener without a password', async () => {
    fx = await startFixture({ trust: true });
    const client = await fx.client({ password: undefined });
    expect((await client.query('select 1')).rows).toEqual([{ '?column?': 1 }]);
  });

  it('ignores trust for a connection that arrived on a non-loopback address', async () => {
    const engine = new FakeEngine();
    const config = testConfig({ trust: true });
    const server: Server = createServer((socket: Socket) => {
      // As if the client had reached us on a public interface.
      Object.defineProperty(socket, 'localAddress', { value: '192.0.2.10' });
      serveSocket(socket, engine, config);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const client = await WireClient.open(port);
      client.sendRaw(encodeStartup({ type: 'StartupMessage', major: 3, minor: 0, parameters: { user: 'app', database: 'app' } }));
      expect((await client.next()).type).toBe('AuthenticationSASL');
      client.end();
      // The right password still works there.
      const ok = await WireClient.login(port);
      ok.end();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('recognises loopback addresses only', () => {
    for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(a)).toBe(true);
    for (const a of ['10.0.0.1', '0.0.0.0', '::', '::ffff:10.0.0.1', '1270.0.0.1', undefined]) expect(isLoopbackAddress(a)).toBe(false);
  });

  it('refuses clients beyond pool.maxClients with 53300 and admits again after one leaves', async () => {
    fx = await startFixture({ maxClients: 2 });
    const a = await fx.client();
    await fx.client();
    expect(fx.server.clientCount).toBe(2);
    expect(await sqlstate(fx.client())).toBe('53300');
    await a.end();
    await eventually(() => fx!.server.clientCount === 1);
    const c = await fx.client();
    expect((await c.query('select 1')).rowCount).toBe(1);
  });

  it('sends the session parameters, a BackendKeyData and ReadyForQuery I', async () => {
    fx = await startFixture();
    const client = await WireClient.open(fx.port);
    const messages = await client.startup();
    const params = new Map(messages.flatMap((m) => (m.type === 'ParameterStatus' ? [[m.name, m.value] as const] : [])));
    expect(params.get('server_version')).toBe('15.0 (ShardGate)');
    expect(messages.filter((m) => m.type === 'BackendKeyData')).toHaveLength(1);
    client.end();
  });
});
