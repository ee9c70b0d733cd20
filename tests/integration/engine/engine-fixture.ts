import pg from 'pg';
import { createConnector } from '../../../src/backend/index.js';
import { shardName, tableName } from '../../../src/config/names.js';
import type { ShardGateConfig, TableRule } from '../../../src/config/types.js';
import { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';

/** A configuration over real clusters: users by id mod n, orders by hash of user_id, countries broadcast. */
export function clusterConfig(shards: readonly PgCluster[], extra: Partial<ShardGateConfig> = {}): ShardGateConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    adminToken: null,
    database: 'app',
    auth: { users: [], trust: true },
    coordinatorId: 'it1',
    shards: shards.map((c, i) => ({ kind: 'postgres' as const, name: shardName(`s${i}`), url: c.url('app') })),
    defaultShard: shardName('s0'),
    pool: { maxPerShard: 8, acquireTimeoutMs: 5000, maxClients: 100 },
    transactions: { prepareTimeoutMs: 5000, recoveryIntervalMs: 0 },
    tables: new Map<ReturnType<typeof tableName>, TableRule>([
      [tableName('users'), { kind: 'mod', key: 'id' }],
      [tableName('orders'), { kind: 'hash', key: 'user_id' }],
      [tableName('countries'), { kind: 'broadcast' }],
    ]),
    ...extra,
  };
}

export async function openClusterEngine(config: ShardGateConfig): Promise<Engine> {
  const connector = await createConnector(config);
  return Engine.open(config, { connector, transactions: { deadlockCheckMs: 0 } });
}

/** Runs one statement through a session; rows as text arrays. */
export async function sql(session: Session, text: string, params: readonly (string | null)[] = []): Promise<{ rows: (string | null)[][]; tag: string }> {
  const rows: (string | null)[][] = [];
  let tag = '';
  for await (const ev of session.execute({ sql: text, params: params.map((p) => (p === null ? null : Buffer.from(p))) })) {
    if (ev.kind === 'rows') rows.push(...ev.rows.map((r) => r.map((v) => (v === null ? null : v.toString('utf8')))));
    else if (ev.kind === 'complete') tag = ev.tag;
  }
  return { rows, tag };
}

/** Runs `statements` through the engine session and on the control server alike, in order: the same rows on both sides of a differential test. */
export async function onBoth(session: Session, control: PgCluster, statements: readonly string[]): Promise<void> {
  for (const s of statements) {
    await sql(session, s);
    await direct(control, s);
  }
}

/** Runs SQL on a cluster directly; rows as text arrays (no type parsing). */
export async function direct(cluster: PgCluster, text: string, params: unknown[] = []): Promise<(string | null)[][]> {
  const client = new pg.Client({ connectionString: cluster.url('app') });
  await client.connect();
  try {
    const res = await client.query({ text, values: params, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
    return res.rows as (string | null)[][];
  } finally {
    await client.end();
  }
}


/** Three shards behind an engine session and a fourth, unsharded control server, holding the same rows. */
export interface Differential {
  readonly clusters: readonly PgCluster[];
  readonly control: PgCluster;
  readonly engine: Engine;
  readonly session: Session;
  close(): Promise<void>;
}

/** Starts a Differential with `tables` as the rules and runs `statements` (schema and rows) on both sides. */
export async function startDifferential(tables: ShardGateConfig['tables'], statements: readonly string[]): Promise<Differential> {
  const clusters = await startClusters(4, { databases: ['app'] });
  const control = clusters[3]!;
  const engine = await openClusterEngine(clusterConfig(clusters.slice(0, 3), { tables }));
  const session = engine.session({ user: 'app', database: 'app' });
  await onBoth(session, control, statements);
  return {
    clusters,
    control,
    engine,
    session,
    async close() {
      await session.close();
      await engine.close();
      await Promise.all(clusters.map((c) => c.destroy()));
    },
  };
}
