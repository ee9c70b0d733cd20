import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { promisify } from 'node:util';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bank, connect, Outcomes, plan, runTransfer, sleep, sqlstate } from './bank.js';

const run = promisify(execFile);

/** Sends a CancelRequest for `client`'s session to the proxy, as libpq's PQcancel does. */
async function cancelRequest(port: number, client: pg.Client): Promise<void> {
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(processID, 8);
  packet.writeInt32BE(secretKey, 12);
  await new Promise<void>((resolve) => {
    const sock = netConnect(port, '127.0.0.1', () => sock.end(packet));
    sock.on('close', () => resolve());
    sock.on('error', () => resolve());
  });
}

/** Drops the client's socket without a Terminate message: the process died, the network went. */
function dropSocket(client: pg.Client): void {
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

/**
 * The edges of the commit path through the proxy: a shard that stops
 * answering during PREPARE, a client that vanishes during its COMMIT, a
 * cancelled cross-shard transaction, and a single autocommit statement
 * writing several shards when the proxy crashes.
 */
describe('commit edge cases through the proxy', () => {
  let bank: Bank;

  beforeAll(async () => {
    bank = await Bank.createFunded(3, 30);
  });
  afterAll(async () => {
    await bank?.destroy();
  });

  it('a shard that stops answering during PREPARE: 57014, rolled back everywhere, pools idle again', { timeout: 60_000 }, async () => {
    const proxy = await bank.proxy('gw1', { failpoints: 'before-prepare=delay(800)@s1' });
    const s1 = bank.clusters[1]!;
    // The postmaster and every backend of s1, so that nothing there answers (SIGSTOP, not a crash).
    const pm = String(await s1.pid());
    const backends = (await run('pgrep', ['-P', pm]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter((p) => p.trim() !== '');
    const client = await connect(proxy);
    const outcomes = new Outcomes();
    let stopped = false;
    try {
      const t = plan(bank, 0, [1]);
      const pending = runTransfer(client, t).then((told) => outcomes.record(t, told));
      await sleep(300);
      await run('kill', ['-STOP', pm, ...backends]);
      stopped = true;
      await pending;
      expect(outcomes.summary()).toBe('{"failed 57014":1}');
    } finally {
      if (stopped) await run('kill', ['-CONT', pm, ...backends]);
    }
    // The PREPARE queued on the stopped backend may run once it resumes: recovery rolls it back.
    await bank.waitNoPrepared();
    outcomes.expectMatches(await bank.checkLedger());
    await bank.waitIdle();
    const again = plan(bank, 1, [0, 2]);
    expect(await runTransfer(client, again)).toEqual({ kind: 'committed' });
    await client.end();
    await proxy.stop();
  });

  it.each(['before-decision=delay(1000)', 'after-decision=delay(1000)'])('a client that vanishes during COMMIT at %s: all or nothing, nothing prepared, pools idle', { timeout: 60_000 }, async (failpoint) => {
    const proxy = await bank.proxy('gw1', { failpoints: failpoint, transactions: { prepareTimeoutMs: 3_000 } });
    const client = await connect(proxy);
    const t = plan(bank, 0, [1, 2]);
    const pending = runTransfer(client, t);
    for (let i = 0; i < 200 && (await bank.prepared()).flat().length < 2; i++) await sleep(20);
    dropSocket(client);
    expect((await pending).kind).toBe('unknown');
    await bank.waitNoPrepared();
    await bank.checkLedger();
    await bank.waitIdle();
    const c2 = await connect(proxy);
    expect(await runTransfer(c2, plan(bank, 1, [0]))).toEqual({ kind: 'committed' });
    await c2.end();
    await proxy.stop();
  });

  it('a cancelled cross-shard statement fails the whole transaction: 57014, then 25P02, COMMIT answers ROLLBACK', { timeout: 60_000 }, async () => {
    const proxy = await bank.proxy('gw1');
    const [holder, victim] = await Promise.all([connect(proxy), connect(proxy)]);
    try {
      const t = plan(bank, 0, [1]);
      await holder.query('BEGIN');
      await holder.query('UPDATE account SET balance = balance - 1 WHERE id = $1', [t.from]);
      await victim.query('BEGIN');
      await victim.query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, 0, 1, $2, $3, $4)', [t.id, t.to[0], t.from, t.amount]);
      const waiting = victim.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [t.amount, t.from]).catch((e: unknown) => e);
      await sleep(300);
      await cancelRequest(proxy.port, victim);
      expect(sqlstate(await waiting)).toBe('57014');
      expect(sqlstate(await victim.query('SELECT 1').catch((e: unknown) => e))).toBe('25P02');
      expect((await victim.query('COMMIT')).command).toBe('ROLLBACK');
      await holder.query('ROLLBACK');
      expect((await bank.checkLedger()).has(t.id)).toBe(false);
      await bank.waitIdle();
    } finally {
      await Promise.all([holder.end(), victim.end()]);
      await proxy.stop();
    }
  });

  it('an autocommit INSERT of rows for several shards, proxy killed after the decision: every row once recovered', { timeout: 60_000 }, async () => {
    const proxy = await bank.proxy('gw1', { failpoints: 'after-decision=crash' });
    const client = await connect(proxy);
    const t = plan(bank, 0, [1, 2]);
    // Legs of amount 0 with no debit: the ledger stays balanced, and both legs must exist or neither.
    const err = await client
      .query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, 0, 2, $2, $3, 0), ($1, 1, 2, $4, $3, 0)', [t.id, t.to[0], t.from, t.to[1]])
      .catch((e: unknown) => e);
    expect(sqlstate(err)).toBeUndefined(); // the connection broke: the proxy died
    await client.end().catch(() => undefined);
    expect((await bank.prepared()).flat().length).toBeGreaterThan(0);
    const recovering = await bank.proxy('gw2');
    try {
      await bank.waitNoPrepared();
      // The decision was committed before the crash, so recovery commits the other row too.
      expect((await bank.checkLedger()).has(t.id)).toBe(true);
    } finally {
      await recovering.stop();
    }
  });
});
