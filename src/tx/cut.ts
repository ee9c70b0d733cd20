import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { parsePreparedGid, quoteLiteral, textArray } from './gid.js';
import type { Failpoints } from './failpoints.js';
import type { TxConnection } from './types.js';

/**
 * The advisory-lock key of the commit gate, the same on every shard and every
 * instance. Committers hold it in shared mode inside the anchor's decision
 * transaction; a cut holds it in exclusive mode on every shard. Applications
 * must not use this key (ASCII "sgcut" in the low bytes).
 */
export const GATE_KEY = 0x7367_6375_74n;

/**
 * The statement a committer runs first in the anchor's decision transaction:
 * the decision cannot commit while a cut holds the gate on the anchor, and the
 * lock ends with the transaction (a crashed coordinator never leaves it held).
 */
export const GATE_SHARED_SQL = `SELECT pg_advisory_xact_lock_shared(${GATE_KEY})`;

/** What a cut did, for metrics and logs. */
export interface CutResult {
  /** Milliseconds from asking for the first gate to releasing the last: how long commits could wait. */
  readonly holdMs: number;
  /** Already-decided branches the cut committed itself (their coordinator was mid-second-phase or dead). */
  readonly finished: number;
  /** Commit decisions that waited for this cut: those waiting for the shared gate when it let go. */
  readonly delayed: number;
}

/**
 * Releases the gate and says how many decision transactions were waiting for
 * it: every decision the cut held back is still waiting at this moment (it
 * cannot go on before the release), so the count is exactly the commits this
 * cut delayed. `w` counts first; `u`, scanned from `w`, lets go of the lock;
 * the statement then returns one empty row per waiter, so its command tag
 * (`SELECT n`) carries the count. Advisory locks on a bigint key show
 * in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1;
 * shared waiters are in ShareLock mode.
 */
const RELEASE_GATE_SQL = `WITH w AS MATERIALIZED (
  SELECT count(*)::int AS n FROM pg_locks
  WHERE locktype = 'advisory' AND NOT granted AND mode = 'ShareLock' AND objsubid = 1
    AND classid = ${GATE_KEY >> 32n} AND objid = ${GATE_KEY & 0xffff_ffffn}
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())),
u AS MATERIALIZED (SELECT pg_advisory_unlock(${GATE_KEY}) AS released, n FROM w)
SELECT FROM u, generate_series(1, u.n)`;

/** Lets go of the gate on `conn`; returns how many decisions were waiting for it. */
async function releaseGate(conn: TxConnection): Promise<number> {
  const tag = await conn.exec(RELEASE_GATE_SQL);
  const m = /^SELECT (\d+)$/.exec(tag);
  if (m === null) throw sgError('internal', { reason: `cut: releasing the gate on ${conn.shard} answered ${JSON.stringify(tag)}` });
  return Number(m[1]);
}

/**
 * Runs `inside` at one cut: a moment at which every global transaction is
 * either committed on all of its shards or visible on none (src/tx/README.md,
 * "One cut"). `conns` holds one idle connection per shard (no transaction
 * open), every shard of the fleet; `inside` gets them in shard-name order while
 * every gate is held and every decided transaction is committed everywhere.
 * On error the caller must release the connections as broken (a connection may
 * still hold the gate, and closing it is what releases it).
 */
export async function atCut<T>(
  conns: readonly TxConnection[],
  lockTimeoutMs: number,
  inside: (ordered: readonly TxConnection[]) => Promise<T>,
  failpoints?: Failpoints,
): Promise<CutResult & { readonly value: T }> {
  const ordered = [...conns].sort((a, b) => (a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : 0));
  const started = performance.now();
  // The first shard's gate (name order) first, then every other shard's at once. Two cuts cannot
  // wait for each other across shards, where no PostgreSQL would detect it: a cut holds or waits
  // for another shard's gate only while holding the first shard's, which one cut at a time can hold
  // (README.md, "One cut"). The lock timeout bounds the wait for decision transactions holding the
  // shared gate (a few milliseconds normally); on the other shards those waits overlap.
  const lock = (conn: TxConnection): Promise<string> =>
    conn.exec(`SET lock_timeout = ${quoteLiteral(`${lockTimeoutMs}ms`)}; SELECT pg_advisory_lock(${GATE_KEY}); RESET lock_timeout`);
  await lock(ordered[0]!);
  await Promise.all(ordered.slice(1).map(lock));
  await failpoints?.hit('holding-cut-gate');
  // Every gate is held: no decision can commit now, so the set of decided global transactions is fixed.
  // Some may still be prepared on a participant (their coordinator is between its decision and its last
  // COMMIT PREPARED, or died there). Committing them here, before any snapshot, is what makes the cut
  // cover the second phase too: their outcome is 'commit' for good, so committing is what recovery would do.
  const finished = await finishDecided(ordered, lockTimeoutMs);
  const value = await inside(ordered);
  // Only now, with every shard's snapshot taken, may any gate go: a decision let through on one
  // shard is followed by COMMIT PREPARED on the others, which a snapshot not yet taken would see.
  const waiting = await Promise.all(ordered.map(releaseGate));
  return { holdMs: performance.now() - started, finished, delayed: waiting.reduce((a, b) => a + b, 0), value };
}

/**
 * Opens, on each connection, a local transaction begun with `beginStatements`
 * (BEGIN ISOLATION LEVEL REPEATABLE READ …, SET LOCAL …) whose snapshot is
 * taken at one cut (see `atCut`). On success every connection is inside its
 * transaction with the snapshot fixed: REPEATABLE READ takes it at the first
 * statement, which runs while the gates are held.
 */
export async function beginAtCut(conns: readonly TxConnection[], beginStatements: readonly string[], lockTimeoutMs: number, failpoints?: Failpoints): Promise<CutResult> {
  return atCut(conns, lockTimeoutMs, (ordered) => Promise.all(ordered.map((conn) => conn.exec([...beginStatements, 'SELECT 1'].join('; ')))), failpoints);
}

/**
 * Creates the restore point `name` on every shard at one cut
 * (`pg_create_restore_point`, superuser): recovering every shard to it gives a
 * fleet in which each global transaction is whole or absent. Returns each
 * shard's restore-point LSN.
 */
export async function restorePointAtCut(conns: readonly TxConnection[], name: string, lockTimeoutMs: number): Promise<CutResult & { readonly value: Map<ShardName, string> }> {
  return atCut(conns, lockTimeoutMs, async (ordered) => {
    const lsns = await Promise.all(ordered.map(async (conn) => (await conn.rows('SELECT pg_create_restore_point($1)::text', [name]))[0]?.[0] ?? '')); 
    return new Map(ordered.map((conn, i) => [conn.shard, lsns[i]!]));
  });
}

/** COMMIT PREPARED of every prepared branch of ours whose anchor recorded 'commit'; returns how many. */
async function finishDecided(conns: readonly TxConnection[], lockTimeoutMs: number): Promise<number> {
  const byShard = new Map<ShardName, TxConnection>(conns.map((c) => [c.shard, c]));
  const prepared = await Promise.all(
    conns.map(async (conn) => {
      const rows = await conn.rows("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%' AND database = current_database()");
      return rows.flatMap((row) => {
        const name = row[0] ?? null;
        const parsed = name === null ? null : parsePreparedGid(name);
        return parsed === null || name === null ? [] : [{ conn, name, gid: parsed.gid, anchor: parsed.anchor }];
      });
    }),
  );
  const branches = prepared.flat();
  if (branches.length === 0) return 0;
  const byAnchor = new Map<ShardName, string[]>();
  for (const b of branches) byAnchor.set(b.anchor, [...(byAnchor.get(b.anchor) ?? []), b.gid]);
  const committed = new Set<string>();
  await Promise.all(
    [...byAnchor].map(async ([anchor, gids]) => {
      const conn = byShard.get(anchor);
      // An anchor outside this cut's shards cannot be: every shard takes part in a cut.
      if (conn === undefined) throw sgError('internal', { reason: `cut: anchor ${anchor} is not one of the shards` });
      const rows = await conn.rows("SELECT gid FROM shardgate.tx_decision WHERE gid = ANY($1::text[]) AND outcome = 'commit'", [textArray(gids)]);
      for (const row of rows) if (typeof row[0] === 'string') committed.add(row[0]);
    }),
  );
  let finished = 0;
  const decided = branches.filter((b) => committed.has(b.gid));
  // One statement at a time per connection (COMMIT PREPARED cannot share an implicit transaction
  // block either); the shards in parallel.
  await Promise.all(
    conns.map(async (conn) => {
      for (const b of decided) if (b.conn === conn && (await commitDecidedBranch(conn, b.name, lockTimeoutMs))) finished++;
    }),
  );
  return finished;
}

/**
 * COMMIT PREPARED of a branch whose decision is 'commit'; true when this call
 * committed it, false when another session (its coordinator, recovery) did.
 * While that other session's COMMIT PREPARED is still running the branch is
 * "busy" (55000): the cut must not take its snapshots before that commit is
 * done, so it waits for the branch to go, up to `timeoutMs`.
 */
async function commitDecidedBranch(conn: TxConnection, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await conn.exec(`COMMIT PREPARED ${quoteLiteral(name)}`);
      return true;
    } catch (err) {
      // Gone: committed by whoever held it (the decision says commit, nobody rolls it back).
      if (err instanceof PgError && err.code === '42704') return false;
      if (!(err instanceof PgError && err.code === '55000') || Date.now() > deadline) throw err;
    }
    // Another session is committing it right now; a commit takes a WAL flush, about a millisecond.
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
