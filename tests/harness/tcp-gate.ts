import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay to 127.0.0.1:`target` that a test closes and opens again on the
 * same port: closing destroys every relayed connection and stops listening
 * (clients get ECONNREFUSED), as a broker going down looks to its clients,
 * without stopping the broker other tests share.
 */
export class TcpGate {
  readonly #target: number;
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port = 0;

  constructor(target: number) {
    this.#target = target;
  }

  /** The port clients connect to (fixed by the first `open`). */
  get port(): number {
    return this.#port;
  }

  /** Listens (again, on the same port after a close). */
  async open(): Promise<number> {
    if (this.#server !== null) return this.#port;
    const server = createServer((client) => {
      const upstream = connect(this.#target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.setNoDelay(true);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.#sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as { port: number }).port;
    return this.#port;
  }

  /** Cuts every relayed connection and stops listening. */
  async close(): Promise<void> {
    const server = this.#server;
    if (server === null) return;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
