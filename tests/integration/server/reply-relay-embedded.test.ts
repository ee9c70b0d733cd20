import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnector } from '../../../src/backend/connector.js';
import { shardName } from '../../../src/config/names.js';
import { Engine } from '../../../src/engine/engine.js';
import type { BackendMessage } from '../../../src/protocol/index.js';
import { ProxyServer } from '../../../src/server/proxy-server.js';
import { clusterConfig } from '../engine/engine-fixture.js';
import { WireClient } from '../../unit/server/wire-client.js';

/**
 * Relayed replies from an embedded (PGlite) shard, whose rows come in
 * batches of Execute with maxRows and PortalSuspended: every row the client
 * decodes must be the one the query computes, in order.
 */
describe('single-shard replies relayed as bytes from an embedded shard', () => {
  let dir: string;
  let engine: Engine;
  let server: ProxyServer;
  let client: WireClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardgate-relay-embedded-'));
    const config = clusterConfig([], { tables: new Map(), shards: [{ kind: 'embedded' as const, name: shardName('e0'), dir: join(dir, 'e0') }], defaultShard: shardName('e0') });
    engine = await Engine.open(config, { connector: await createConnector(config), transactions: { deadlockCheckMs: 0 } });
    server = new ProxyServer(engine, config);
    client = await WireClient.login((await server.listen()).port);
  }, 120_000);

  afterAll(async () => {
    client?.end();
    await server?.close();
    await engine?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const expectedRow = (g: number): string[] => [String(g), 'x'.repeat(g % 50)];
  const rowsOf = (msgs: readonly BackendMessage[]): (string | null)[][] =>
    msgs.flatMap((m) => (m.type === 'DataRow' ? [m.values.map((v) => (v === null ? null : v.toString('utf8')))] : []));

  it('delivers every row of a result longer than one batch, and its total in the tag', async () => {
    client.send([{ type: 'Query', sql: "SELECT g, repeat('x', g % 50) FROM generate_series(1, 2500) g" }]);
    const reply = await client.until('ReadyForQuery');
    expect(reply[0]?.type).toBe('RowDescription');
    expect(rowsOf(reply)).toEqual(Array.from({ length: 2500 }, (_, i) => expectedRow(i + 1)));
    expect(reply.at(-2)).toEqual({ type: 'CommandComplete', tag: 'SELECT 2500' });
  });

  it('cuts relayed batches at Execute maxRows inside a transaction block', async () => {
    client.send([
      { type: 'Query', sql: 'BEGIN' },
      { type: 'Parse', name: '', sql: "SELECT g, repeat('x', g % 50) FROM generate_series(1, 1500) g", paramTypes: [] },
      { type: 'Bind', portal: 'p', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Execute', portal: 'p', maxRows: 999 },
      { type: 'Execute', portal: 'p', maxRows: 2 },
      { type: 'Execute', portal: 'p', maxRows: 0 },
      { type: 'Sync' },
      { type: 'Query', sql: 'COMMIT' },
    ]);
    await client.until('ReadyForQuery');
    const reply = await client.until('ReadyForQuery');
    expect(reply.filter((m) => m.type === 'PortalSuspended')).toHaveLength(2);
    expect(rowsOf(reply)).toEqual(Array.from({ length: 1500 }, (_, i) => expectedRow(i + 1)));
    expect((await client.until('ReadyForQuery')).map((m) => m.type)).toEqual(['CommandComplete', 'ReadyForQuery']);
  });
});
