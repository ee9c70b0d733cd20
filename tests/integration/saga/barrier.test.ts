import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barrier, barrierTable, cleanupBarrier, ensureBarrierTable, type BarrierOutcome, type TccOp } from '../../../src/saga/barrier.js';
import { PgCluster } from '../../harness/cluster.js';

/** A schema name that needs quoting: mixed case, a space and a double quote. */
const schema = 'Saga "fences" x';

describe('TCC barrier on PostgreSQL', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 8 });
    // Twice, and twice at once: creation is idempotent and safe under concurrency.
    await Promise.all([0, 1].map(async () => {
      const c = await pool.connect();
      try {
        await ensureBarrierTable(c, { schema });
      } finally {
        c.release();
      }
    }));
    await pool.query('CREATE TABLE effects (gid text, branch text, op text)');
  });

  afterAll(async () => {
    await pool?.end();
    await cluster?.destroy();
  });

  /** One handler call as a participant runs it: its own local transaction, the business change inside the barrier. */
  async function handle(gid: string, op: TccOp, opts: { rollback?: boolean } = {}): Promise<BarrierOutcome<string>> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const out = await barrier(c, gid, 'b1', op, async () => {
        await c.query('INSERT INTO effects VALUES ($1, $2, $3)', [gid, 'b1', op]);
        return op;
      }, { schema });
      await c.query(opts.rollback === true ? 'ROLLBACK' : 'COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  }

  const effects = async (gid: string): Promise<string[]> =>
    (await pool.query<{ op: string }>('SELECT op FROM effects WHERE gid = $1 ORDER BY op', [gid])).rows.map((r) => r.op);

  it('creates the fence table under the quoted schema with its primary key and created_at index', async () => {
    const idx = await pool.query<{ indexdef: string }>('SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname', [schema, 'barrier']);
    expect(idx.rows.map((r) => r.indexdef)).toEqual([
      expect.stringContaining('(created_at)'),
      expect.stringContaining('(gid, branch_id, op)'),
    ]);
    expect(barrierTable({ schema })).toBe('"Saga ""fences"" x"."barrier"');
  });

  it('applies a repeated try, confirm and cancel once each', async () => {
    expect((await handle('g1', 'try')).kind).toBe('applied');
    expect(await handle('g1', 'try')).toEqual({ kind: 'skipped', why: 'duplicate' });
    expect((await handle('g1', 'confirm')).kind).toBe('applied');
    expect(await handle('g1', 'confirm')).toEqual({ kind: 'skipped', why: 'duplicate' });
    expect((await handle('g2', 'try')).kind).toBe('applied');
    expect((await handle('g2', 'cancel')).kind).toBe('applied');
    expect(await handle('g2', 'cancel')).toEqual({ kind: 'skipped', why: 'duplicate' });
    expect(await effects('g1')).toEqual(['confirm', 'try']);
    expect(await effects('g2')).toEqual(['cancel', 'try']);
  });

  it('turns a cancel before its try into an empty cancel, and the late try into nothing', async () => {
    expect(await handle('g3', 'cancel')).toEqual({ kind: 'skipped', why: 'empty-cancel' });
    expect(await handle('g3', 'try')).toEqual({ kind: 'skipped', why: 'after-cancel' });
    expect(await handle('g3', 'cancel')).toEqual({ kind: 'skipped', why: 'duplicate' });
    expect(await effects('g3')).toEqual([]);
  });

  it('removes the fence when the local transaction rolls back, so the retry applies', async () => {
    expect((await handle('g4', 'try', { rollback: true })).kind).toBe('applied');
    expect(await effects('g4')).toEqual([]);
    const fences = await pool.query(`SELECT 1 FROM ${barrierTable({ schema })} WHERE gid = 'g4'`);
    expect(fences.rowCount).toBe(0);
    expect((await handle('g4', 'try')).kind).toBe('applied');
    expect(await effects('g4')).toEqual(['try']);
  });

  it('runs fn once when two calls for the same fence race', async () => {
    // The first call holds its transaction open while the second is sent; the
    // second's insert must wait on the primary key and then skip.
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      await a.query('BEGIN');
      const first = await barrier(a, 'g5', 'b1', 'try', async () => {
        await a.query("INSERT INTO effects VALUES ('g5', 'b1', 'try')");
        return 'a';
      }, { schema });
      const bPid = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await b.query('BEGIN');
      const second = barrier(b, 'g5', 'b1', 'try', async () => {
        await b.query("INSERT INTO effects VALUES ('g5', 'b1', 'try')");
        return 'b';
      }, { schema });
      // b is blocked on a's uncommitted fence row: PostgreSQL reports it waiting on a's lock.
      for (;;) {
        const w = await pool.query('SELECT 1 FROM pg_locks WHERE NOT granted AND pid = $1', [bPid]);
        if (w.rowCount === 1) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await a.query('COMMIT');
      expect(first).toEqual({ kind: 'applied', value: 'a' });
      expect(await second).toEqual({ kind: 'skipped', why: 'duplicate' });
      await b.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
    // Many at once, no ordering forced: still exactly one application.
    const outs = await Promise.all(Array.from({ length: 8 }, () => handle('g6', 'try')));
    expect(outs.filter((o) => o.kind === 'applied')).toHaveLength(1);
    expect(await effects('g5')).toEqual(['try']);
    expect(await effects('g6')).toEqual(['try']);
  });

  it('cleans up only fences older than the retention', async () => {
    await handle('old', 'try');
    await handle('old', 'confirm');
    await handle('new', 'try');
    await pool.query(`UPDATE ${barrierTable({ schema })} SET created_at = now() - interval '2 hours' WHERE gid = 'old'`);
    expect(await cleanupBarrier(pool, 60 * 60_000, { schema, batch: 1 })).toEqual({ deleted: 2, batches: 3 });
    const left = await pool.query<{ gid: string }>(`SELECT DISTINCT gid FROM ${barrierTable({ schema })} WHERE gid IN ('old', 'new')`);
    expect(left.rows.map((r) => r.gid)).toEqual(['new']);
    await expect(cleanupBarrier(pool, -1, { schema })).rejects.toThrow(RangeError);
  });
});
