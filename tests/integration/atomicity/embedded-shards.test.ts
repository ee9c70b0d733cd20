import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../../src/config/schema.js';
import { startProxy, type RunningProxy } from '../../harness/proxy.js';
import { connect, INITIAL_BALANCE, Outcomes, runTransfer, sqlstate, type Transfer } from './bank.js';

/**
 * The bank of bank.ts on three embedded (PGlite) shards, through the proxy:
 * cross-shard transfers commit with two-phase commit, a proxy killed at a
 * crash failpoint leaves nothing half-done once a new proxy has started (its
 * start-up recovery resolves every leftover prepared transaction before it
 * serves), and a transaction waiting for a shard another one holds fails with
 * 40P01 instead of freezing the shard. One set of shard folders serves the
 * whole file: creating a PGlite database takes seconds, reopening it well
 * under one.
 */

const SHARDS = ['s0', 's1', 's2'] as const;
const ACCOUNTS = 30;
/** How long a transaction waits for an embedded shard held by another before 40P01. */
const ACQUIRE_TIMEOUT_MS = 1_500;

let dir: string;
/** Account ids by shard index, as the proxy placed them. */
let byShard: number[][] = [];

function config(coordinatorId = 'gw1'): RawConfig {
  return {
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    coordinatorId,
    shards: Object.fromEntries(SHARDS.map((s) => [s, { embedded: join(dir, s) }])),
    tables: { account: { key: 'id' }, trade: { key: 'account_id' } },
    pool: { acquireTimeoutMs: ACQUIRE_TIMEOUT_MS },
    // Recovery's grace period (2 × prepareTimeoutMs) and interval are far longer than this file runs, so only
    // the start-up pass of a new proxy, which owes no grace to an embedded shard, can resolve leftovers here.
    transactions: { prepareTimeoutMs: 60_000, recoveryIntervalMs: 600_000 },
  } as RawConfig;
}

function proxyOn(failpoints = '', coordinatorId = 'gw1'): Promise<RunningProxy> {
  return startProxy(config(coordinatorId), { dir, env: { SHARDGATE_FAILPOINTS: failpoints } });
}

/** Rows of one shard, read through the proxy with a shard hint. */
async function onShard<R extends pg.QueryResultRow>(client: pg.Client, shard: string, sql: string): Promise<R[]> {
  return (await client.query<R>(`/* shardgate:shard=${shard} */ ${sql}`)).rows;
}

/** Prepared transactions on each shard. */
function prepared(client: pg.Client): Promise<string[][]> {
  return Promise.all(SHARDS.map(async (s) => (await onShard<{ gid: string }>(client, s, 'SELECT gid FROM pg_prepared_xacts')).map((r) => r.gid)));
}

interface DecisionRow {
  readonly gid: string;
  readonly outcome: string;
  readonly participants: string[];
}

/** Decision rows on each shard. */
function decisions(client: pg.Client): Promise<DecisionRow[][]> {
  return Promise.all(SHARDS.map((s) => onShard<DecisionRow>(client, s, 'SELECT gid, outcome, participants FROM shardgate.tx_decision ORDER BY gid')));
}

/** Rows of `rows` not in `before`, by gid. */
function added(before: readonly DecisionRow[], rows: readonly DecisionRow[]): DecisionRow[] {
  const known = new Set(before.map((r) => r.gid));
  return rows.filter((r) => !known.has(r.gid));
}

let counter = 0;
/** A transfer from an account on shard `from` to one account on each of `to`. */
function transfer(from: number, to: readonly number[]): Transfer {
  counter += 1;
  const pick = (s: number): number => byShard[s]![Math.floor(Math.random() * byShard[s]!.length)]!;
  return { id: `e${process.pid}_${counter}`, from: pick(from), to: to.map(pick), amount: 1 + Math.floor(Math.random() * 97) };
}

interface Ledger {
  readonly accounts: readonly { id: string; balance: string }[];
  readonly trades: readonly { transfer_id: string; leg: number; legs: number; from_id: string; amount: string }[];
}

/**
 * Checks a ledger: each account once, each transfer's legs all present or all
 * absent, each account debited exactly its trades, money conserved. Returns
 * the transfer ids present.
 */
function checkLedger(ledger: Ledger): Set<string> {
  expect(ledger.accounts.length).toBe(ACCOUNTS);
  expect(new Set(ledger.accounts.map((a) => a.id)).size).toBe(ACCOUNTS);
  const legs = new Map<string, { legs: number; seen: number }>();
  const debited = new Map<string, bigint>();
  for (const t of ledger.trades) {
    const entry = legs.get(t.transfer_id) ?? { legs: t.legs, seen: 0 };
    entry.seen += 1;
    legs.set(t.transfer_id, entry);
    debited.set(t.from_id, (debited.get(t.from_id) ?? 0n) + BigInt(t.amount));
  }
  expect([...legs].filter(([, e]) => e.seen !== e.legs).map(([id]) => id), 'transfers with legs missing').toEqual([]);
  const mismatched = ledger.accounts.filter((a) => BigInt(INITIAL_BALANCE) - BigInt(a.balance) !== (debited.get(a.id) ?? 0n)).map((a) => a.id);
  expect(mismatched, 'accounts whose debit does not match their trades').toEqual([]);
  return new Set(legs.keys());
}

/** The ledger read shard by shard through the proxy. */
async function ledgerThrough(client: pg.Client): Promise<Ledger> {
  const accounts = (await Promise.all(SHARDS.map((s) => onShard<{ id: string; balance: string }>(client, s, 'SELECT id, balance FROM account')))).flat();
  const trades = (await Promise.all(SHARDS.map((s) => onShard<Ledger['trades'][number]>(client, s, 'SELECT transfer_id, leg, legs, from_id, amount FROM trade')))).flat();
  return { accounts, trades };
}

/** Resolves with the signal that ended the proxy process. */
function exited(proxy: RunningProxy): Promise<string | null> {
  const child = proxy.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}

/** A proxy session that stays open across tests, so a failed test can still close it. */
async function withClient<T>(proxy: RunningProxy, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(proxy);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Kills a proxy at `failpoint` during one transfer from s0 to s1 and s2, starts
 * a new proxy on the same folders and resolves with what the client was told,
 * the new proxy, and the decision rows from before the crash.
 */
async function crashDuringTransfer(failpoint: string): Promise<{ t: Transfer; told: Outcomes; proxy: RunningProxy; before: DecisionRow[][] }> {
  const crashing = await proxyOn(failpoint);
  const died = exited(crashing);
  const before = await withClient(crashing, decisions);
  const t = transfer(0, [1, 2]);
  const told = new Outcomes();
  await withClient(crashing, async (client) => told.record(t, await runTransfer(client, t)));
  expect(await died, `the proxy should have crashed at ${failpoint}:\n${crashing.logs().slice(-3000)}`).toBe('SIGKILL');
  expect(told.told.get(t.id)).toEqual({ kind: 'unknown', code: undefined });
  // Another coordinator id: the leftover is finished by recovery, not by a coordinator that remembers it.
  return { t, told, proxy: await proxyOn('', 'gw2'), before };
}

describe('embedded (PGlite) shards keep cross-shard transactions atomic', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardgate-embedded-atomicity-'));
    const proxy = await proxyOn();
    try {
      await withClient(proxy, async (client) => {
        await client.query('CREATE TABLE account (id bigint PRIMARY KEY, balance bigint NOT NULL)');
        await client.query(
          'CREATE TABLE trade (transfer_id text NOT NULL, leg int NOT NULL, legs int NOT NULL, account_id bigint NOT NULL, from_id bigint NOT NULL, amount bigint NOT NULL, PRIMARY KEY (account_id, transfer_id, leg))',
        );
        const values = Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1}, ${INITIAL_BALANCE})`).join(', ');
        await client.query(`INSERT INTO account (id, balance) VALUES ${values}`);
        byShard = await Promise.all(SHARDS.map(async (s) => (await onShard<{ id: string }>(client, s, 'SELECT id FROM account ORDER BY id')).map((r) => Number(r.id))));
      });
    } finally {
      await proxy.stop();
    }
    expect(byShard.flat().length).toBe(ACCOUNTS);
    expect(byShard.every((ids) => ids.length > 0)).toBe(true);
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('commits cross-shard transfers with a decision row on the anchor and nothing left prepared', { timeout: 60_000 }, async () => {
    const proxy = await proxyOn();
    try {
      await withClient(proxy, async (client) => {
        const before = await decisions(client);
        const outcomes = new Outcomes();
        const crossShard: Transfer[] = [];
        for (let i = 0; i < 9; i++) {
          const from = i % 3;
          const others = [0, 1, 2].filter((s) => s !== from);
          const t = transfer(from, i % 2 === 0 ? others : [others[i % 3 === 0 ? 0 : 1]!]);
          crossShard.push(t);
          outcomes.record(t, await runTransfer(client, t));
        }
        // A transfer within one shard commits with a plain COMMIT: no decision row.
        const local = transfer(1, [1]);
        outcomes.record(local, await runTransfer(client, local));
        expect(outcomes.count('committed'), outcomes.summary()).toBe(10);

        expect(await prepared(client)).toEqual([[], [], []]);
        const after = await decisions(client);
        for (const [i, shard] of SHARDS.entries()) {
          const rows = added(before[i]!, after[i]!);
          const anchored = crossShard.filter((t) => byShard[i]!.includes(t.from));
          expect(rows.map((r) => r.outcome)).toEqual(anchored.map(() => 'commit'));
          for (const r of rows) expect(r.gid).toMatch(new RegExp(`^sg_gw1_${shard}_`));
          // Participants: the other written shards, never the anchor itself.
          const expected = anchored.map((t) => [...new Set(t.to.map((id) => SHARDS[byShard.findIndex((ids) => ids.includes(id))]!))].sort().join(','));
          expect(rows.map((r) => [...r.participants].sort().join(',')).sort()).toEqual(expected.sort());
        }
        outcomes.expectMatches(checkLedger(await ledgerThrough(client)));
      });

      // Concurrent transfers take shards in every order: a wait that would cycle ends in 40P01 after the
      // acquire timeout, and whatever each client was told matches the shards.
      const concurrent = new Outcomes();
      await Promise.all(
        Array.from({ length: 3 }, (_, c) =>
          withClient(proxy, async (client) => {
            for (let i = 0; i < 5; i++) {
              const from = (c + i) % 3;
              const t = transfer(from, [0, 1, 2].filter((s) => s !== from));
              concurrent.record(t, await runTransfer(client, t));
            }
          }),
        ),
      );
      const codes = [...concurrent.told.values()].map((t) => (t.kind === 'failed' ? t.code : t.kind));
      expect(codes.every((c) => c === 'committed' || c === '40P01'), concurrent.summary()).toBe(true);
      expect(concurrent.count('committed'), concurrent.summary()).toBeGreaterThan(0);
      await withClient(proxy, async (client) => {
        expect(await prepared(client)).toEqual([[], [], []]);
        concurrent.expectMatches(checkLedger(await ledgerThrough(client)));
      });
    } finally {
      await proxy.stop();
    }
  });

  it('a reader at one cut (REPEATABLE READ READ ONLY) sees every transfer whole, on embedded shards too', { timeout: 60_000 }, async () => {
    const proxy = await proxyOn();
    const stop = { done: false };
    const outcomes = new Outcomes();
    // Money leaves an account and arrives as trade rows on other shards: the two sums together never change.
    const total = ACCOUNTS * INITIAL_BALANCE;
    // Transfers go from a lower shard to a higher one, the order in which a cut acquires the shards'
    // single connections, so no wait between them can cycle (which would end in 40P01 after the timeout).
    const movers = Array.from({ length: 2 }, (_, m) =>
      withClient(proxy, async (client) => {
        for (let i = 0; !stop.done; i++) {
          const [from, to] = [[0, 1], [0, 2], [1, 2]][(m + i) % 3]!;
          const t = transfer(from!, [to!]);
          outcomes.record(t, await runTransfer(client, t));
        }
      }),
    );
    const sums: number[] = [];
    const refused: string[] = [];
    try {
      await withClient(proxy, async (reader) => {
        while (sums.length < 20) {
          await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          try {
            const balances = await reader.query<{ s: string }>('SELECT sum(balance) AS s FROM account');
            const moved = await reader.query<{ s: string | null }>('SELECT sum(amount) AS s FROM trade');
            sums.push(Number(balances.rows[0]!.s) + Number(moved.rows[0]!.s ?? 0));
            await reader.query('COMMIT');
          } catch (err) {
            // One connection per embedded shard: a cut waits for the transactions holding them, up to the acquire timeout.
            refused.push(sqlstate(err) ?? String(err));
            await reader.query('ROLLBACK');
          }
        }
      });
    } finally {
      stop.done = true;
      await Promise.all(movers);
    }
    try {
      expect(outcomes.count('committed'), outcomes.summary()).toBeGreaterThan(20);
      expect(sums.filter((s) => s !== total)).toEqual([]);
      expect(refused.filter((code) => code !== '40P01')).toEqual([]);
      await withClient(proxy, async (client) => expect(await prepared(client)).toEqual([[], [], []]));
    } finally {
      await proxy.stop();
    }
  });

  it('after-decision=crash: the next proxy commits the leftover branches at start-up, before serving', { timeout: 60_000 }, async () => {
    const { t, told, proxy, before } = await crashDuringTransfer('after-decision=crash');
    try {
      await withClient(proxy, async (client) => {
        // The first thing the new proxy serves already sees no prepared transaction.
        expect(await prepared(client)).toEqual([[], [], []]);
        const present = checkLedger(await ledgerThrough(client));
        // The decision row was committed before the crash: the transfer is complete.
        expect(present.has(t.id)).toBe(true);
        told.expectMatches(present);
        const rows = added(before[0]!, (await decisions(client))[0]!);
        expect(rows.map((r) => r.outcome)).toEqual(['commit']);
        expect(rows[0]!.gid).toMatch(/^sg_gw1_s0_/);
        // The same accounts are writable again: no lock of the old transaction is left behind.
        const again: Transfer = { ...transfer(0, [1, 2]), from: t.from, to: t.to };
        expect(await runTransfer(client, again)).toEqual({ kind: 'committed' });
        expect(checkLedger(await ledgerThrough(client)).has(again.id)).toBe(true);
      });
    } finally {
      await proxy.stop();
    }
  });

  it('before-decision=crash: the next proxy rolls the prepared branches back at start-up, before serving', { timeout: 60_000 }, async () => {
    const { t, told, proxy, before } = await crashDuringTransfer('before-decision=crash');
    try {
      await withClient(proxy, async (client) => {
        expect(await prepared(client)).toEqual([[], [], []]);
        const present = checkLedger(await ledgerThrough(client));
        // Nothing was decided before the crash: presumed abort, fenced by the 'abort' row recovery wrote on the anchor.
        expect(present.has(t.id)).toBe(false);
        told.expectMatches(present);
        const rows = added(before[0]!, (await decisions(client))[0]!);
        expect(rows.map((r) => r.outcome)).toEqual(['abort']);
        expect(rows[0]!.gid).toMatch(/^sg_gw1_s0_/);
        const again: Transfer = { ...transfer(0, [1, 2]), from: t.from, to: t.to };
        expect(await runTransfer(client, again)).toEqual({ kind: 'committed' });
      });
    } finally {
      await proxy.stop();
    }
  });

  it('a transaction waiting for a shard another one holds fails with 40P01 instead of freezing', { timeout: 60_000 }, async () => {
    const proxy = await proxyOn();
    const first = await connect(proxy);
    const second = await connect(proxy);
    const failure = (p: Promise<unknown>): Promise<string | undefined> =>
      p.then(
        () => 'no error',
        (err: unknown) => sqlstate(err),
      );
    const insertLeg = (client: pg.Client, t: Transfer): Promise<unknown> =>
      client.query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, 0, 1, $2, $3, $4)', [t.id, t.to[0], t.from, t.amount]);
    try {
      // The first transaction holds s1 until it ends.
      const holder = transfer(1, [0]);
      await first.query('BEGIN');
      await first.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [holder.amount, holder.from]);

      // An autocommit statement on the held shard.
      expect(await failure(second.query('SELECT balance FROM account WHERE id = $1', [byShard[1]![0]]))).toBe('40P01');

      // A transaction that holds s0 and then waits for s1.
      const waiter = transfer(0, [1]);
      await second.query('BEGIN');
      await second.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [waiter.amount, waiter.from]);
      expect(await failure(insertLeg(second, waiter))).toBe('40P01');
      // The whole transaction failed, as on one server.
      expect(await failure(second.query('SELECT 1'))).toBe('25P02');
      expect((await second.query('ROLLBACK')).command).toBe('ROLLBACK');

      // The holder goes on to s0, released by the rollback, and commits.
      await insertLeg(first, holder);
      expect((await first.query('COMMIT')).command).toBe('COMMIT');

      const present = checkLedger(await ledgerThrough(second));
      expect(present.has(holder.id)).toBe(true);
      expect(present.has(waiter.id)).toBe(false);
      expect(await prepared(second)).toEqual([[], [], []]);
    } finally {
      await first.end().catch(() => undefined);
      await second.end().catch(() => undefined);
      await proxy.stop();
    }
  });

  it('on disk, every shard holds a consistent ledger and no prepared transaction', { timeout: 60_000 }, async () => {
    // No proxy runs now: the folders are opened directly, as a PGlite user would.
    const accounts: Ledger['accounts'][number][] = [];
    const trades: Ledger['trades'][number][] = [];
    for (const shard of SHARDS) {
      const db = await PGlite.create(join(dir, shard), { startParams: [...PGlite.defaultStartParams, '-c', 'max_prepared_transactions=100'] });
      try {
        expect((await db.query('SELECT gid FROM pg_prepared_xacts')).rows).toEqual([]);
        accounts.push(...(await db.query<{ id: string; balance: string }>('SELECT id::text, balance::text FROM account')).rows);
        trades.push(...(await db.query<Ledger['trades'][number]>('SELECT transfer_id, leg, legs, from_id::text, amount::text FROM trade')).rows);
      } finally {
        await db.close();
      }
    }
    expect(checkLedger({ accounts, trades }).size).toBeGreaterThan(0);
  });
});
