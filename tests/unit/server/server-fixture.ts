import pg from 'pg';
import { ProxyServer } from '../../../src/server/proxy-server.js';
import type { ProxyServerOptions } from '../../../src/server/proxy-server.js';
import type { Socket } from 'node:net';
import type { ShardGateConfig } from '../../../src/config/types.js';
import { AuthVerifiers } from '../../../src/server/auth-verifiers.js';
import { ClientConnection } from '../../../src/server/client-connection.js';
import { silentLog } from '../../../src/server/server-log.js';
import { FakeEngine, testConfig } from './fake-engine.js';

/** A ProxyServer on 127.0.0.1 (free port) over a FakeEngine. */
export interface Fixture {
  readonly server: ProxyServer;
  readonly engine: FakeEngine;
  readonly port: number;
  /** A connected node-pg client (user app, password secret); ended by `close`. */
  client(opts?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  close(): Promise<void>;
}

export async function startFixture(overrides: Parameters<typeof testConfig>[0] = {}, opts: ProxyServerOptions = {}): Promise<Fixture> {
  const engine = new FakeEngine();
  const server = new ProxyServer(engine, testConfig(overrides), opts);
  const { port } = await server.listen();
  const clients: pg.Client[] = [];
  return {
    server,
    engine,
    port,
    async client(opts = {}) {
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'secret', database: 'app', ...opts });
      client.on('error', () => undefined);
      clients.push(client);
      await client.connect();
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await server.close();
    },
  };
}

/** The SQLSTATE of a rejected promise (fails the test if it resolves). */
export async function sqlstate(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
  throw new Error('expected an error');
}

/** Waits until `condition` holds, checking on every turn of the event loop. */
export async function eventually(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

/**
 * Serves one accepted socket with a ClientConnection outside any ProxyServer,
 * for tests that must tamper with the socket first (local address, writes).
 */
export function serveSocket(socket: Socket, engine: FakeEngine, config: ShardGateConfig): void {
  const conn = new ClientConnection(socket, {
    engine,
    config,
    verifiers: new AuthVerifiers(config),
    log: silentLog,
    startupTimeoutMs: 10_000,
    tls: null,
    admit: () => true,
    register: () => ({ processId: 1, secretKey: 2 }),
    release: () => undefined,
    cancelRequest: () => undefined,
  });
  void conn.run();
}
