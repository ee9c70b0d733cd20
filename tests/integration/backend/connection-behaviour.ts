import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BackendConnection } from '../../../src/backend/backend-connection.js';
import { PgliteTransport } from '../../../src/backend/pglite-transport.js';
import { TcpTransport } from '../../../src/backend/tcp-transport.js';
import type { PreludeEvent, ShardEvent, ShardQuery } from '../../../src/engine/shard-cursor.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { RawRow } from '../../../src/protocol/fields.js';

/** Opens a connection of the kind under test (each call a new one for networked shards; the one session for embedded). */
export type Connect = (opts?: { statementCacheSize?: number }) => Promise<BackendConnection>;

export interface Collected {
  fields: ShardEvent[];
  rows: RawRow[];
  batches: number[];
  notices: ShardEvent[];
  tag: string | null;
}

export async function collect(conn: BackendConnection, q: ShardQuery): Promise<Collected> {
  const out: Collected = { fields: [], rows: [], batches: [], notices: [], tag: null };
  for await (const ev of conn.query(q)) {
    if (ev.kind === 'fields') out.fields.push(ev);
    else if (ev.kind === 'rows') {
      out.batches.push(ev.rows.length);
      out.rows.push(...ev.rows);
    } else if (ev.kind === 'notice') out.notices.push(ev);
    else if (ev.kind === 'complete') out.tag = ev.tag;
    else throw new Error(`${ev.kind} from a query without relay`);
  }
  return out;
}

export async function pgErrorOf(p: Promise<unknown>): Promise<PgError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error('expected a PgError');
}

const text = (v: Buffer | null | undefined): string | null => (v === null || v === undefined ? null : v.toString('utf8'));

/**
 * What every kind of shard connection must do alike. `connect` is called once
 * per test group; the same assertions run against PostgreSQL and PGlite.
 * `keepOpen` leaves the connection open afterwards (an embedded session shared with other tests).
 */
export function connectionBehaviour(kind: string, connect: Connect, keepOpen = false): void {
  describe(`${kind} connection`, () => {
    let conn: BackendConnection;
    beforeAll(async () => {
      conn = await connect();
      await conn.exec('DROP TABLE IF EXISTS e; CREATE TABLE e (id int PRIMARY KEY, v int CONSTRAINT v_pos CHECK (v > 0))');
      await conn.exec('DROP TABLE IF EXISTS c; CREATE TABLE c (id int, name text)');
    });
    afterAll(async () => {
      if (!keepOpen) await conn?.close();
    });

    it('reports its server version', () => {
      expect(conn.serverVersion).toMatch(/^\d+/);
    });

    it('streams 100k rows in batches of at most batchSize, holding little while the consumer waits', async () => {
      let count = 0;
      let maxBatch = 0;
      let first = true;
      let heldWhileWaiting = -1;
      for await (const ev of conn.query({ sql: "SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g", batchSize: 500 })) {
        if (ev.kind !== 'rows') continue;
        count += ev.rows.length;
        maxBatch = Math.max(maxBatch, ev.rows.length);
        if (first) {
          first = false;
          // The shard keeps producing meanwhile; what reaches us must stay bounded (the result is ~11 MB).
          await new Promise((r) => setTimeout(r, 300));
          heldWhileWaiting = conn.bufferedBytes;
        }
      }
      expect(count).toBe(100_000);
      expect(maxBatch).toBe(500);
      expect(heldWhileWaiting).toBeGreaterThanOrEqual(0);
      expect(heldWhileWaiting).toBeLessThan(1024 * 1024);
    });

    it('passes text and binary parameters and returns binary results', async () => {
      const four = Buffer.alloc(4);
      four.writeInt32BE(41);
      const r = await collect(conn, {
        sql: 'SELECT $1::int4 + 1 AS n, $2::text AS t, $3::text IS NULL AS isnull',
        params: [four, 'héllo', null],
        paramFormats: [1, 0, 0],
        resultFormats: [1, 0, 0],
      });
      const fields = r.fields[0];
      expect(fields?.kind === 'fields' && fields.fields.map((f) => [f.name, f.typeOid, f.format])).toEqual([
        ['n', 23, 1],
        ['t', 25, 0],
        ['isnull', 16, 0],
      ]);
      expect(r.rows[0]?.[0]?.readInt32BE()).toBe(42);
      expect(text(r.rows[0]?.[1])).toBe('héllo');
      expect(text(r.rows[0]?.[2])).toBe('t');
      expect(r.tag).toBe('SELECT 1');
    });

    it('yields notices in order with the rows', async () => {
      const r = await collect(conn, { sql: "DO $$ BEGIN RAISE NOTICE 'hello %', 7; END $$" });
      expect(r.notices).toHaveLength(1);
      const n = r.notices[0];
      expect(n?.kind === 'notice' && [n.fields.code, n.fields.message]).toEqual(['00000', 'hello 7']);
      expect(r.tag).toBe('DO');
      expect(r.fields).toHaveLength(0); // NoData
    });

    it('throws shard errors with every field and stays usable', async () => {
      const check = await pgErrorOf(collect(conn, { sql: 'INSERT INTO e VALUES (1, -1)' }));
      expect([check.code, check.fields.constraint, check.fields.table, check.fields.schema, check.shard]).toEqual(['23514', 'v_pos', 'e', 'public', conn.shard]);
      const syntax = await pgErrorOf(collect(conn, { sql: 'SELECT * FRM e' }));
      expect([syntax.code, syntax.fields.position]).toEqual(['42601', '10']);
      expect(conn.txStatus).toBe('I');
      expect(await conn.rows('SELECT $1::int + 1', ['1'])).toEqual([['2']]);
    });

    it('reports a failed transaction block and recovers with ROLLBACK', async () => {
      await conn.exec('BEGIN');
      const err = await pgErrorOf(conn.rows('SELECT 1/0'));
      expect(err.code).toBe('22012');
      expect(conn.txStatus).toBe('E');
      expect((await pgErrorOf(conn.rows('SELECT 1'))).code).toBe('25P02');
      expect(await conn.exec('ROLLBACK')).toBe('ROLLBACK');
      expect(conn.txStatus).toBe('I');
    });

    it('discards the rest after an early break and serves the next statement', async () => {
      for await (const ev of conn.query({ sql: 'SELECT g FROM generate_series(1, 100000) g', batchSize: 100 })) {
        if (ev.kind === 'rows') break;
      }
      expect(conn.busy).toBe(false);
      expect(conn.txStatus).toBe('I');
      expect(await conn.rows('SELECT 5')).toEqual([['5']]);
      // Inside a transaction block the statement is drained, not cancelled: the transaction survives.
      await conn.exec('BEGIN');
      await conn.exec('INSERT INTO c VALUES (1, $$kept$$)');
      for await (const ev of conn.query({ sql: 'SELECT g FROM generate_series(1, 50000) g', batchSize: 100 })) {
        if (ev.kind === 'rows') break;
      }
      expect(conn.txStatus).toBe('T');
      expect(await conn.rows("SELECT name FROM c WHERE name = 'kept'")).toEqual([['kept']]);
      await conn.exec('ROLLBACK');
    });

    it('describes parameters and result columns', async () => {
      const d = await conn.describe('SELECT $1::int AS a, $2::text AS b');
      expect(d.paramTypes).toEqual([23, 25]);
      expect(d.fields?.map((f) => [f.name, f.typeOid])).toEqual([
        ['a', 23],
        ['b', 25],
      ]);
      const ins = await conn.describe('INSERT INTO c VALUES ($1, $2)', [0, 25]);
      expect(ins.paramTypes).toEqual([23, 25]);
      expect(ins.fields).toBeNull();
      expect((await pgErrorOf(conn.describe('SELECT nope FROM e'))).code).toBe('42703');
    });

    it('runs several statements with exec and returns the last tag', async () => {
      expect(await conn.exec("INSERT INTO c VALUES (10, 'a'); INSERT INTO c VALUES (11, 'b'); SELECT 1")).toBe('SELECT 1');
      expect(await conn.exec('DELETE FROM c WHERE id IN (10, 11)')).toBe('DELETE 2');
      const err = await pgErrorOf(conn.exec('SELECT 1; SELECT nope; SELECT 3'));
      expect(err.code).toBe('42703');
      expect(await conn.exec('SELECT 1')).toBe('SELECT 1');
    });

    it('copies in and out', async () => {
      await conn.exec('TRUNCATE c');
      const sink = await conn.copyIn('COPY c FROM STDIN');
      expect(conn.busy).toBe(true);
      for (let chunk = 0; chunk < 10; chunk++) {
        let data = '';
        for (let i = 0; i < 1000; i++) data += `${chunk * 1000 + i}\tname ${i}\n`;
        await sink.write(Buffer.from(data));
      }
      expect(await sink.end()).toBe('COPY 10000');
      expect(conn.busy).toBe(false);
      const out: Buffer[] = [];
      const it = conn.copyOut('COPY (SELECT id, name FROM c ORDER BY id LIMIT 3) TO STDOUT');
      let r = await it.next();
      while (r.done !== true) {
        out.push(r.value);
        r = await it.next();
      }
      expect(r.value).toBe('COPY 3');
      expect(Buffer.concat(out).toString()).toBe('0\tname 0\n1\tname 1\n2\tname 2\n');
      expect(await conn.rows('SELECT count(*) FROM c')).toEqual([['10000']]);
    });

    it('reports bad COPY data at the end, and CopyFail leaves nothing', async () => {
      await conn.exec('TRUNCATE c');
      const bad = await conn.copyIn('COPY c FROM STDIN');
      await bad.write(Buffer.from('1\tok\nnot-a-number\tbad\n'));
      expect((await pgErrorOf(bad.end())).code).toBe('22P02');
      const failed = await conn.copyIn('COPY c FROM STDIN (FORMAT csv)');
      await failed.write(Buffer.from('1,one\n'));
      await failed.fail('changed my mind');
      expect(await conn.rows('SELECT count(*) FROM c')).toEqual([['0']]);
      expect((await pgErrorOf(conn.copyIn('COPY nope FROM STDIN').then((s) => s.end()))).code).toBe('42P01');
      expect(conn.busy).toBe(false);
    });

    it('fails a COPY FROM STDIN sent through exec instead of hanging', async () => {
      expect((await pgErrorOf(conn.exec('COPY c FROM STDIN'))).code).toBe('57014');
      expect((await pgErrorOf(collect(conn, { sql: 'COPY c FROM STDIN' }))).code).toBe('57014');
      expect(await conn.exec('SELECT 1')).toBe('SELECT 1');
    });

    it('parses a repeated statement once and closes evicted ones', async () => {
      const small = await connect({ statementCacheSize: 2 });
      const target = small === conn ? conn : small;
      try {
        const sql = 'SELECT $1::int * 2 AS twice';
        for (let i = 0; i < 3; i++) expect(await target.rows(sql, [String(i)])).toEqual([[String(i * 2)]]);
        const count = 'SELECT count(*) FROM pg_prepared_statements WHERE statement = $1';
        expect(await target.rows(count, [sql])).toEqual([['1']]);
        // Statements are named on their second use: these two take the cache's two places.
        for (const other of ['SELECT 101', 'SELECT 101', 'SELECT 102', 'SELECT 102']) await target.rows(other);
        // Cache of 2: the statement parsed first is gone from the shard too.
        if (small !== conn) expect(await target.rows(count, [sql])).toEqual([['0']]);
      } finally {
        if (small !== conn) await small.close();
      }
    });

    it('parses again after DISCARD ALL and after a table change invalidates a cached statement', async () => {
      await conn.rows('SELECT id FROM e WHERE id = $1', ['1']);
      await conn.exec('DISCARD ALL');
      conn.settings.clear();
      expect(await conn.rows('SELECT id FROM e WHERE id = $1', ['1'])).toEqual([]);
      await conn.exec('DROP TABLE IF EXISTS alt; CREATE TABLE alt (a int)');
      await conn.exec('INSERT INTO alt VALUES (1)');
      expect(await conn.rows('SELECT * FROM alt')).toEqual([['1']]);
      await conn.exec('ALTER TABLE alt ADD COLUMN b int');
      // The cached plan's result type changed: one error at most, then the statement is parsed afresh.
      let rows: (string | null)[][] | undefined;
      try {
        rows = await conn.rows('SELECT * FROM alt');
      } catch (err) {
        expect((err as PgError).code).toBe('0A000');
        rows = await conn.rows('SELECT * FROM alt');
      }
      expect(rows).toEqual([['1', null]]);
    });

    it('refuses a second operation while one runs', async () => {
      const it = conn.query({ sql: 'SELECT g FROM generate_series(1, 10) g', batchSize: 2 })[Symbol.asyncIterator]();
      await it.next();
      expect((await pgErrorOf(conn.exec('SELECT 1'))).code).toBe('XX000');
      await it.return?.();
      expect(await conn.exec('SELECT 1')).toBe('SELECT 1');
    });
  });

  describe(`${kind} connection prelude`, () => {
    let conn: BackendConnection;
    let events: string[];
    const TAG = "SET LOCAL application_name = 'sg_prelude_test'";
    const listener = (ev: PreludeEvent): void => void events.push(ev.kind === 'sent' ? 'sent' : `failed ${ev.error.code}`);
    /** Messages written to any shard (each send is one write; a networked round trip is one send). */
    const sends = (): number => tcpSend.mock.calls.length + pgliteSend.mock.calls.length;
    const tcpSend = vi.spyOn(TcpTransport.prototype, 'send');
    const pgliteSend = vi.spyOn(PgliteTransport.prototype, 'send');

    beforeAll(async () => {
      conn = await connect();
      await conn.exec('DROP TABLE IF EXISTS p; CREATE TABLE p (id int PRIMARY KEY)');
    });
    afterEach(async () => {
      if (conn.txStatus !== 'I') await conn.exec('ROLLBACK');
      conn.discardPrelude();
      await conn.exec('TRUNCATE p');
    });
    afterAll(async () => {
      tcpSend.mockRestore();
      pgliteSend.mockRestore();
      if (!keepOpen) await conn?.close();
    });
    const count = async (): Promise<string | null | undefined> => (await conn.rows('SELECT count(*) FROM p'))[0]?.[0];

    it('runs the queued statements in the same write as the next statement, which runs in the transaction they open', async () => {
      events = [];
      let before = sends();
      await collect(conn, { sql: 'INSERT INTO p VALUES (0)' });
      const alone = sends() - before;
      await conn.exec('TRUNCATE p');

      expect(conn.prelude(['BEGIN', TAG, 'SAVEPOINT "s"'], listener)).toBe(true);
      expect(conn.preludeQueued).toBe(true);
      before = sends();
      const r = await collect(conn, { sql: 'INSERT INTO p VALUES ($1)', params: ['1'] });
      expect(sends() - before).toBe(alone);
      expect(r.tag).toBe('INSERT 0 1');
      expect(r.notices).toEqual([]);
      expect(events).toEqual(['sent']);
      expect(conn.txStatus).toBe('T');
      expect(await conn.rows("SELECT current_setting('application_name')")).toEqual([['sg_prelude_test']]);
      expect(await conn.exec('ROLLBACK TO SAVEPOINT "s"')).toBe('ROLLBACK');
      expect(await count()).toBe('0');
      await conn.exec('INSERT INTO p VALUES (2)');
      expect(await conn.exec('ROLLBACK')).toBe('ROLLBACK');
      expect(await count()).toBe('0');
    });

    it('does not run the statement when BEGIN fails, on either protocol', async () => {
      const runs: [string, () => Promise<unknown>][] = [
        ['query', () => collect(conn, { sql: 'INSERT INTO p VALUES (1)' })],
        ['rows (cached statement)', () => conn.rows('INSERT INTO p VALUES ($1::int + 1) RETURNING id', ['1'])],
        ['exec', () => conn.exec('INSERT INTO p VALUES (3); INSERT INTO p VALUES (4)')],
        ['copyIn', async () => (await conn.copyIn('COPY p FROM STDIN')).end()],
      ];
      for (const [what, run] of runs) {
        events = [];
        conn.prelude(['BEGIN ISOLATION LEVEL bogus', TAG], listener);
        const err = await pgErrorOf(run());
        expect([what, err.code]).toEqual([what, '42601']);
        expect(events).toEqual(['sent', 'failed 42601']);
        expect(conn.txStatus).toBe('I');
        expect(conn.busy).toBe(false);
        expect(await count()).toBe('0');
      }
      // The statement whose Parse was skipped is parsed again next time.
      expect(await conn.rows('INSERT INTO p VALUES ($1::int + 1) RETURNING id', ['1'])).toEqual([['2']]);
    });

    it('does not run the statement when a statement after BEGIN fails, leaving the block failed', async () => {
      for (const run of [() => collect(conn, { sql: 'INSERT INTO p VALUES (1)' }), () => conn.exec('INSERT INTO p VALUES (1)')]) {
        events = [];
        conn.prelude(['BEGIN', "SET LOCAL work_mem = 'plenty'"], listener);
        expect((await pgErrorOf(run())).code).toBe('22023');
        expect(events).toEqual(['sent', 'failed 22023']);
        expect(conn.txStatus).toBe('E');
        await conn.exec('ROLLBACK');
        expect(await count()).toBe('0');
      }
    });

    it('carries the queued statements on exec, rows, describe, copyIn and copyOut alike', async () => {
      const drain = async (it: AsyncGenerator<Buffer, string>): Promise<string> => {
        let r = await it.next();
        while (r.done !== true) r = await it.next();
        return r.value;
      };
      const runs: [string, () => Promise<unknown>][] = [
        ['exec', async () => expect(await conn.exec('INSERT INTO p VALUES (1); SELECT 1')).toBe('SELECT 1')],
        ['rows', async () => expect(await conn.rows('INSERT INTO p VALUES (1) RETURNING id')).toEqual([['1']])],
        ['describe', async () => expect((await conn.describe('SELECT $1::int')).paramTypes).toEqual([23])],
        ['copyOut', async () => expect(await drain(conn.copyOut('COPY (SELECT 1) TO STDOUT'))).toBe('COPY 1')],
        [
          'copyIn',
          async () => {
            const sink = await conn.copyIn('COPY p FROM STDIN');
            await sink.write(Buffer.from('1\n2\n'));
            expect(await sink.end()).toBe('COPY 2');
          },
        ],
      ];
      for (const [what, run] of runs) {
        events = [];
        conn.prelude(['BEGIN', TAG], listener);
        await run();
        expect([what, events, conn.txStatus]).toEqual([what, ['sent'], 'T']);
        expect(await conn.rows("SELECT current_setting('application_name')")).toEqual([['sg_prelude_test']]);
        await conn.exec('ROLLBACK');
        expect(await count()).toBe('0');
      }
    });

    it('drains instead of cancelling a read left early inside the transaction it opened', async () => {
      conn.prelude(['BEGIN'], () => undefined);
      for await (const ev of conn.query({ sql: 'SELECT g FROM generate_series(1, 100000) g', batchSize: 100 })) {
        if (ev.kind === 'rows') break;
      }
      expect(conn.txStatus).toBe('T');
      await conn.exec('ROLLBACK');
    });

    it('sends nothing queued once withdrawn or discarded', async () => {
      events = [];
      conn.prelude(['BEGIN'], listener);
      conn.prelude([], listener);
      expect(conn.preludeQueued).toBe(false);
      await conn.exec('INSERT INTO p VALUES (1)');
      conn.prelude(['BEGIN'], listener);
      conn.discardPrelude();
      await conn.rows('INSERT INTO p VALUES (2)');
      expect(events).toEqual([]);
      expect(conn.txStatus).toBe('I');
      expect(await count()).toBe('2');
    });
  });
}
