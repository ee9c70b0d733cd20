import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FrontendMessage } from '../../../src/protocol/messages.js';
import { FakeEngine, testConfig } from './fake-engine.js';
import { serveSocket, sqlstate, startFixture } from './server-fixture.js';
import type { Fixture } from './server-fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

const parse = (sql: string, name = '', paramTypes: number[] = []): FrontendMessage => ({ type: 'Parse', name, sql, paramTypes });
const bind = (opts: { portal?: string; statement?: string; params?: (Buffer | null)[]; paramFormats?: (0 | 1)[]; resultFormats?: (0 | 1)[] } = {}): FrontendMessage => ({
  type: 'Bind',
  portal: opts.portal ?? '',
  statement: opts.statement ?? '',
  paramFormats: opts.paramFormats ?? [],
  params: opts.params ?? [],
  resultFormats: opts.resultFormats ?? [],
});
const execute = (maxRows = 0, portal = ''): FrontendMessage => ({ type: 'Execute', portal, maxRows });
const sync: FrontendMessage = { type: 'Sync' };

describe('extended query protocol', () => {
  it('runs unnamed and named statements with parameters (node-pg)', async () => {
    fx = await startFixture();
    const client = await fx.client();
    expect((await client.query({ text: 'select echo($1, $2)', values: ['a', null] })).rows).toEqual([{ p1: 'a', p2: null }]);
    const named = { name: 'e1', text: 'select echo($1)' };
    expect((await client.query({ ...named, values: ['x'] })).rows).toEqual([{ p1: 'x' }]);
    expect((await client.query({ ...named, values: ['y'] })).rows).toEqual([{ p1: 'y' }]);
    const session = fx.engine.last;
    expect(session.executed.at(-1)).toMatchObject({ sql: 'select echo($1)', params: [Buffer.from('y')], paramTypes: [25] });
    // One describe per distinct statement text: the named statement's second run reuses it.
    expect(session.described.filter((sql) => sql === 'select echo($1)')).toHaveLength(1);
  });

  it('suspends a portal at maxRows and continues it on the next Execute', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([parse('select rows(7)'), bind(), { type: 'Describe', target: 'P', name: '' }, execute(3), execute(3), execute(0), sync]);
    const messages = await client.until('ReadyForQuery');
    const shape = messages.map((m) => (m.type === 'DataRow' ? m.values[0]!.toString() : m.type));
    expect(shape).toEqual([
      'ParseComplete', 'BindComplete', 'RowDescription',
      '1', '2', '3', 'PortalSuspended',
      '4', '5', '6', 'PortalSuspended',
      '7', 'CommandComplete',
      'ReadyForQuery',
    ]);
    // As PostgreSQL: the tag of a portal run in several Executes counts the last one's rows.
    expect(messages.at(-2)).toEqual({ type: 'CommandComplete', tag: 'SELECT 1' });
    client.end();
  });

  it('describes statements and portals, applying result formats to the portal', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([
      parse('select echo($1, $2)', 's1', [23]),
      { type: 'Describe', target: 'S', name: 's1' },
      bind({ statement: 's1', params: [Buffer.from('1'), Buffer.from('2')], resultFormats: [1] }),
      { type: 'Describe', target: 'P', name: '' },
      parse('insert into t values (1)', 's2'),
      { type: 'Describe', target: 'S', name: 's2' },
      sync,
    ]);
    const messages = await client.until('ReadyForQuery');
    expect(messages.map((m) => m.type)).toEqual([
      'ParseComplete', 'ParameterDescription', 'RowDescription', 'BindComplete', 'RowDescription',
      'ParseComplete', 'ParameterDescription', 'NoData', 'ReadyForQuery',
    ]);
    expect(messages[1]).toEqual({ type: 'ParameterDescription', types: [23, 25] });
    const statementFields = messages[2]!.type === 'RowDescription' ? messages[2]!.fields : [];
    const portalFields = messages[4]!.type === 'RowDescription' ? messages[4]!.fields : [];
    expect(statementFields.map((f) => f.format)).toEqual([0, 0]);
    expect(portalFields.map((f) => f.format)).toEqual([1, 1]);
    client.end();
  });

  it('passes binary parameters and result formats through untouched', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    const int4 = Buffer.from([0, 0, 1, 0]);
    client.send([parse('select echo($1)', '', [23]), bind({ params: [int4], paramFormats: [1], resultFormats: [1] }), execute(), sync]);
    const messages = await client.until('ReadyForQuery');
    expect(messages.map((m) => m.type)).toEqual(['ParseComplete', 'BindComplete', 'DataRow', 'CommandComplete', 'ReadyForQuery']);
    expect(messages[2]).toEqual({ type: 'DataRow', values: [int4] });
    expect(fx.engine.last.executed.at(-1)).toMatchObject({ params: [int4], paramFormats: [1], resultFormats: [1], paramTypes: [23] });
    client.end();
  });

  it('skips everything after an error until Sync, then serves the next batch', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([parse("select fail('22P02')"), bind(), execute(), parse('select 1'), bind(), execute(), sync]);
    const failed = await client.until('ReadyForQuery');
    expect(failed.map((m) => m.type)).toEqual(['ParseComplete', 'BindComplete', 'ErrorResponse', 'ReadyForQuery']);
    expect(failed[2]).toMatchObject({ fields: { code: '22P02' } });
    // The second Parse/Bind/Execute of the batch never ran.
    expect(fx.engine.last.executed.map((s) => s.sql)).toEqual(["select fail('22P02')"]);
    client.send([parse('select 1'), bind(), execute(), sync]);
    expect((await client.until('ReadyForQuery')).map((m) => m.type)).toEqual(['ParseComplete', 'BindComplete', 'DataRow', 'CommandComplete', 'ReadyForQuery']);
    client.end();
  });

  it('reports prepared statement and portal errors with their SQLSTATEs', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    const errorOf = async (msgs: FrontendMessage[]): Promise<string | undefined> => {
      client.send([...msgs, sync]);
      const error = (await client.until('ReadyForQuery')).find((m) => m.type === 'ErrorResponse');
      return error?.type === 'ErrorResponse' ? error.fields.code : undefined;
    };
    expect(await errorOf([parse('select 1', 'dup')])).toBeUndefined();
    expect(await errorOf([parse('select 1', 'dup')])).toBe('42P05');
    expect(await errorOf([bind({ statement: 'missing' })])).toBe('26000');
    expect(await errorOf([execute(0, 'nope')])).toBe('34000');
    expect(await errorOf([{ type: 'Describe', target: 'S', name: 'missing' }])).toBe('26000');
    expect(await errorOf([parse('select echo($1, $2)'), bind({ params: [Buffer.from('1')] })])).toBe('08P01');
    expect(await errorOf([{ type: 'Close', target: 'S', name: 'dup' }, bind({ statement: 'dup' })])).toBe('26000');
    // The unnamed statement is simply replaced by a new Parse.
    expect(await errorOf([parse('select 1'), parse('select rows(2)'), bind(), execute()])).toBeUndefined();
    expect(fx.engine.last.executed.at(-1)?.sql).toBe('select rows(2)');
    client.end();
  });

  it('answers Flush with what is buffered, before any Sync', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([parse('select 1'), bind(), execute(), { type: 'Flush' }]);
    const messages = await client.until('CommandComplete');
    expect(messages.map((m) => m.type)).toEqual(['ParseComplete', 'BindComplete', 'DataRow', 'CommandComplete']);
    client.send([{ type: 'Close', target: 'P', name: '' }, sync]);
    expect((await client.until('ReadyForQuery')).map((m) => m.type)).toEqual(['CloseComplete', 'ReadyForQuery']);
    client.end();
  });

  it('closes portals at Sync outside a transaction block and keeps them inside one', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([parse('select rows(5)', 'r'), bind({ statement: 'r', portal: 'p' }), execute(2, 'p'), sync]);
    await client.until('ReadyForQuery');
    client.send([execute(2, 'p'), sync]);
    expect((await client.until('ReadyForQuery'))[0]).toMatchObject({ type: 'ErrorResponse', fields: { code: '34000' } });

    client.send([{ type: 'Query', sql: 'begin' }]);
    await client.until('ReadyForQuery');
    client.send([bind({ statement: 'r', portal: 'p' }), execute(2, 'p'), sync]);
    expect((await client.until('ReadyForQuery')).at(-1)).toEqual({ type: 'ReadyForQuery', status: 'T' });
    client.send([execute(0, 'p'), sync]);
    const rest = await client.until('ReadyForQuery');
    expect(rest.map((m) => (m.type === 'DataRow' ? m.values[0]!.toString() : m.type))).toEqual(['3', '4', '5', 'CommandComplete', 'ReadyForQuery']);
    client.end();
  });

  it('keeps a suspended unnamed portal when a Bind fails, and replaces it (closing it) with the next Bind', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'Query', sql: 'begin' }]);
    await client.until('ReadyForQuery');
    client.send([parse('select rows(5)', 'r'), parse('select echo($1, $2)', 'e'), bind({ statement: 'r' }), execute(2), sync]);
    await client.until('ReadyForQuery');
    // A wrong parameter count fails before the portal would be replaced, as in PostgreSQL.
    client.send([bind({ statement: 'e', params: [Buffer.from('1')] }), sync]);
    expect((await client.until('ReadyForQuery'))[0]).toMatchObject({ type: 'ErrorResponse', fields: { code: '08P01' } });
    client.send([execute(1), sync]);
    expect((await client.until('ReadyForQuery')).map((m) => (m.type === 'DataRow' ? m.values[0]!.toString() : m.type))).toEqual(['3', 'PortalSuspended', 'ReadyForQuery']);
    // A new Bind of the unnamed portal ends the suspended statement first.
    const session = fx.engine.last;
    const endedBefore = session.ended.filter((sql) => sql === 'select rows(5)').length;
    client.send([bind({ statement: 'e', params: [Buffer.from('a'), Buffer.from('b')] }), execute(), sync]);
    const replaced = await client.until('ReadyForQuery');
    expect(replaced.map((m) => m.type)).toEqual(['BindComplete', 'DataRow', 'CommandComplete', 'ReadyForQuery']);
    expect(session.ended.filter((sql) => sql === 'select rows(5)').length).toBe(endedBefore + 1);
    client.end();
  });

  it('answers an empty statement with EmptyQueryResponse', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([parse(''), bind(), execute(), sync]);
    expect((await client.until('ReadyForQuery')).map((m) => m.type)).toEqual(['ParseComplete', 'BindComplete', 'EmptyQueryResponse', 'ReadyForQuery']);
    client.end();
  });

  it('reports a failed describe or execute through node-pg with the engine SQLSTATE', async () => {
    fx = await startFixture();
    const client = await fx.client();
    expect(await sqlstate(client.query({ text: "select fail('23505')", values: [] }))).toBe('23505');
    expect((await client.query({ text: 'select echo($1)', values: [1] })).rows).toEqual([{ p1: '1' }]);
  });

  it('answers a pipelined Parse/Bind/Describe/Execute/Sync batch with one socket write', async () => {
    const engine = new FakeEngine();
    const config = testConfig({ trust: true });
    let writes = 0;
    const server = createServer((socket: Socket) => {
      const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
      socket.write = ((chunk: Buffer) => {
        writes++;
        return write(chunk);
      }) as typeof socket.write;
      serveSocket(socket, engine, config);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = await WireClient.login((server.address() as { port: number }).port);
      writes = 0;
      client.send([parse('select rows(4)'), bind(), { type: 'Describe', target: 'P', name: '' }, execute(), sync]);
      expect((await client.until('ReadyForQuery')).length).toBe(9);
      expect(writes).toBe(1);
      client.end();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
