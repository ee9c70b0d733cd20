import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningProxy } from '../../harness/proxy.js';
import { Bank, connect, INITIAL_BALANCE, sleep, sqlstate } from './bank.js';

/**
 * Reads at one cut: while clients move money between accounts on different
 * shards, a reader in `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` must
 * always find the total unchanged, because its snapshots on the shards are
 * taken at one cut (src/tx/cut.ts). The same reader outside such a
 * transaction can see money half-moved: one shard's snapshot taken after a
 * COMMIT PREPARED, another's before.
 */

const ACCOUNTS = 30;
const MOVERS = 8;

/** Moves `amount` from an account on one shard to one on another, in one transaction. */
async function transfer(client: pg.Client, bank: Bank): Promise<void> {
  const from = Math.floor(Math.random() * 3);
  const to = (from + 1 + Math.floor(Math.random() * 2)) % 3;
  const amount = 1 + Math.floor(Math.random() * 100);
  await client.query('BEGIN');
  await client.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [amount, bank.on(from)]);
  await client.query('UPDATE account SET balance = balance + $1 WHERE id = $2', [amount, bank.on(to)]);
  await client.query('COMMIT');
}

/** Runs transfers on `MOVERS` connections until `stop` is set; resolves with how many committed. */
async function moveMoney(bank: Bank, proxy: RunningProxy, stop: { done: boolean }): Promise<number> {
  let committed = 0;
  await Promise.all(
    Array.from({ length: MOVERS }, async () => {
      const client = await connect(proxy);
      try {
        while (!stop.done) {
          await transfer(client, bank).then(
            () => committed++,
            // A deadlock between two transfers (40P01) rolls one back; the total is unchanged either way.
            async () => client.query('ROLLBACK'),
          );
        }
      } finally {
        await client.end();
      }
    }),
  );
  return committed;
}

/** Runs `reads` sums with `read` while money moves; returns the sums. */
async function sumsWhileMoving(bank: Bank, proxy: RunningProxy, reads: number, read: (c: pg.Client) => Promise<number>): Promise<{ sums: number[]; committed: number }> {
  const stop = { done: false };
  const movers = moveMoney(bank, proxy, stop);
  const reader = await connect(proxy);
  const sums: number[] = [];
  try {
    await sleep(100);
    for (let i = 0; i < reads; i++) sums.push(await read(reader));
  } finally {
    stop.done = true;
    await reader.end();
  }
  return { sums, committed: await movers };
}

async function consistentSum(client: pg.Client): Promise<number> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const { rows } = await client.query<{ sum: string }>('SELECT sum(balance) AS sum FROM account');
  await client.query('COMMIT');
  return Number(rows[0]!.sum);
}

async function plainSum(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ sum: string }>('SELECT sum(balance) AS sum FROM account');
  return Number(rows[0]!.sum);
}

describe('consistent cross-shard reads', () => {
  let bank: Bank;
  let proxy: RunningProxy | null = null;
  const total = ACCOUNTS * INITIAL_BALANCE;

  beforeAll(async () => {
    bank = await Bank.create(3);
    proxy = await bank.proxy('gw1');
    await bank.reset(proxy, ACCOUNTS);
  });
  afterAll(async () => {
    await proxy?.stop();
    await bank?.destroy();
  });

  it('a REPEATABLE READ READ ONLY transaction sees every transfer whole or not at all', async () => {
    const { sums, committed } = await sumsWhileMoving(bank, proxy!, 150, consistentSum);
    expect(committed).toBeGreaterThan(20);
    expect(sums.filter((s) => s !== total)).toEqual([]);
    const after = await connect(proxy!);
    try {
      // The transaction's own reads agree with each other too: two statements, one cut.
      await after.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const a = await after.query<{ sum: string }>('SELECT sum(balance) AS sum FROM account');
      const b = await after.query<{ n: string }>('SELECT count(*) AS n FROM account');
      await after.query('COMMIT');
      expect(Number(a.rows[0]!.sum)).toBe(total);
      expect(Number(b.rows[0]!.n)).toBe(ACCOUNTS);
    } finally {
      await after.end();
    }
  });

  it('the same reader outside a cut can see money half-moved (why the cut exists)', async () => {
    const { sums } = await sumsWhileMoving(bank, proxy!, 150, plainSum);
    const wrong = sums.filter((s) => s !== total).length;
    // Not asserted: how often the race shows depends on the machine. Logged for the record.
    console.log(`plain reads: ${wrong} of ${sums.length} sums wrong while money moved`);
    expect(sums.length).toBe(150);
  });

  it("SET shardgate.read_consistency = 'snapshot': single statements read one cut; a transaction that cannot is refused", async () => {
    const setup = await connect(proxy!);
    try {
      expect((await setup.query('SHOW shardgate.read_consistency')).rows).toEqual([{ 'shardgate.read_consistency': 'shard' }]);
      expect(sqlstate(await setup.query("SET shardgate.read_consistency = 'global'").catch((e: unknown) => e))).toBe('22023');
      await setup.query("SET shardgate.read_consistency = 'snapshot'");
      expect((await setup.query('SHOW shardgate.read_consistency')).rows).toEqual([{ 'shardgate.read_consistency': 'snapshot' }]);
      // READ COMMITTED takes a snapshot per statement: it cannot read one cut, and says so rather than downgrade.
      expect(sqlstate(await setup.query('BEGIN').catch((e: unknown) => e))).toBe('0A000');
      await setup.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      expect(await plainSum(setup)).toBe(total);
      await setup.query('COMMIT');
    } finally {
      await setup.end();
    }
    const snapshotSum = async (client: pg.Client): Promise<number> => {
      if (!snapshotClients.has(client)) {
        await client.query("SET shardgate.read_consistency = 'snapshot'");
        snapshotClients.add(client);
      }
      return plainSum(client);
    };
    const snapshotClients = new Set<pg.Client>();
    const { sums, committed } = await sumsWhileMoving(bank, proxy!, 150, snapshotSum);
    expect(committed).toBeGreaterThan(20);
    expect(sums.filter((s) => s !== total)).toEqual([]);
  });

  it('a coordinator that dies between two COMMIT PREPAREDs: a cut taken right after sees its transfer whole', async () => {
    // Instance A commits the first participant and dies; B's recovery is too slow to run meanwhile,
    // so only the cut itself can make the reader's view whole. The first instance, whose recovery loop
    // would finish the branch within seconds, is stopped first.
    await proxy!.stop();
    proxy = null;
    const crashing = await bank.proxy('gwa', { failpoints: 'between-commit-prepared=100%crash', transactions: { recoveryIntervalMs: 600_000 } });
    const reader = await bank.proxy('gwb', { transactions: { recoveryIntervalMs: 600_000 } });
    try {
      const client = await connect(crashing);
      const [a, b, c] = [bank.on(0), bank.on(1), bank.on(2)];
      await client.query('BEGIN');
      await client.query('UPDATE account SET balance = balance - 200 WHERE id = $1', [a]);
      await client.query('UPDATE account SET balance = balance + 100 WHERE id = $1', [b]);
      await client.query('UPDATE account SET balance = balance + 100 WHERE id = $1', [c]);
      await client.query('COMMIT').catch(() => undefined);
      if (crashing.child.exitCode === null && crashing.child.signalCode === null) await new Promise((r) => crashing.child.once('exit', r));
      const stillPrepared = (await bank.prepared()).flat();
      expect(stillPrepared.length).toBe(1);

      const plain = await connect(reader);
      try {
        expect(await plainSum(plain)).not.toBe(total);
        expect(await consistentSum(plain)).toBe(total);
        // The cut finished the decided branch, so everyone sees it now.
        expect(await plainSum(plain)).toBe(total);
      } finally {
        await plain.end();
      }
      expect((await bank.prepared()).flat()).toEqual([]);
    } finally {
      await crashing.stop().catch(() => undefined);
      await reader.stop();
    }
  });
});
