import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerMessage } from '../../../src/messaging/message-sink.js';
import { barrier, ensureBarrierTable, type TccOp } from '../../../src/saga/barrier.js';
import { ensureOutboxTables, OutboxRelay, writeOutbox } from '../../../src/saga/outbox.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { CHECK_INVARIANTS } from '../../../src/saga/saga-check.js';
import { SagaCoordinator, type SagaLog } from '../../../src/saga/saga-coordinator.js';
import { qualified } from '../../../src/saga/saga-schema.js';
import { freePort, PgCluster, runCommand } from '../../harness/cluster.js';
import { Participant, threeStepSaga } from './participant.js';

const BIN = resolve(import.meta.dirname, '../../../bin/shardgate.js');
/** A schema name that needs quoting, passed through the configuration file. */
const schema = 'Saga "check" logs';
const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 3, deadlineMs: 60_000 };

describe('shardgate saga check (built, as a process) on logs written by the real coordinator, relay and barrier', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  let shop: Participant;
  let dir: string;
  let config: string;
  const committed: string[] = [];
  const compensated: string[] = [];
  const messages: string[] = [];
  const S = qualified(schema, 'saga');
  const T = qualified(schema, 'saga_step');
  const O = qualified(schema, 'outbox');
  const B = qualified(schema, 'barrier');

  const check = () => runCommand(process.execPath, [BIN, 'saga', 'check', '--config', config], { timeoutMs: 60_000 });

  async function fence(gid: string, op: TccOp): Promise<void> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await barrier(c, gid, 'b1', op, async () => undefined, { schema });
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  }

  beforeAll(async () => {
    cluster = await PgCluster.create({ databases: ['app'] });
    pool = new pg.Pool({ connectionString: cluster.url('app'), max: 6 });
    shop = await Participant.start();
    dir = await mkdtemp(join(tmpdir(), 'shardgate-saga-check-'));
    config = join(dir, 'shardgate.yaml');
    await writeFile(config, `listen: 127.0.0.1:${await freePort()}\nshards:\n  s0: ${cluster.url('app')}\nsaga:\n  database: ${cluster.url('app')}\n  schema: '${schema}'\n`);

    const client = await pool.connect();
    try {
      await ensureOutboxTables(client, schema);
      await ensureBarrierTable(client, { schema });
    } finally {
      client.release();
    }
    shop.answer = (r) => {
      const kind = (r.payload as { kind: string }).kind;
      if (kind === 'refused' && r.path === '/notify') return { status: 409 };
      if (kind === 'exhausted' && r.path === '/charge') return { status: 503 };
      return { status: 200 };
    };
    const c = new SagaCoordinator({ pool, id: 'c', schema, definitions: { order: threeStepSaga(shop.url, fast) }, pollIntervalMs: 5, onError: (e) => { throw e; } });
    await c.ensureTables();
    c.start();
    const settled = async (gid: string): Promise<SagaLog> => {
      for (;;) {
        const log = await c.inspect(gid);
        if (log !== undefined && ['committed', 'compensated', 'exhausted'].includes(log.status)) return log;
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const kinds = [...Array<string>(12).fill('plain'), ...Array<string>(4).fill('refused'), 'exhausted'];
    const gids = await Promise.all(kinds.map((kind) => c.submit(pool, 'order', { kind })));
    const logs = await Promise.all(gids.map(settled));
    // Stopped before any corruption: a coordinator would move a saga the test made look running.
    await c.close();
    logs.forEach((l, i) => (kinds[i] === 'plain' ? committed : kinds[i] === 'refused' ? compensated : []).push(l.gid));
    expect(logs.map((l) => l.status)).toEqual(kinds.map((k) => (k === 'plain' ? 'committed' : k === 'refused' ? 'compensated' : 'exhausted')));

    for (let i = 0; i < 4; i++) messages.push(await writeOutbox(pool, 'orders', { i }, { schema }));
    const published: BrokerMessage[] = [];
    await new OutboxRelay({ pool, schema, sink: { publish: async (m) => void published.push(...m) } }).runOnce();
    expect(published.length).toBe(4);

    for (const gid of ['tcc-1', 'tcc-3', 'tcc-4']) {
      await fence(gid, 'try');
      await fence(gid, 'confirm');
    }
    await fence('tcc-2', 'cancel'); // an empty cancel
    await fence('tcc-5', 'try');
    await fence('tcc-5', 'cancel');
  });

  afterAll(async () => {
    await pool?.end();
    await shop?.close();
    await cluster?.destroy();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('passes on logs the coordinator, relay and barrier wrote, then reports every corrupted row under its invariant and exits 1', async () => {
    const clean = await check();
    expect(clean.stdout).toBe('');
    expect(clean.stderr).toMatch(/saga logs consistent \(17 saga, 51 saga_step, 4 outbox, 10 barrier rows checked\)/);
    expect(clean.code).toBe(0);

    const [c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12] = committed as [string, ...string[]];
    const [p1, p2, p3, p4] = compensated as [string, ...string[]];
    const step = (gid: string, name: string) => `${gid} step ${name}`;
    // Each corruption, and the (invariant, row) the check must report for it.
    const corruptions: [string, string, string, unknown[]][] = [
      ['finished-at-mismatch', c1!, `UPDATE ${S} SET finished_at = NULL WHERE gid = $1`, [c1]],
      ['saga-without-steps', c2!, `DELETE FROM ${T} WHERE gid = $1`, [c2]],
      ['committed-step-not-done', step(c3!, 'notify'), `UPDATE ${T} SET status = 'failed' WHERE gid = $1 AND name = 'notify'`, [c3]],
      ['compensated-step-left', step(p1!, 'reserve'), `UPDATE ${T} SET status = 'done' WHERE gid = $1 AND name = 'reserve'`, [p1]],
      ['compensation-without-failure', p2!, `UPDATE ${T} SET status = 'skipped' WHERE gid = $1 AND status = 'failed'`, [p2]],
      ['running-step-backward', step(c4!, 'reserve'), `WITH s AS (UPDATE ${S} SET status = 'running', finished_at = NULL WHERE gid = $1) UPDATE ${T} SET status = 'compensated', calls = 2 WHERE gid = $1 AND name = 'reserve'`, [c4]],
      ['compensating-step-forward', step(c5!, 'charge'), `UPDATE ${S} SET status = 'compensating', finished_at = NULL WHERE gid = $1`, [c5]],
      ['exhausted-without-step', c6!, `UPDATE ${S} SET status = 'exhausted', last_error = 'RETRY_EXHAUSTED: step x (action): y' WHERE gid = $1`, [c6]],
      ['exhausted-step-in-moving-saga', step(c7!, 'charge'), `UPDATE ${T} SET status = 'exhausted' WHERE gid = $1 AND name = 'charge'`, [c7]],
      ['open-step-in-finished-saga', step(c8!, 'notify'), `UPDATE ${T} SET status = 'pending' WHERE gid = $1 AND name = 'notify'`, [c8]],
      ['stage-order', step(c9!, 'charge'), `UPDATE ${T} SET status = 'pending', calls = 0 WHERE gid = $1 AND name = 'reserve'`, [c9]],
      ['compensation-order', step(p3!, 'reserve'), `UPDATE ${T} SET status = 'compensating' WHERE gid = $1 AND name = 'charge'`, [p3]],
      ['compensation-without-action', step(p4!, 'charge'), `UPDATE ${T} SET calls = 1 WHERE gid = $1 AND name = 'charge'`, [p4]],
      ['outcome-without-call', step(c10!, 'reserve'), `UPDATE ${T} SET calls = 0 WHERE gid = $1 AND name = 'reserve'`, [c10]],
      ['attempts-over-cap', step(c11!, 'charge'), `UPDATE ${T} SET attempts = 3, calls = 5 WHERE gid = $1 AND name = 'charge'`, [c11]],
      ['attempts-over-calls', step(c12!, 'notify'), `UPDATE ${T} SET attempts = 2 WHERE gid = $1 AND name = 'notify'`, [c12]],
      ['sent-without-ack', messages[0]!, `UPDATE ${O} SET attempts = 0 WHERE id = $1`, [messages[0]]],
      ['sent-not-ready', messages[2]!, `UPDATE ${O} SET state = 'prepared' WHERE id = $1`, [messages[2]]],
      ['sent-before-written', messages[1]!, `UPDATE ${O} SET sent_at = created_at - interval '1 hour' WHERE id = $1`, [messages[1]]],
      ['fence-written-by-other-op', 'tcc-1 b1 confirm', `UPDATE ${B} SET written_by = 'try' WHERE gid = 'tcc-1' AND op = 'confirm'`, []],
      ['cancel-without-try-fence', 'tcc-2 b1 cancel', `DELETE FROM ${B} WHERE gid = 'tcc-2' AND op = 'try'`, []],
      ['confirmed-and-cancelled', 'tcc-3 b1 confirm', `INSERT INTO ${B} (gid, branch_id, op, written_by) VALUES ('tcc-3', 'b1', 'cancel', 'cancel')`, []],
      ['confirm-without-try', 'tcc-4 b1 confirm', `DELETE FROM ${B} WHERE gid = 'tcc-4' AND op = 'try'`, []],
    ];
    expect(new Set([...corruptions.map(([inv]) => inv), 'barrier-unknown-gid'])).toEqual(new Set(CHECK_INVARIANTS));
    for (const [, , sql, params] of corruptions) expect((await pool.query(sql, params)).rowCount).toBeGreaterThan(0);

    const r = await check();
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.trim().split('\n');
    for (const [inv, key] of corruptions) expect(lines.some((l) => l.startsWith(`${inv} `) && l.includes(` ${key}: `)), `${inv} ${key}\n${r.stdout}`).toBe(true);
    // Nothing is reported about the rows left alone: tcc-5, the fourth message, the exhausted saga.
    const touched = [...committed, ...compensated, ...messages.slice(0, 3), 'tcc-1', 'tcc-2', 'tcc-3', 'tcc-4'];
    for (const l of lines) expect(touched.some((k) => l.includes(` ${k}`)), l).toBe(true);
    expect(r.stderr).toMatch(new RegExp(`shardgate: ${lines.length} inconsistent rows in the saga logs`));
  });

  it('reports fences of gids no saga has, when asked to, and not a fence of a saga gid', async () => {
    await fence(compensated[0]!, 'try');
    const r = await runCommand(process.execPath, [BIN, 'saga', 'check', '--config', config, '--barrier-gids-are-saga-gids'], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    const unknown = r.stdout.split('\n').filter((l) => l.startsWith('barrier-unknown-gid '));
    expect(unknown.map((l) => l.split(' ')[2])).toEqual(expect.arrayContaining(['tcc-5']));
    expect(unknown.some((l) => l.includes(compensated[0]!))).toBe(false);
    // Without the flag the invariant is not checked.
    expect((await check()).stdout).not.toContain('barrier-unknown-gid');
  });

  it('exits 2 when no saga log is configured', async () => {
    const bare = join(dir, 'bare.yaml');
    await writeFile(bare, `listen: 127.0.0.1:${await freePort()}\nshards:\n  s0: ${cluster.url('app')}\n`);
    const r = await runCommand(process.execPath, [BIN, 'saga', 'check', '--config', bare], { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('saga: no saga log is configured');
  });
});
