import type pg from 'pg';
import { connect, sqlstate, sleep } from '../bank.js';

/**
 * The fuzzer's transactions. Each client thread runs numbered transactions
 * (thread, seq); every one appends a (thread, seq) row to fuzz_event on every
 * shard, and most also move money between accounts on two different shards,
 * in a random statement order, ending in COMMIT, a deliberate ROLLBACK, or a
 * statement that fails on one shard (a duplicate key). Each event row carries
 * the balance change the transaction made on its shard, so every shard's
 * balances can be checked against its own events.
 */

/** Tables on every shard; fuzz_event rows for shard s are keyed by an account living there. */
export const FUZZ_DDL = [
  'CREATE TABLE account (id bigint PRIMARY KEY, balance bigint NOT NULL)',
  'CREATE TABLE fuzz_event (account_id bigint NOT NULL, thread int NOT NULL, seq int NOT NULL, delta bigint NOT NULL, PRIMARY KEY (thread, seq, account_id))',
];

/** The proxy's table rules: both tables hashed on the account id, so an event row lands with its account. */
export const FUZZ_TABLES = { account: { key: 'id' }, fuzz_event: { key: 'account_id' } } as const;
export { seededRandom } from '../../../harness/seeded-random.js';

/** An integer in [lo, hi] drawn from `rnd`. */
export function between(rnd: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rnd() * (hi - lo + 1));
}

/** Where the accounts live: account ids by shard index, and the one keying each shard's event rows. */
export interface Placement {
  readonly byShard: readonly (readonly number[])[];
  readonly eventKey: readonly number[];
}

interface Step {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** One planned transaction of a thread. */
export interface FuzzTx {
  readonly thread: number;
  readonly seq: number;
  readonly end: 'commit' | 'rollback' | 'conflict';
  /** Balance change on each shard (index = shard), also written in that shard's event row. */
  readonly deltas: readonly number[];
  readonly steps: readonly Step[];
}

const EVENT_INSERT = 'INSERT INTO fuzz_event (account_id, thread, seq, delta) VALUES ';

/** Plans transaction `seq` of `thread`: events on every shard, usually a transfer, shuffled. */
export function planTx(rnd: () => number, placement: Placement, thread: number, seq: number): FuzzTx {
  const shards = placement.byShard.length;
  const deltas = Array.from({ length: shards }, () => 0);
  const steps: Step[] = [];
  if (rnd() < 0.8) {
    const from = between(rnd, 0, shards - 1);
    const to = (from + between(rnd, 1, shards - 1)) % shards;
    const amount = between(rnd, 1, 100);
    const pick = (s: number): number => placement.byShard[s]![between(rnd, 0, placement.byShard[s]!.length - 1)]!;
    deltas[from] = -amount;
    deltas[to] = amount;
    steps.push({ sql: 'UPDATE account SET balance = balance - $1 WHERE id = $2', params: [amount, pick(from)] });
    steps.push({ sql: 'UPDATE account SET balance = balance + $1 WHERE id = $2', params: [amount, pick(to)] });
  }
  const events = deltas.map((d, s) => [placement.eventKey[s]!, thread, seq, d] as const);
  if (rnd() < 0.5) {
    // One multi-row INSERT that the proxy splits by shard.
    const values = events.map((_, i) => `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`).join(', ');
    steps.push({ sql: EVENT_INSERT + values, params: events.flat() });
  } else {
    for (const e of events) steps.push({ sql: `${EVENT_INSERT}($1, $2, $3, $4)`, params: e });
  }
  // Fisher–Yates: the order in which the shards are first written (and so which is the anchor, the one first written last) varies.
  for (let i = steps.length - 1; i > 0; i--) {
    const j = between(rnd, 0, i);
    [steps[i], steps[j]] = [steps[j]!, steps[i]!];
  }
  const r = rnd();
  const end = r < 0.85 ? 'commit' : r < 0.93 ? 'rollback' : 'conflict';
  if (end === 'conflict') {
    // The same event row again: 23505 on one shard fails the whole global transaction.
    const e = events[between(rnd, 0, shards - 1)]!;
    steps.push({ sql: `${EVENT_INSERT}($1, $2, $3, $4)`, params: e });
  }
  return { thread, seq, end, deltas, steps };
}

/**
 * What the client was told. `failed`: an error with a SQLSTATE other than
 * 08007, a COMMIT answered ROLLBACK, or a connection that broke before COMMIT
 * was sent: nothing may be committed. `unknown`: the connection broke after
 * COMMIT was sent, or 08007: all or nothing.
 */
export type FuzzTold =
  | { readonly kind: 'committed' }
  | { readonly kind: 'rolledBack' }
  | { readonly kind: 'failed'; readonly code: string }
  | { readonly kind: 'unknown'; readonly code: string };

/** Runs one planned transaction; `broken` says the connection can no longer be used. */
export async function runTx(client: pg.Client, tx: FuzzTx): Promise<{ told: FuzzTold; broken: boolean }> {
  let commitSent = false;
  try {
    await client.query('BEGIN');
    for (const step of tx.steps) await client.query(step.sql, [...step.params]);
    if (tx.end === 'rollback') {
      await client.query('ROLLBACK');
      return { told: { kind: 'rolledBack' }, broken: false };
    }
    commitSent = true;
    const res = await client.query('COMMIT');
    // COMMIT of a failed transaction answers ROLLBACK, as PostgreSQL does.
    return { told: res.command === 'COMMIT' ? { kind: 'committed' } : { kind: 'failed', code: `tag ${res.command}` }, broken: false };
  } catch (err) {
    const code = sqlstate(err);
    if (code === undefined) {
      // The proxy never commits what it was not asked to: a break before COMMIT leaves nothing.
      return { told: commitSent ? { kind: 'unknown', code: 'connection' } : { kind: 'failed', code: 'connection before COMMIT' }, broken: true };
    }
    if (code === '08007') return { told: { kind: 'unknown', code }, broken: false };
    await client.query('ROLLBACK').catch(() => undefined);
    return { told: { kind: 'failed', code }, broken: false };
  }
}

/** What every thread was told, by `thread:seq`. */
export class FuzzOutcomes {
  readonly told = new Map<string, { tx: FuzzTx; told: FuzzTold }>();

  record(tx: FuzzTx, told: FuzzTold): void {
    this.told.set(`${tx.thread}:${tx.seq}`, { tx, told });
  }

  /** Counts by what the clients were told (with codes), for messages and the report. */
  summary(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const { told } of this.told.values()) {
      const key = told.kind === 'failed' || told.kind === 'unknown' ? `${told.kind} ${told.code}` : told.kind;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  count(kind: FuzzTold['kind']): number {
    return [...this.told.values()].filter((o) => o.told.kind === kind).length;
  }
}

/**
 * One client thread: connects to a proxy picked at random (another when that
 * one is down), runs planned transactions until `stopped()`, and reconnects
 * whenever its connection breaks. Its plans come from its own seeded generator.
 */
export async function clientThread(opts: {
  readonly thread: number;
  readonly rnd: () => number;
  readonly placement: Placement;
  readonly urls: () => readonly string[];
  readonly outcomes: FuzzOutcomes;
  readonly stopped: () => boolean;
}): Promise<void> {
  let seq = 0;
  while (!opts.stopped()) {
    const urls = opts.urls();
    const url = urls[between(opts.rnd, 0, urls.length - 1)]!;
    let client: pg.Client;
    try {
      client = await connect(url);
    } catch {
      // That instance is down (the disruptor killed it): pick again shortly.
      await sleep(100);
      continue;
    }
    try {
      while (!opts.stopped()) {
        seq += 1;
        const tx = planTx(opts.rnd, opts.placement, opts.thread, seq);
        const { told, broken } = await runTx(client, tx);
        opts.outcomes.record(tx, told);
        if (broken) break;
        // A shard that is down fails every transaction at once: pace the thread rather than spin.
        if (told.kind === 'failed' && /^(08|57P)/.test(told.code)) await sleep(25);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
