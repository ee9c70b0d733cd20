import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort } from './pg-cluster.js';

/**
 * The cheapest proxy Node.js can be: every client connection gets its own
 * server connection, and bytes go both ways unread (no protocol, no pooling,
 * no routing). Its CPU time per transaction is the floor any Node.js proxy
 * pays for its sockets; the select-only section prints it beside PgBouncer's
 * and ShardGate's.
 */
export function relayServer(serverPort: number): Server {
  return createServer({ noDelay: true }, (client) => {
    const server = connect({ port: serverPort, host: '127.0.0.1', noDelay: true });
    client.on('data', (d) => server.write(d));
    server.on('data', (d) => client.write(d));
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    client.on('error', () => undefined);
    server.on('error', () => undefined);
  });
}

/** A relay in a process of its own (so its CPU time is its own). */
export interface NodeRelayProcess {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts `node node-relay.js SERVER_PORT LISTEN_PORT` and waits until it listens. */
export async function startNodeRelay(serverPort: number): Promise<NodeRelayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), String(serverPort), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  await new Promise<void>((resolveListen, reject) => {
    child.stdout!.on('data', () => {
      if (output.includes('listening')) resolveListen();
    });
    child.once('exit', (code, signal) => reject(new Error(`the Node.js relay exited (${signal ?? code}) before listening`)));
  });
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [serverPort, listenPort] = process.argv.slice(2).map(Number);
  const server = relayServer(serverPort!);
  server.listen(listenPort!, '127.0.0.1', () => process.stdout.write('listening\n'));
  process.once('SIGTERM', () => process.exit(0));
}
