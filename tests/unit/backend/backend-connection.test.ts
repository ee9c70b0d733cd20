import { describe, expect, it } from 'vitest';
import { BackendConnection } from '../../../src/backend/backend-connection.js';
import type { Transport } from '../../../src/backend/transport.js';
import { shardName } from '../../../src/config/names.js';
import type { ShardEvent } from '../../../src/engine/shard-cursor.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { encodeBackend, MessageReader, type BackendMessage, type FrontendMessage, type MessageRun, type RawMessage } from '../../../src/protocol/index.js';

/** A networked-kind transport whose server is a function from each request's messages to its reply. */
class ScriptedTransport implements Transport {
  readonly kind = 'network';
  alive = true;
  readonly requests: FrontendMessage[][] = [];
  #reader = new MessageReader();
  #pending: FrontendMessage[] = [];
  constructor(private readonly server: (request: readonly FrontendMessage[]) => BackendMessage[] | 'die') {}
  get buffered(): number {
    return this.#reader.buffered;
  }
  send(messages: readonly FrontendMessage[]): void {
    this.#pending.push(...messages);
    const last = messages.at(-1)?.type;
    if (last === 'Sync' || last === 'Query' || last === 'CopyDone' || last === 'CopyFail') {
      const request = this.#pending;
      this.#pending = [];
      this.requests.push(request);
      const reply = this.server(request);
      if (reply === 'die') this.alive = false;
      else for (const m of reply) this.#reader.push(encodeBackend(m));
    }
  }
  async drained(): Promise<void> {}
  tryRead(): RawMessage | null {
    return this.#reader.next();
  }
  tryReadRun(code: number, maxBytes: number): MessageRun | null {
    return this.#reader.nextRun(code, maxBytes);
  }
  async read(): Promise<RawMessage> {
    const m = this.#reader.next();
    if (m !== null) return m;
    throw new PgError({ severity: 'ERROR', code: '08006', message: 'gone' });
  }
  async cancel(): Promise<void> {}
  async close(): Promise<void> {
    this.alive = false;
  }
  onDeath(): void {}
}

const ready: BackendMessage = { type: 'ReadyForQuery', status: 'I' };
const field = { name: 'n', tableOid: 0, columnAttr: 0, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 as const };

function selectServer(rows: number): (req: readonly FrontendMessage[]) => BackendMessage[] {
  return (req) => [
    ...req.filter((m) => m.type === 'Close').map((): BackendMessage => ({ type: 'CloseComplete' })),
    ...(req.some((m) => m.type === 'Parse') ? [{ type: 'ParseComplete' } as const] : []),
    { type: 'BindComplete' },
    { type: 'RowDescription', fields: [field] },
    ...Array.from({ length: rows }, (_, i): BackendMessage => ({ type: 'DataRow', values: [Buffer.from(String(i))] })),
    { type: 'CommandComplete', tag: `SELECT ${rows}` },
    ready,
  ];
}

function connection(server: ScriptedTransport['server'], statementCacheSize = 4) {
  const t = new ScriptedTransport(server);
  return { t, conn: new BackendConnection({ shard: shardName('s0'), transport: t, parameters: new Map(), statementCacheSize }) };
}

async function drain(it: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

describe('BackendConnection', () => {
  it('runs a statement unnamed on its first use, parses it by name on the second and binds that name afterwards', async () => {
    const { t, conn } = connection(selectServer(1));
    for (let i = 0; i < 3; i++) await conn.rows('SELECT 1');
    expect(t.requests.map((r) => r.map((m) => m.type).join(' '))).toEqual([
      'Parse Bind Describe Execute Sync',
      'Parse Bind Describe Execute Sync',
      'Bind Describe Execute Sync',
    ]);
    const parses = t.requests.flatMap((r) => r.filter((m) => m.type === 'Parse')) as { name: string }[];
    expect(parses[0]!.name).toBe('');
    expect(parses[1]!.name).not.toBe('');
    expect(t.requests[2]?.[0]).toMatchObject({ type: 'Bind', statement: parses[1]!.name });
    expect(conn.cachedStatements).toBe(1);
  });

  it('closes a statement evicted from the cache in the request that named another', async () => {
    const { t, conn } = connection(selectServer(0), 1);
    for (const sql of ['SELECT 1', 'SELECT 1', 'SELECT 3', 'SELECT 2', 'SELECT 2']) await conn.rows(sql);
    // Statements used once (SELECT 3, SELECT 2 the first time) take no name and evict nothing.
    expect(t.requests.slice(0, 4).some((r) => r.some((m) => m.type === 'Close'))).toBe(false);
    expect(t.requests[4]?.[0]).toMatchObject({ type: 'Close', target: 'S', name: (t.requests[1]!.find((m) => m.type === 'Parse') as { name: string }).name });
  });

  it('cuts rows into batches and completes after ReadyForQuery', async () => {
    const { conn } = connection(selectServer(5));
    const events = (await drain(conn.query({ sql: 'SELECT n', batchSize: 2 }))) as { kind: string; rows?: unknown[] }[];
    expect(events.map((e) => (e.kind === 'rows' ? `rows:${e.rows?.length}` : e.kind))).toEqual(['fields', 'rows:2', 'rows:2', 'rows:1', 'complete']);
  });

  it('relays rows as the bytes received, keeping notices in order and the tag and status as decoded', async () => {
    const row = (v: string): BackendMessage => ({ type: 'DataRow', values: [Buffer.from(v), null] });
    const notice: BackendMessage = { type: 'NoticeResponse', fields: { severity: 'NOTICE', code: '00000', message: 'between' } };
    const reply: BackendMessage[] = [{ type: 'BindComplete' }, { type: 'RowDescription', fields: [field] }, row('1'), row('22'), notice, row('333'), { type: 'CommandComplete', tag: 'SELECT 3' }, { type: 'ReadyForQuery', status: 'T' }];
    const { conn } = connection((req) => [...(req.some((m) => m.type === 'Parse') ? [{ type: 'ParseComplete' } as const] : []), ...reply]);
    const events = (await drain(conn.query({ sql: 'SELECT n', relay: true }))) as ShardEvent[];
    expect(events.map((e) => e.kind)).toEqual(['fields', 'frames', 'notice', 'frames', 'complete']);
    const fields = events[0] as Extract<ShardEvent, { kind: 'fields' }>;
    expect(fields.frame?.equals(encodeBackend(reply[1]!))).toBe(true);
    expect(fields.fields).toEqual([field]);
    const frames = events.filter((e): e is Extract<ShardEvent, { kind: 'frames' }> => e.kind === 'frames');
    expect(frames.map((f) => f.rows)).toEqual([2, 1]);
    expect(Buffer.concat(frames.flatMap((f) => f.frames)).equals(Buffer.concat([row('1'), row('22'), row('333')].map(encodeBackend)))).toBe(true);
    expect(events[2]).toEqual({ kind: 'notice', fields: (notice as { fields: unknown }).fields });
    expect(events[4]).toEqual({ kind: 'complete', tag: 'SELECT 3' });
    expect(conn.txStatus).toBe('T');
  });

  it('relays the rows a shard sent before its error, then throws the error', async () => {
    const { conn } = connection(() => [
      { type: 'ParseComplete' },
      { type: 'BindComplete' },
      { type: 'RowDescription', fields: [field] },
      { type: 'DataRow', values: [Buffer.from('1')] },
      { type: 'ErrorResponse', fields: { severity: 'ERROR', code: '22012', message: 'division by zero' } },
      { type: 'ReadyForQuery', status: 'I' },
    ]);
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const ev of conn.query({ sql: 'SELECT 1 / (1 - n)', relay: true })) seen.push(ev.kind === 'frames' ? `frames:${ev.rows}` : ev.kind);
      })(),
    ).rejects.toMatchObject({ code: '22012' });
    expect(seen).toEqual(['fields', 'frames:1']);
    // The connection is ready for the next statement.
    expect(conn.busy).toBe(false);
  });

  it('throws a shard error after ReadyForQuery with its status, and forgets a failed Parse', async () => {
    let fail = true;
    const { t, conn } = connection((req) =>
      fail ? [{ type: 'ErrorResponse', fields: { severity: 'ERROR', code: '42601', message: 'syntax', position: '3' } }, { type: 'ReadyForQuery', status: 'E' }] : selectServer(0)(req),
    );
    const err = await drain(conn.query({ sql: 'SELEC' })).catch((e: unknown) => e);
    expect(err instanceof PgError && [err.code, err.fields.position, err.shard]).toEqual(['42601', '3', 's0']);
    expect(conn.txStatus).toBe('E');
    expect(conn.busy).toBe(false);
    fail = false;
    await conn.rows('SELEC');
    expect(t.requests[1]?.some((m) => m.type === 'Parse')).toBe(true);
  });

  it('reports EmptyQueryResponse as an empty tag', async () => {
    const { conn } = connection(() => [{ type: 'ParseComplete' }, { type: 'BindComplete' }, { type: 'NoData' }, { type: 'EmptyQueryResponse' }, ready]);
    expect(await drain(conn.query({ sql: '' }))).toEqual([{ kind: 'complete', tag: '' }]);
  });

  it('keeps ParameterStatus values that arrive with a reply', async () => {
    const { conn } = connection(() => [{ type: 'ParameterStatus', name: 'TimeZone', value: 'UTC' }, { type: 'CommandComplete', tag: 'SET' }, ready]);
    expect(await conn.exec("SET TimeZone = 'UTC'")).toBe('SET');
    expect(conn.parameters.get('TimeZone')).toBe('UTC');
  });

  it('throws the FATAL error a dying server sent rather than a bare disconnect', async () => {
    const { conn } = connection(() => [{ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '57P01', message: 'terminating' } }]);
    const err = await conn.exec('SELECT 1').catch((e: unknown) => e);
    expect(err instanceof PgError && [err.code, err.fatal]).toEqual(['57P01', true]);
  });

  it('forgets every statement after DISCARD ALL', async () => {
    const { conn } = connection((req) => (req[0]?.type === 'Query' ? [{ type: 'CommandComplete', tag: 'DISCARD ALL' }, ready] : selectServer(0)(req)));
    await conn.rows('SELECT 1');
    await conn.rows('SELECT 1');
    expect(conn.cachedStatements).toBe(1);
    await conn.exec('DISCARD ALL');
    expect(conn.cachedStatements).toBe(0);
  });

  it('drains the rest of a result when the consumer leaves early', async () => {
    const { conn } = connection(selectServer(10));
    for await (const ev of conn.query({ sql: 'SELECT n', batchSize: 2 })) if (ev.kind === 'rows') break;
    expect(conn.busy).toBe(false);
    expect(await conn.rows('SELECT n')).toHaveLength(10);
  });
});
