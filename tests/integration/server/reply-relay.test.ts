import { createHash } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnector } from '../../../src/backend/connector.js';
import { parseConfig } from '../../../src/config/parse-config.js';
import { Engine } from '../../../src/engine/engine.js';
import { decodeBackend, type FrontendMessage } from '../../../src/protocol/index.js';
import { ProxyServer } from '../../../src/server/proxy-server.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';
import { WireClient } from '../../unit/server/wire-client.js';

/**
 * A TCP relay between the proxy and its shard that can hand the shard's
 * replies on in pieces of `pieceSize` bytes (0: as they come), each piece
 * written only once the one before has left, so the proxy reads a reply cut
 * at every boundary.
 */
class SlicingRelay {
  pieceSize = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(target: number) {
    this.#server = createServer((proxySide) => {
      const shardSide = connect(target, '127.0.0.1');
      for (const s of [proxySide, shardSide]) {
        this.#sockets.add(s);
        s.setNoDelay(true);
        s.on('error', () => undefined);
        s.on('close', () => {
          proxySide.destroy();
          shardSide.destroy();
        });
      }
      proxySide.on('data', (chunk: Buffer) => shardSide.write(chunk));
      let queue: Promise<void> = Promise.resolve();
      shardSide.on('data', (chunk: Buffer) => {
        const size = this.pieceSize;
        queue = queue.then(async () => {
          if (size === 0) {
            proxySide.write(chunk);
            return;
          }
          for (let at = 0; at < chunk.length && !proxySide.destroyed; at += size) {
            await new Promise<void>((resolve) => proxySide.write(chunk.subarray(at, at + size), () => setImmediate(resolve)));
          }
        });
      });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * Replies relayed as bytes: one shard behind the proxy is the same PostgreSQL
 * a second client talks to directly, so every reply through the proxy must
 * equal the server's own, message for message and byte for byte — rows,
 * RowDescription, CommandComplete and ReadyForQuery. ErrorResponse and
 * NoticeResponse pass through ShardGate's error path, so they are compared
 * field by field. Each case is sent as one write of raw protocol messages.
 */
describe('single-shard replies relayed as bytes', () => {
  let cluster: PgCluster;
  let relay: SlicingRelay;
  let engine: Engine;
  let server: ProxyServer;
  let proxyPort: number;
  let viaProxy: WireClient;
  let direct: WireClient;

  beforeAll(async () => {
    [cluster] = (await startClusters(1, { databases: ['app'] })) as [PgCluster];
    relay = new SlicingRelay(cluster.port);
    const relayPort = await relay.listen();
    const parsed = parseConfig({
      listen: '127.0.0.1:6432',
      database: 'app',
      auth: { users: [{ name: 'app', password: 'app' }] },
      shards: { s0: `postgres://postgres@127.0.0.1:${relayPort}/app` },
      tables: {},
    });
    const config = { ...parsed, listen: { host: '127.0.0.1', port: 0 } };
    engine = await Engine.open(config, { connector: await createConnector(config) });
    server = new ProxyServer(engine, config);
    proxyPort = (await server.listen()).port;
    await cluster.query(
      `CREATE FUNCTION noisy(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'row %', i; RETURN i; END $$;
       CREATE TABLE wide (id int PRIMARY KEY, body text, data bytea);
       INSERT INTO wide SELECT g, repeat(md5(g::text), 2000 + g), decode(repeat(md5(g::text), 50), 'hex') FROM generate_series(1, 120) g`,
      [],
      'app',
    );
    viaProxy = await WireClient.login(proxyPort, { user: 'app', password: 'app' });
    direct = await WireClient.login(cluster.port, { user: 'postgres' });
  });

  afterAll(async () => {
    viaProxy?.end();
    direct?.end();
    await server?.close();
    await engine?.close();
    await relay?.close();
    await cluster?.destroy();
  });

  /** Comparable form of one frame: its bytes (short ones in hex, long ones by length and digest), or for errors and notices their decoded fields. */
  function comparable(frame: Buffer): unknown {
    const code = String.fromCharCode(frame[0]!);
    if (code === 'E' || code === 'N') return { code, fields: (decodeBackend({ code, body: frame.subarray(5) }) as { fields: unknown }).fields };
    return frame.length <= 64 ? `${code}:${frame.toString('hex')}` : `${code}:${frame.length}:${createHash('sha1').update(frame).digest('hex')}`;
  }

  /** Sends the same messages through the proxy and directly; returns both replies up to the `ready`-th ReadyForQuery. */
  async function both(messages: readonly FrontendMessage[], ready = 1): Promise<{ proxy: Buffer[]; server: Buffer[] }> {
    viaProxy.send(messages);
    direct.send(messages);
    const [proxy, server] = await Promise.all([viaProxy.framesUntilReady(ready), direct.framesUntilReady(ready)]);
    return { proxy, server };
  }

  async function expectSameReply(messages: readonly FrontendMessage[], ready = 1): Promise<Buffer[]> {
    const { proxy, server } = await both(messages, ready);
    expect(proxy.map(comparable)).toEqual(server.map(comparable));
    return proxy;
  }

  const codes = (frames: readonly Buffer[]): string => frames.map((f) => String.fromCharCode(f[0]!)).join('');

  it('relays rows larger than a socket read, each crossing read boundaries, unchanged', async () => {
    const reply = await expectSameReply([{ type: 'Query', sql: 'SELECT id, body, data FROM wide ORDER BY id' }]);
    expect(codes(reply)).toBe(`T${'D'.repeat(120)}CZ`);
    expect(reply.reduce((n, f) => n + f.length, 0)).toBeGreaterThan(120 * 64_000);
  });

  it('relays tens of thousands of small rows arriving many to a packet', async () => {
    const reply = await expectSameReply([{ type: 'Query', sql: "SELECT g, g % 7 = 0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'v' || g END FROM generate_series(1, 30000) g" }]);
    expect(reply.length).toBe(30003);
  });

  it('relays binary-format results of a pipelined Parse/Bind/Describe/Execute/Sync batch', async () => {
    const sql = "SELECT g::int8, (g * 1.5)::float8, DATE '2020-01-01' + g, ARRAY[g, -g], decode(md5(g::text), 'hex'), NULL::int FROM generate_series(1, $1::int) g";
    const batch: FrontendMessage[] = [
      { type: 'Parse', name: 'bin', sql, paramTypes: [] },
      { type: 'Describe', target: 'S', name: 'bin' },
      ...[3000, 1, 0, 250].flatMap((n): FrontendMessage[] => [
        { type: 'Bind', portal: '', statement: 'bin', paramFormats: [0], params: [Buffer.from(String(n))], resultFormats: [1] },
        { type: 'Describe', target: 'P', name: '' },
        { type: 'Execute', portal: '', maxRows: 0 },
        { type: 'Sync' },
      ]),
      { type: 'Close', target: 'S', name: 'bin' },
      { type: 'Sync' },
    ];
    const reply = await expectSameReply(batch, 5);
    expect(reply.filter((f) => f[0] === 0x44).length).toBe(3251);
  });

  it('cuts relayed rows between messages at Execute maxRows, inside a transaction block', async () => {
    const { proxy: reply, server } = await both(
      [
        { type: 'Query', sql: 'BEGIN' },
        { type: 'Parse', name: '', sql: 'SELECT id, body FROM wide WHERE id <= 40 ORDER BY id', paramTypes: [] },
        { type: 'Bind', portal: 'p', statement: '', paramFormats: [], params: [], resultFormats: [] },
        { type: 'Execute', portal: 'p', maxRows: 1 },
        { type: 'Execute', portal: 'p', maxRows: 7 },
        { type: 'Execute', portal: 'p', maxRows: 0 },
        { type: 'Sync' },
        { type: 'Query', sql: 'COMMIT' },
      ],
      3,
    );
    expect(codes(reply)).toBe(`CZ12DsDDDDDDDs${'D'.repeat(32)}CZCZ`);
    // The last Execute's tag counts that Execute's rows (SELECT 32), as PostgreSQL's does.
    expect(reply.map(comparable)).toEqual(server.map(comparable));
  });

  it('relays a reply the shard delivers one byte at a time', async () => {
    relay.pieceSize = 1;
    try {
      await expectSameReply([{ type: 'Query', sql: "SELECT g, repeat('x', g) FROM generate_series(1, 40) g" }]);
      await expectSameReply([
        { type: 'Parse', name: '', sql: 'SELECT id, data FROM wide WHERE id < $1 ORDER BY id', paramTypes: [23] },
        { type: 'Bind', portal: '', statement: '', paramFormats: [1], params: [Buffer.from([0, 0, 0, 6])], resultFormats: [1] },
        { type: 'Execute', portal: '', maxRows: 0 },
        { type: 'Sync' },
      ]);
    } finally {
      relay.pieceSize = 0;
    }
  });

  it('keeps notices between the rows in order', async () => {
    const reply = await expectSameReply([{ type: 'Query', sql: 'SELECT noisy(g) FROM generate_series(1, 50) g' }]);
    expect(codes(reply)).toBe(`T${'ND'.repeat(50)}CZ`);
  });

  it('sends the rows before an error as the server does, then the error, and the session goes on', async () => {
    const reply = await expectSameReply([{ type: 'Query', sql: 'SELECT 10 / (5 - g) FROM generate_series(1, 10) g' }]);
    expect(codes(reply)).toBe('TDDDDEZ');
    await expectSameReply([
      { type: 'Parse', name: '', sql: 'SELECT 10 / (3 - g) FROM generate_series(1, 5) g', paramTypes: [] },
      { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Execute', portal: '', maxRows: 0 },
      { type: 'Sync' },
    ]);
    await expectSameReply([{ type: 'Query', sql: 'SELECT count(*) FROM wide' }]);
  });

  it('takes in a ParameterStatus in the middle of a reply without losing a message', async () => {
    // The shard reports application_name before its ReadyForQuery; ShardGate keeps it to itself
    // (the session did not SET it), so the replies agree once the server's report is left out.
    const sql = "SELECT g, set_config('application_name', 'relay-' || g, false) FROM generate_series(1, 3) g";
    viaProxy.send([{ type: 'Query', sql }]);
    direct.send([{ type: 'Query', sql }]);
    const [proxy, server] = await Promise.all([viaProxy.framesUntilReady(), direct.framesUntilReady()]);
    expect(codes(server)).toContain('S');
    expect(proxy.map(comparable)).toEqual(server.filter((f) => f[0] !== 0x53).map(comparable));
    await expectSameReply([{ type: 'Query', sql: 'SELECT id FROM wide WHERE id = 7' }]);
  });
});
