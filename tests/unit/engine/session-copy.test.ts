import { describe, expect, it } from 'vitest';
import type { Session } from '../../../src/engine/session.js';
import type { ExecEvent } from '../../../src/engine/session-api.js';
import type { LoggingConnector } from './logging-cursor.js';
import { enginePerTest } from './engine-fixture.js';

const { setup, engine } = enginePerTest();

/** Runs COPY FROM STDIN, feeding `chunks` to the sink; returns the tag. */
async function copyIn(session: Session, sql: string, chunks: readonly string[]): Promise<string> {
  let tag = '';
  for await (const ev of session.execute({ sql })) {
    if (ev.kind === 'copyIn') {
      for (const c of chunks) await ev.sink.write(Buffer.from(c));
      await ev.sink.end();
    } else if (ev.kind === 'complete') tag = ev.tag;
  }
  return tag;
}

function dataOn(connector: LoggingConnector, shard: string): string {
  return connector.log.filter((e) => e.shard === shard && e.kind === 'copyData').map((e) => e.data!.toString()).join('');
}

describe('COPY FROM STDIN', () => {
  it('routes each row to the shard owning its key, atomically across shards', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const tag = await copyIn(session, 'COPY accounts (id, balance) FROM STDIN', ['1\t10\n2\t2', '0\n3\t30\n4\t40\n']);
    expect(tag).toBe('COPY 4');
    expect(dataOn(connector, 's1')).toBe('1\t10\n4\t40\n');
    expect(dataOn(connector, 's2')).toBe('2\t20\n');
    expect(dataOn(connector, 's0')).toBe('3\t30\n');
    const all = ['s0', 's1', 's2'].flatMap((s) => connector.statements(s));
    expect(all.filter((s) => s.startsWith('PREPARE TRANSACTION'))).toHaveLength(2);
    expect(connector.inUse()).toEqual([]);
  });

  it('finds the key in the table column order when no column list is given, and repeats a CSV header on each shard', async () => {
    const connector = await setup(({ kind, sql }) => (kind === 'rows' && sql.includes('pg_attribute') ? { rows: [['balance'], ['id']] } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const tag = await copyIn(session, 'COPY accounts FROM STDIN WITH (FORMAT csv, HEADER true)', ['balance,id\n', '"10",1\n20,"2"\n']);
    expect(tag).toBe('COPY 2');
    expect(dataOn(connector, 's1')).toBe('balance,id\n"10",1\n');
    expect(dataOn(connector, 's2')).toBe('balance,id\n20,"2"\n');
  });

  it('sends every row of a broadcast table to every shard and counts them once', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const tag = await copyIn(session, 'COPY countries FROM STDIN', ['fr\tFrance\n', 'de\tGermany\n']);
    expect(tag).toBe('COPY 2');
    for (const s of ['s0', 's1', 's2']) expect(dataOn(connector, s)).toBe('fr\tFrance\nde\tGermany\n');
  });

  it('aborts every shard and rolls back when a row has no key', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const events: ExecEvent[] = [];
    let writeError: unknown;
    const run = async (): Promise<void> => {
      for await (const ev of session.execute({ sql: 'COPY accounts (id, balance) FROM STDIN' })) {
        events.push(ev);
        if (ev.kind === 'copyIn') {
          await ev.sink.write(Buffer.from('1\t10\n\\N\t5\n')).catch((e: unknown) => (writeError = e));
          await ev.sink.end().catch(() => undefined);
        }
      }
    };
    await expect(run()).rejects.toMatchObject({ code: '22023' });
    expect(writeError).toMatchObject({ code: '22023' });
    expect(connector.log.filter((e) => e.kind === 'copyFail').map((e) => e.shard)).toEqual(['s1']);
    expect(connector.statements('s1').at(-1)).toBe('ROLLBACK');
    expect(connector.inUse()).toEqual([]);
  });

  it('fails the statement with 57014 when the client sends CopyFail', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    const run = async (): Promise<void> => {
      for await (const ev of session.execute({ sql: 'COPY accounts (id, balance) FROM STDIN' })) {
        if (ev.kind === 'copyIn') {
          await ev.sink.write(Buffer.from('1\t10\n'));
          await ev.sink.fail('client gave up');
        }
      }
    };
    await expect(run()).rejects.toMatchObject({ code: '57014' });
    expect(connector.inUse()).toEqual([]);
  });
});

describe('COPY TO STDOUT', () => {
  it('concatenates the shards output in order and sums the rows', async () => {
    await setup(({ kind, shard }) => (kind === 'copyOut' ? { copyData: [Buffer.from(`${shard}-a\n`), Buffer.from(`${shard}-b\n`)] } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    const events: ExecEvent[] = [];
    for await (const ev of session.execute({ sql: 'COPY accounts TO STDOUT' })) events.push(ev);
    expect(events[0]).toMatchObject({ kind: 'copyOut', format: 0 });
    const data = events.flatMap((e) => (e.kind === 'copyData' ? [e.data.toString()] : [])).join('');
    expect(data).toBe('s0-a\ns0-b\ns1-a\ns1-b\ns2-a\ns2-b\n');
    expect(events.at(-1)).toEqual({ kind: 'complete', tag: 'COPY 6' });
  });

  it('keeps one header and one trailer for binary output', async () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
    const tuple = (n: number): Buffer => Buffer.from([0, 1, 0, 0, 0, 1, n]);
    const trailer = Buffer.from([0xff, 0xff]);
    await setup(({ kind, shard }) =>
      kind === 'copyOut' ? { copyData: [Buffer.concat([header, tuple(Number(shard.slice(1)))]), trailer], tag: 'COPY 1' } : undefined,
    );
    const session = engine().session({ user: 'app', database: 'app' });
    const chunks: Buffer[] = [];
    for await (const ev of session.execute({ sql: 'COPY accounts TO STDOUT (FORMAT binary)' })) if (ev.kind === 'copyData') chunks.push(ev.data);
    expect(Buffer.concat(chunks)).toEqual(Buffer.concat([header, tuple(0), tuple(1), tuple(2), trailer]));
  });
});
