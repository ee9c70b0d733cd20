import { afterEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/cluster.js';
import { eventually, sqlstate, startFixture } from './server-fixture.js';
import type { Fixture } from './server-fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

describe('simple query', () => {
  it('translates fields, rows and completion (node-pg)', async () => {
    fx = await startFixture();
    const client = await fx.client();
    const result = await client.query('select rows(7)');
    expect(result.rows.map((r: { n: number }) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(result.command).toBe('SELECT');
    expect(fx.engine.last.executed.map((s) => s.sql)).toEqual(['select rows(7)']);
  });

  it('runs a multi-statement string as one implicit transaction (psql)', async () => {
    fx = await startFixture();
    const result = await runCommand('psql', ['-h', '127.0.0.1', '-p', String(fx.port), '-U', 'app', '-X', '-A', '-t', '-c', 'insert into t values (1); select 1; select rows(2)', 'app'], {
      env: { PGPASSWORD: 'secret' },
      timeoutMs: 20_000,
    });
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual(['INSERT 0 1', '1', '1', '2']);
    expect(fx.engine.last.implicit).toEqual(['begin', 'commit']);

    const failing = await runCommand('psql', ['-h', '127.0.0.1', '-p', String(fx.port), '-U', 'app', '-X', '-A', '-t', '-c', "insert into t values (1); select fail('23505'); select rows(2)", 'app'], {
      env: { PGPASSWORD: 'secret' },
      timeoutMs: 20_000,
    });
    expect(failing.code).toBe(1);
    expect(failing.stdout.trim()).toBe('INSERT 0 1');
    expect(fx.engine.last.executed.map((st) => st.sql)).toEqual(['insert into t values (1)', "select fail('23505')"]);
    expect(fx.engine.last.implicit).toEqual(['begin', 'rollback']);
  });

  it('stops at the first error of a multi-statement string, shifts its position and rolls back', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    const sql = "insert into t values (1);  select fail('23505'); select 1";
    client.send([{ type: 'Query', sql }]);
    const messages = await client.until('ReadyForQuery');
    expect(messages.map((m) => m.type)).toEqual(['CommandComplete', 'ErrorResponse', 'ReadyForQuery']);
    const error = messages[1]!;
    // The fake reports position 3 in its own statement, which starts further into the string.
    const position = String(3 + sql.indexOf('select fail'));
    expect(error).toMatchObject({ type: 'ErrorResponse', fields: { code: '23505', position, detail: 'some detail', severity: 'ERROR' } });
    expect(fx.engine.last.executed.map((s) => s.sql)).toEqual(['insert into t values (1)', "select fail('23505')"]);
    expect(fx.engine.last.implicit).toEqual(['begin', 'rollback']);
    client.end();
  });

  it('reports ReadyForQuery with the session transaction status', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'Query', sql: 'begin' }]);
    expect((await client.until('ReadyForQuery')).at(-1)).toEqual({ type: 'ReadyForQuery', status: 'T' });
    client.send([{ type: 'Query', sql: "select fail('22012')" }]);
    expect((await client.until('ReadyForQuery')).at(-1)).toEqual({ type: 'ReadyForQuery', status: 'E' });
    client.send([{ type: 'Query', sql: 'select 1' }]);
    const failed = await client.until('ReadyForQuery');
    expect(failed[0]).toMatchObject({ type: 'ErrorResponse', fields: { code: '25P02' } });
    client.send([{ type: 'Query', sql: 'rollback' }]);
    expect((await client.until('ReadyForQuery')).at(-1)).toEqual({ type: 'ReadyForQuery', status: 'I' });
    client.end();
  });

  it('answers an empty query string with EmptyQueryResponse only', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    for (const sql of ['', '   ', ';', ' ; ;', '-- nothing']) {
      client.send([{ type: 'Query', sql }]);
      expect(await client.until('ReadyForQuery')).toEqual([{ type: 'EmptyQueryResponse' }, { type: 'ReadyForQuery', status: 'I' }]);
    }
    expect(fx.engine.last.executed).toHaveLength(0);
    client.end();
  });

  it('reports a syntax error of the string with a position in the whole text and runs nothing', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'Query', sql: 'select 1; select (' }]);
    const [error, ready] = await client.until('ReadyForQuery');
    expect(error).toMatchObject({ type: 'ErrorResponse', fields: { code: '42601', position: '19' } });
    expect(ready).toEqual({ type: 'ReadyForQuery', status: 'I' });
    expect(fx.engine.last.executed).toHaveLength(0);
    client.end();
  });

  it('forwards notices and parameter changes', async () => {
    fx = await startFixture();
    const client = await WireClient.login(fx.port);
    client.send([{ type: 'Query', sql: "select notice(); set timezone = 'UTC'" }]);
    const messages = await client.until('ReadyForQuery');
    expect(messages.map((m) => m.type)).toEqual(['NoticeResponse', 'CommandComplete', 'ParameterStatus', 'CommandComplete', 'ReadyForQuery']);
    expect(messages[2]).toEqual({ type: 'ParameterStatus', name: 'TimeZone', value: 'UTC' });
    client.end();
  });

  it('turns an unexpected exception into XX000 for that statement and keeps the session', async () => {
    fx = await startFixture();
    const client = await fx.client();
    expect(await sqlstate(client.query('select boom()'))).toBe('XX000');
    expect((await client.query('select 1')).rowCount).toBe(1);
  });

  it('closes the session when the client terminates or disconnects', async () => {
    fx = await startFixture();
    const a = await fx.client();
    await a.query('begin');
    const first = fx.engine.last;
    await a.end();
    await eventually(() => first.closed);

    const b = await WireClient.login(fx.port);
    b.send([{ type: 'Query', sql: 'begin' }]);
    await b.until('ReadyForQuery');
    const second = fx.engine.last;
    b.end();
    await eventually(() => second.closed);
    expect(fx.server.clientCount).toBe(0);
  });
});
