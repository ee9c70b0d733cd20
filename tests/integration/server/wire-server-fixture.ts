import pg from 'pg';
import { createConnector } from '../../../src/backend/connector.js';
import { parseConfig } from '../../../src/config/parse-config.js';
import { Engine } from '../../../src/engine/engine.js';
import { ProxyServer } from '../../../src/server/proxy-server.js';
import { runCommand, startClusters, type PgCluster } from '../../harness/cluster.js';

/** The wire server over the real engine and two real PostgreSQL shards, on a free loopback port, user and password `app`. */
export interface WireServerFixture {
  readonly clusters: readonly PgCluster[];
  readonly port: number;
  /** A connected node-pg client of the server (ended by close()). */
  client(): Promise<pg.Client>;
  /** One psql -c run against the server (unaligned, tuples only, stopping at the first error), `input` on its stdin. */
  psql(sql: string, input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Ends the clients, the server, the engine and the clusters. */
  close(): Promise<void>;
}

/** Starts two clusters and the wire server over them with `tables` as the rules. */
export async function startWireServer(tables: Record<string, unknown>): Promise<WireServerFixture> {
  const clusters = await startClusters(2, { databases: ['app'] });
  const parsed = parseConfig({
    listen: '127.0.0.1:6432',
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    shards: { s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app') },
    tables,
  });
  const config = { ...parsed, listen: { host: '127.0.0.1', port: 0 } };
  const connector = await createConnector(config);
  const engine = await Engine.open(config, { connector });
  const server = new ProxyServer(engine, config);
  const port = (await server.listen()).port;
  const clients: pg.Client[] = [];
  return {
    clusters,
    port,
    async client() {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'app', database: 'app' });
      c.on('error', () => undefined);
      clients.push(c);
      await c.connect();
      return c;
    },
    psql(sql, input = '') {
      return runCommand('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql, 'app'], {
        env: { PGPASSWORD: 'app' },
        input,
        timeoutMs: 30_000,
      });
    },
    async close() {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await server.close();
      await engine.close();
      await Promise.all(clusters.map((c) => c.destroy()));
    },
  };
}
