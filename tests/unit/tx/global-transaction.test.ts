import { describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Failpoints, TransactionManager } from '../../../src/tx/index.js';
import { GATE_SHARED_SQL } from '../../../src/tx/cut.js';
import { seededRandom } from '../../harness/seeded-random.js';
import { FakeSource, type FakeConnection } from './fake-connection.js';

const [s0, s1, s2] = ['s0', 's1', 's2'].map(shardName) as [ReturnType<typeof shardName>, ReturnType<typeof shardName>, ReturnType<typeof shardName>];

function setup(failpoints = new Failpoints()): { source: FakeSource; tm: TransactionManager<FakeConnection> } {
  const source = new FakeSource(['s0', 's1', 's2']);
  const tm = new TransactionManager<FakeConnection>({ coordinatorId: 'gw1', source, prepareTimeoutMs: 1_000, acquireTimeoutMs: 100, recoveryIntervalMs: 0, deadlockCheckMs: 0, failpoints });
  return { source, tm };
}

/** Writes on each shard in turn; the anchor of a two-phase commit is the writer whose first write came last. */
async function writeOn(tx: ReturnType<TransactionManager<FakeConnection>['begin']>, ...shards: (typeof s0)[]): Promise<void> {
  for (const s of shards) {
    await (await tx.participant(s)).exec('UPDATE t SET x = 1');
    tx.markWritten(s);
  }
}

const pgError = (code: string, extra: Record<string, string> = {}): PgError => new PgError({ severity: 'ERROR', code, message: code, ...extra });

describe('GlobalTransaction commit paths', () => {
  it('joins a shard with BEGIN, a SET LOCAL application_name tag and the active savepoints', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({ beginSql: 'BEGIN ISOLATION LEVEL SERIALIZABLE', setup: async (c) => void (await c.exec('SET search_path = app')) });
    expect(tx.id).toMatch(/^sg_gw1_[0-9a-z]+$/);
    expect(Buffer.byteLength(tx.id)).toBeLessThanOrEqual(63);
    await tx.participant(s0);
    await tx.savepoint('a"b');
    await tx.participant(s1);
    expect(source.on('s1')).toEqual([`SET search_path = app`, `BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL application_name = '${tx.id}'; SAVEPOINT "a""b"`]);
    await tx.rollback();
    expect(source.inUse).toBe(0);
  });

  it('commits read-only participants first, then the single writer with plain COMMIT', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s1);
    await tx.participant(s0);
    expect(await tx.commit()).toBe('COMMIT');
    const commits = source.log.filter((l) => l.endsWith('COMMIT'));
    expect(commits).toEqual(['s0: COMMIT', 's1: COMMIT']);
    expect(source.log.some((l) => l.includes('PREPARE'))).toBe(false);
    expect(source.inUse).toBe(0);
  });

  it('runs two-phase commit: read-only COMMIT, PREPARE on non-anchors, decision + COMMIT on the anchor, then COMMIT PREPARED', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    await tx.participant(s2);
    expect(await tx.commit()).toBe('COMMIT');
    const gid = tx.gid!;
    expect(gid).toBe(tx.id.replace(/^sg_gw1_/, 'sg_gw1_s0_'));
    const steps = source.log.filter((l) => !l.includes('BEGIN') && !l.includes('UPDATE'));
    expect(steps).toEqual([
      's2: COMMIT',
      `s1: PREPARE TRANSACTION '${gid}_s1'`,
      `s0: ${GATE_SHARED_SQL}; INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES ('${gid}', 'commit', '{"s1"}'); COMMIT`,
      `s1: COMMIT PREPARED '${gid}_s1'`,
    ]);
    expect(tx.state).toBe('committed');
    expect(source.inUse).toBe(0);
  });

  /** The shard that took the decision row and the shards that got PREPARE TRANSACTION, read from the log. */
  function anchorOf(source: FakeSource): { decision: string[]; prepared: string[] } {
    const decision = source.log.filter((l) => l.includes('INSERT INTO shardgate.tx_decision')).map((l) => l.split(': ')[0]!);
    const prepared = source.log.filter((l) => l.includes('PREPARE TRANSACTION')).map((l) => l.split(': ')[0]!);
    return { decision, prepared: prepared.sort() };
  }

  it('anchors two-phase commit on the writer whose first write came last: writes on s0, s1, s2 put the decision on s2', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s0, s1, s2);
    expect(await tx.commit()).toBe('COMMIT');
    const gid = tx.gid!;
    expect(gid).toBe(tx.id.replace(/^sg_gw1_/, 'sg_gw1_s2_'));
    expect(anchorOf(source)).toEqual({ decision: ['s2'], prepared: ['s0', 's1'] });
    expect(source.on('s2').at(-1)).toBe(
      `${GATE_SHARED_SQL}; INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES ('${gid}', 'commit', '{"s0","s1"}'); COMMIT`,
    );
    expect(source.on('s0').at(-1)).toBe(`COMMIT PREPARED '${gid}_s0'`);
    expect(source.on('s1').at(-1)).toBe(`COMMIT PREPARED '${gid}_s1'`);
  });

  it('counts a shard from its first write, not from when it joined nor from its later writes', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await (await tx.participant(s0)).exec('SELECT 1'); // s0 joins first, with a read
    await writeOn(tx, s2, s1, s0); // ...and writes last: the anchor
    await writeOn(tx, s2); // a second write on s2 does not move it after s0
    expect(await tx.commit()).toBe('COMMIT');
    expect(tx.gid).toBe(tx.id.replace(/^sg_gw1_/, 'sg_gw1_s0_'));
    expect(anchorOf(source)).toEqual({ decision: ['s0'], prepared: ['s1', 's2'] });
  });

  it('names exactly one anchor, the last first writer, for any order of joins, reads and repeated writes (seeded)', async () => {
    const random = seededRandom(13);
    const shards = [s0, s1, s2];
    for (let round = 0; round < 200; round++) {
      const { source, tm } = setup();
      const tx = tm.begin({});
      const firstWrites: string[] = [];
      for (let step = 0; step < 6; step++) {
        const shard = shards[Math.floor(random() * shards.length)]!;
        if (random() < 0.3) {
          await (await tx.participant(shard)).exec('SELECT 1');
        } else {
          await writeOn(tx, shard);
          if (!firstWrites.includes(shard)) firstWrites.push(shard);
        }
      }
      await tx.commit();
      const { decision, prepared } = anchorOf(source);
      if (firstWrites.length < 2) {
        expect(decision, `round ${round}`).toEqual([]);
        continue;
      }
      expect({ decision, prepared }, `round ${round}: first writes ${firstWrites.join(', ')}`).toEqual({
        decision: [firstWrites.at(-1)],
        prepared: firstWrites.slice(0, -1).sort(),
      });
      expect(tx.gid).toBe(tx.id.replace(/^sg_gw1_/, `sg_gw1_${firstWrites.at(-1)}_`));
    }
  });

  it('commits read-only branches in the same round trip as the PREPAREs, and rolls the prepared ones back when one of them fails', async () => {
    const { source, tm } = setup();
    let release: () => void = () => undefined;
    const readOnlyCommit = new Promise<void>((resolve) => (release = resolve));
    source.respond = (shard, sql) => {
      if (shard === s2 && sql === 'COMMIT') throw pgError('40001');
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    const reader = await tx.participant(s2);
    const exec = reader.exec.bind(reader);
    // The read-only COMMIT answers only once the PREPARE went out: they travel together.
    reader.exec = async (sql) => {
      if (sql === 'COMMIT') await readOnlyCommit;
      return exec(sql);
    };
    const prepared = (async () => {
      while (!source.log.some((l) => l.startsWith('s1: PREPARE'))) await new Promise((r) => setTimeout(r, 1));
      release();
    })();
    await expect(tx.commit()).rejects.toMatchObject({ code: '40001' });
    await prepared;
    const gid = tx.gid!;
    expect(source.log.filter((l) => !l.includes('BEGIN') && !l.includes('UPDATE'))).toEqual([
      `s1: PREPARE TRANSACTION '${gid}_s1'`,
      's2: COMMIT',
      's0: ROLLBACK',
      `s1: ROLLBACK PREPARED '${gid}_s1'`,
    ]);
    expect(source.log.some((l) => l.includes('tx_decision'))).toBe(false);
    expect(source.inUse).toBe(0);
  });

  it('rolls back prepared branches and the anchor when a PREPARE fails, naming every failed shard', async () => {
    const { source, tm } = setup();
    source.respond = (shard, sql) => {
      if (shard !== 's1' && sql.startsWith('PREPARE')) throw pgError('40001');
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s1, s2, s0);
    const err = (await tx.commit().catch((e: unknown) => e)) as PgError;
    expect(err.code).toBe('40001');
    expect(source.on('s0').at(-1)).toBe('ROLLBACK');
    expect(source.on('s1').at(-1)).toBe(`ROLLBACK PREPARED '${tx.gid}_s1'`);
    expect(source.on('s2').at(-1)).toMatch(/^PREPARE/);
    expect(source.log.some((l) => l.includes('tx_decision'))).toBe(false);
    expect(tx.state).toBe('rolledBack');
    expect(source.inUse).toBe(0);
  });

  it('reports ROLLBACK when a shard had silently aborted its branch (PREPARE answers ROLLBACK)', async () => {
    const { source, tm } = setup();
    source.respond = (shard, sql) => (shard === 's1' && sql.startsWith('PREPARE') ? 'ROLLBACK' : undefined);
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    expect(await tx.commit()).toBe('ROLLBACK');
    expect(source.on('s0').at(-1)).toBe('ROLLBACK');
  });

  it('turns a primary-key conflict on the decision row into 40001 and rolls back the prepared branches', async () => {
    const { source, tm } = setup();
    source.respond = (_s, sql) => {
      if (sql.includes('INSERT INTO shardgate.tx_decision')) throw pgError('23505', { table: 'tx_decision', constraint: 'tx_decision_pkey' });
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    await expect(tx.commit()).rejects.toMatchObject({ code: '40001' });
    expect(source.on('s0').at(-1)).toBe('ROLLBACK');
    expect(source.on('s1').at(-1)).toBe(`ROLLBACK PREPARED '${tx.gid}_s1'`);
  });

  it.each([
    ['commit', 'COMMIT PREPARED'],
    ['abort', 'ROLLBACK PREPARED'],
  ] as const)('asks the anchor again when the decision reply is lost; the decision says %s', async (outcome, finish) => {
    const { source, tm } = setup();
    let lost = false;
    source.respond = (_s, sql) => {
      if (sql.includes('INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES (\'') && !lost) {
        lost = true;
        throw new Error('connection reset');
      }
      if (sql.startsWith('SELECT outcome')) return [[outcome]];
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    const result = await tx.commit().then(
      (tag) => tag,
      (err: PgError) => err.code,
    );
    expect(result).toBe(outcome === 'commit' ? 'COMMIT' : '08006');
    expect(source.on('s0').some((sql) => sql.includes("VALUES ($1, 'abort', $2::text[]) ON CONFLICT (gid) DO NOTHING"))).toBe(true);
    expect(source.on('s1').at(-1)).toBe(`${finish} '${tx.gid}_s1'`);
    expect(source.broken).toBe(1); // the anchor connection whose reply was lost
    expect(source.inUse).toBe(0);
  });

  it('answers 08007 and leaves the branches prepared when the anchor cannot be asked after a lost reply', async () => {
    const { source, tm } = setup();
    source.respond = (shard, sql) => {
      if (shard === 's0' && (sql.includes('tx_decision') || sql.startsWith('BEGIN ISOLATION LEVEL READ COMMITTED'))) throw new Error('unreachable');
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    await expect(tx.commit()).rejects.toMatchObject({ code: '08007' });
    expect(source.on('s1').some((sql) => sql.startsWith('ROLLBACK PREPARED') || sql.startsWith('COMMIT PREPARED'))).toBe(false);
  }, 10_000);

  it('reports COMMIT when COMMIT PREPARED fails, and retries it in the background', async () => {
    const { source, tm } = setup();
    let failures = 0;
    source.respond = (_s, sql) => {
      if (sql.startsWith('COMMIT PREPARED') && failures++ === 0) throw pgError('08006');
      return undefined;
    };
    const tx = tm.begin({});
    await writeOn(tx, s1, s0);
    expect(await tx.commit()).toBe('COMMIT');
    await tm.stop();
    expect(source.on('s1').filter((sql) => sql.startsWith('COMMIT PREPARED'))).toHaveLength(2);
  });

  it('rolls back instead of committing in the failed state, and later statements get 25P02', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s0, s1);
    expect(tx.fail(pgError('23505')).code).toBe('23505');
    await expect(tx.participant(s2)).rejects.toMatchObject({ code: '25P02' });
    expect(await tx.commit()).toBe('ROLLBACK');
    expect(source.on('s0').at(-1)).toBe('ROLLBACK');
    expect(source.on('s1').at(-1)).toBe('ROLLBACK');
  });

  it('cancels a deadlock victim on the shard it waits on and reports its 57014 as 40P01', async () => {
    const { source, tm } = setup();
    const tx = tm.begin({});
    await writeOn(tx, s0, s1);
    expect(await tx.breakDeadlock([s1], [s1, s0])).toBe(true);
    expect(source.cancelled).toEqual(['s1']);
    expect(tx.fail(pgError('57014')).code).toBe('40P01');
    expect(tx.consumeDeadlockVictim()).toBe(false);
    await tx.rollback();
  });

  it('rejects ROLLBACK TO an unknown savepoint with 3B001', async () => {
    const { tm } = setup();
    const tx = tm.begin({});
    await expect(tx.rollbackTo('nope')).rejects.toMatchObject({ code: '3B001' });
    expect(tx.state).toBe('failed');
    await tx.rollback();
  });
});
