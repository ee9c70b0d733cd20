import pg from 'pg';
import { expect } from 'vitest';
import type { RawConfig } from '../../../src/config/schema.js';
import { PgCluster } from '../../harness/cluster.js';
import { startProxy, type RunningProxy, type StartProxyOptions } from '../../harness/proxy.js';

/**
 * A bank over real shards, driven through the proxy with node-pg: accounts
 * sharded by id, trades sharded by account_id. A transfer debits one account
 * and inserts one trade row ("leg") per receiving account, each on another
 * shard, all in one BEGIN … COMMIT. Every invariant is then read directly
 * from the shards, never through the proxy.
 */

export const INITIAL_BALANCE = 1_000_000;

const DDL = [
  'CREATE TABLE account (id bigint PRIMARY KEY, balance bigint NOT NULL)',
  // One row per leg; `legs` says how many rows the transfer wrote, so a missing leg shows.
  'CREATE TABLE trade (transfer_id text NOT NULL, leg int NOT NULL, legs int NOT NULL, account_id bigint NOT NULL, from_id bigint NOT NULL, amount bigint NOT NULL, PRIMARY KEY (account_id, transfer_id, leg))',
];

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Three (or n) clusters with database app and the bank's tables on each, and where every account lives. */
export class Bank {
  readonly clusters: PgCluster[];
  /** Account ids by shard index (s0, s1, …), as the proxy placed them. */
  byShard: number[][] = [];
  accounts = 0;

  private constructor(clusters: PgCluster[]) {
    this.clusters = clusters;
  }

  static async create(n = 3): Promise<Bank> {
    const clusters = await Promise.all(Array.from({ length: n }, () => PgCluster.create({ databases: ['app'] })));
    const bank = new Bank(clusters);
    for (const c of clusters) for (const sql of DDL) await c.query(sql, [], 'app');
    return bank;
  }

  /** A bank on `n` new shards whose `accounts` accounts were funded through a short-lived proxy. */
  static async createFunded(n: number, accounts: number): Promise<Bank> {
    const bank = await Bank.create(n);
    const proxy = await bank.proxy('setup');
    try {
      await bank.reset(proxy, accounts);
    } finally {
      await proxy.stop();
    }
    return bank;
  }

  /** The proxy configuration over these shards. */
  config(coordinatorId = 'gw1', transactions: { prepareTimeoutMs?: number; recoveryIntervalMs?: number } = {}): RawConfig {
    return {
      database: 'app',
      auth: { users: [{ name: 'app', password: 'app' }] },
      coordinatorId,
      shards: Object.fromEntries(this.clusters.map((c, i) => [`s${i}`, c.url('app')])),
      tables: { account: { key: 'id' }, trade: { key: 'account_id' } },
      // Recovery leaves branches younger than 2 × prepareTimeoutMs alone: keep that short for the tests.
      transactions: { prepareTimeoutMs: 1_000, recoveryIntervalMs: 500, ...transactions },
    } as RawConfig;
  }

  /** Starts a proxy over the shards; `failpoints` goes to SHARDGATE_FAILPOINTS. */
  proxy(coordinatorId = 'gw1', opts: { failpoints?: string; transactions?: { prepareTimeoutMs?: number; recoveryIntervalMs?: number } } & StartProxyOptions = {}): Promise<RunningProxy> {
    return startProxy(this.config(coordinatorId, opts.transactions), {
      ...opts,
      env: { ...opts.env, SHARDGATE_FAILPOINTS: opts.failpoints ?? '' },
    });
  }

  /** Empties both tables on every shard and inserts `accounts` accounts through the proxy; records their placement. */
  async reset(proxy: RunningProxy, accounts = 30): Promise<void> {
    await this.waitNoPrepared();
    for (const c of this.clusters) await c.query('TRUNCATE account, trade', [], 'app');
    const client = await connect(proxy);
    try {
      const values = Array.from({ length: accounts }, (_, i) => `(${i + 1}, ${INITIAL_BALANCE})`).join(', ');
      await client.query(`INSERT INTO account (id, balance) VALUES ${values}`);
    } finally {
      await client.end();
    }
    this.accounts = accounts;
    this.byShard = await Promise.all(
      this.clusters.map(async (c) => (await c.query<{ id: string }>('SELECT id FROM account ORDER BY id', [], 'app')).map((r) => Number(r.id))),
    );
    expect(this.byShard.flat().length).toBe(accounts);
    expect(this.byShard.every((ids) => ids.length > 0)).toBe(true);
  }

  /** A random account on shard `i`. */
  on(i: number): number {
    const ids = this.byShard[i]!;
    return ids[Math.floor(Math.random() * ids.length)]!;
  }

  /** Prepared transactions (gids) on each shard. */
  async prepared(): Promise<string[][]> {
    return Promise.all(this.clusters.map(async (c) => (await c.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts', [], 'app')).map((r) => r.gid)));
  }

  /** Polls until no shard holds a prepared transaction; fails after `timeoutMs` naming what is left. */
  async waitNoPrepared(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let left: string[][] = [];
    while (Date.now() < deadline) {
      left = await this.prepared();
      if (left.every((g) => g.length === 0)) return;
      await sleep(200);
    }
    throw new Error(`prepared transactions left after ${timeoutMs} ms: ${JSON.stringify(left)}`);
  }

  /**
   * Reads every shard directly and checks the ledger: each account once, each
   * transfer's legs all present or all absent, each account debited exactly
   * the sum of its trades, money conserved, nothing prepared. Returns the
   * transfer ids that are committed.
   */
  async checkLedger(): Promise<Set<string>> {
    const accounts = (
      await Promise.all(this.clusters.map((c) => c.query<{ id: string; balance: string }>('SELECT id, balance FROM account', [], 'app')))
    ).flat();
    const trades = (
      await Promise.all(
        this.clusters.map((c) =>
          c.query<{ transfer_id: string; leg: number; legs: number; from_id: string; amount: string }>('SELECT transfer_id, leg, legs, from_id, amount FROM trade', [], 'app'),
        ),
      )
    ).flat();
    expect(accounts.length).toBe(this.accounts);
    expect(new Set(accounts.map((a) => a.id)).size).toBe(this.accounts);

    const byTransfer = new Map<string, { legs: number; seen: number[] }>();
    const debitedByTrades = new Map<string, bigint>();
    let traded = 0n;
    for (const t of trades) {
      const entry = byTransfer.get(t.transfer_id) ?? { legs: t.legs, seen: [] };
      entry.seen.push(t.leg);
      byTransfer.set(t.transfer_id, entry);
      debitedByTrades.set(t.from_id, (debitedByTrades.get(t.from_id) ?? 0n) + BigInt(t.amount));
      traded += BigInt(t.amount);
    }
    const partial = [...byTransfer].filter(([, e]) => e.seen.length !== e.legs).map(([id, e]) => `${id}: ${e.seen.length}/${e.legs} legs`);
    expect(partial, 'transfers with some legs missing').toEqual([]);

    const mismatched = accounts
      .filter((a) => BigInt(INITIAL_BALANCE) - BigInt(a.balance) !== (debitedByTrades.get(a.id) ?? 0n))
      .map((a) => `account ${a.id}: debited ${BigInt(INITIAL_BALANCE) - BigInt(a.balance)}, trades ${debitedByTrades.get(a.id) ?? 0n}`);
    expect(mismatched, 'accounts whose debit does not match their trades').toEqual([]);

    const total = accounts.reduce((s, a) => s + BigInt(a.balance), 0n) + traded;
    expect(total).toBe(BigInt(INITIAL_BALANCE) * BigInt(this.accounts));
    expect(await this.prepared()).toEqual(this.clusters.map(() => []));
    return new Set(byTransfer.keys());
  }

  /** Client backends in database app (other than the asking one) that are not idle: in a transaction or running a statement. */
  async openTransactions(): Promise<string[][]> {
    return Promise.all(
      this.clusters.map(async (c) =>
        (
          await c.query<{ d: string }>(
            "SELECT coalesce(state, '?') || ' ' || application_name || ' ' || coalesce(left(query, 60), '') AS d FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'",
            [],
            'app',
          )
        ).map((r) => r.d),
      ),
    );
  }

  /** Polls until openTransactions() is empty on every shard; fails after `timeoutMs` naming what is left. */
  async waitIdle(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let open: string[][] = [];
    while (Date.now() < deadline) {
      open = await this.openTransactions();
      if (open.every((o) => o.length === 0)) return;
      await sleep(200);
    }
    throw new Error(`backends still busy after ${timeoutMs} ms: ${JSON.stringify(open)}`);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.clusters.map((c) => c.destroy()));
  }
}

/** A node-pg client connected to the proxy; errors on an idle client (the proxy died) are swallowed, the next query reports them. */
export async function connect(proxy: RunningProxy | string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: typeof proxy === 'string' ? proxy : proxy.url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** One planned transfer: debit `from`, one trade leg of `amount` per receiving account. */
export interface Transfer {
  readonly id: string;
  readonly from: number;
  readonly to: readonly number[];
  readonly amount: number;
}

/** What the client was told. 'unknown': the connection broke or 08007 (outcome unknown). */
export type Told = { kind: 'committed' } | { kind: 'failed'; code: string } | { kind: 'unknown'; code: string | undefined };

let counter = 0;
/** A transfer from an account on shard `fromShard` to one account on each of `toShards`. */
export function plan(bank: Bank, fromShard: number, toShards: readonly number[]): Transfer {
  counter += 1;
  return {
    id: `t${process.pid}_${Date.now()}_${counter}`,
    from: bank.on(fromShard),
    to: toShards.map((s) => bank.on(s)),
    amount: 1 + Math.floor(Math.random() * 97),
  };
}

/** The SQLSTATE of an error from node-pg, undefined when the connection failed. */
export function sqlstate(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Runs one transfer in BEGIN … COMMIT and says what the client was told. The
 * debit comes last (the hot row touched last), on a shard no trade of the
 * transfer writes, so the anchor (the writer whose first write came last) is
 * the debited account's shard. `midway` runs between the trades and the debit.
 */
export async function runTransfer(client: pg.Client, t: Transfer, opts: { midway?: (client: pg.Client) => Promise<void> } = {}): Promise<Told> {
  try {
    await client.query('BEGIN');
    for (const [i, to] of t.to.entries()) {
      await client.query('INSERT INTO trade (transfer_id, leg, legs, account_id, from_id, amount) VALUES ($1, $2, $3, $4, $5, $6)', [
        t.id, i, t.to.length, to, t.from, t.amount,
      ]);
    }
    await opts.midway?.(client);
    await client.query('UPDATE account SET balance = balance - $1 WHERE id = $2', [t.amount * t.to.length, t.from]);
    const res = await client.query('COMMIT');
    // COMMIT of a failed transaction answers ROLLBACK, as PostgreSQL does.
    return res.command === 'COMMIT' ? { kind: 'committed' } : { kind: 'failed', code: `tag ${res.command}` };
  } catch (err) {
    const code = sqlstate(err);
    if (code === undefined || code === '08007') return { kind: 'unknown', code };
    await client.query('ROLLBACK').catch(() => undefined);
    return { kind: 'failed', code };
  }
}

/** Transfers with what each client was told. */
export class Outcomes {
  readonly told = new Map<string, Told>();

  record(t: Transfer, told: Told): void {
    this.told.set(t.id, told);
  }

  count(kind: Told['kind']): number {
    return [...this.told.values()].filter((t) => t.kind === kind).length;
  }

  /** Codes of failures and unknowns with their counts, for messages. */
  summary(): string {
    const counts = new Map<string, number>();
    for (const t of this.told.values()) {
      const key = t.kind === 'committed' ? 'committed' : `${t.kind} ${t.code ?? 'connection'}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return JSON.stringify(Object.fromEntries(counts));
  }

  /** What each client was told matches the shards: committed → present, failed → absent; unknown may be either. */
  expectMatches(present: ReadonlySet<string>): void {
    const wrong: string[] = [];
    for (const [id, told] of this.told) {
      if (told.kind === 'committed' && !present.has(id)) wrong.push(`${id} told COMMIT but absent`);
      if (told.kind === 'failed' && present.has(id)) wrong.push(`${id} told ${told.code} but present`);
    }
    expect(wrong).toEqual([]);
  }
}
