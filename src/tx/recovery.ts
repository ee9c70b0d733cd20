import type { ShardName } from '../config/names.js';
import { PgError } from '../errors/pg-error.js';
import { readDecision, resolveDecision } from './decision.js';
import type { Failpoints } from './failpoints.js';
import { parsePreparedGid, preparedGid, quoteLiteral, textArray } from './gid.js';
import type { InDoubtTransaction, Outcome, RecoveryDecision, TxConnection, TxConnectionSource, TxLog, TxObserver } from './types.js';

/** What recovery and garbage collection need. */
export interface RecoveryContext<C extends TxConnection> {
  readonly source: TxConnectionSource<C>;
  readonly acquireTimeoutMs: number;
  readonly failpoints: Failpoints;
  readonly log: TxLog;
  readonly observer?: TxObserver;
}

/** Runs `fn` on a connection of `shard`, releasing it (closed if `fn` failed with the connection in doubt). */
export async function withConnection<C extends TxConnection, T>(ctx: RecoveryContext<C>, shard: ShardName, fn: (conn: C) => Promise<T>): Promise<T> {
  const conn = await ctx.source.acquire(shard, ctx.acquireTimeoutMs);
  let ok = false;
  try {
    const result = await fn(conn);
    ok = true;
    return result;
  } finally {
    conn.release(!ok);
  }
}

interface PreparedBranch {
  readonly prepared: string;
  readonly ageMs: number;
}

/** Our prepared branches in the shard's database (pg_prepared_xacts lists the whole cluster). */
async function listPrepared(conn: TxConnection): Promise<PreparedBranch[]> {
  const rows = await conn.rows(
    "SELECT gid, floor(extract(epoch FROM clock_timestamp() - prepared) * 1000)::bigint FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%' AND database = current_database() ORDER BY prepared",
  );
  return rows.map(([gid, age]) => ({ prepared: gid ?? '', ageMs: Number(age) }));
}

/**
 * Ends a prepared branch as decided. Resolves with false when it no longer
 * existed (42704): another instance or the coordinator finished it.
 */
async function finishPrepared(conn: TxConnection, prepared: string, outcome: Outcome): Promise<boolean> {
  try {
    await conn.exec(`${outcome === 'commit' ? 'COMMIT' : 'ROLLBACK'} PREPARED ${quoteLiteral(prepared)}`);
    return true;
  } catch (err) {
    if (err instanceof PgError && err.code === '42704') return false;
    throw err;
  }
}

/**
 * One recovery pass over every shard: each prepared branch of ours older than
 * `graceMs` gets its outcome fixed on its anchor (an 'abort' row unless a
 * decision exists) and is then committed or rolled back. Safe concurrently with
 * live commits and with other instances (src/tx/README.md). A branch whose
 * anchor cannot be reached is left alone and shows in inDoubt(). `graceMs`
 * may differ per shard (the shard holding the branch).
 */
export async function recoverOnce<C extends TxConnection>(ctx: RecoveryContext<C>, graceMs: number | ((shard: ShardName) => number)): Promise<RecoveryDecision[]> {
  const perShard = await Promise.all(ctx.source.shards.map((shard) => recoverShard(ctx, shard, typeof graceMs === 'number' ? graceMs : graceMs(shard))));
  return perShard.flat();
}

async function recoverShard<C extends TxConnection>(ctx: RecoveryContext<C>, shard: ShardName, graceMs: number): Promise<RecoveryDecision[]> {
  const decisions: RecoveryDecision[] = [];
  let branches: PreparedBranch[];
  try {
    branches = await withConnection(ctx, shard, listPrepared);
  } catch (err) {
    ctx.log('warn', 'recovery: cannot list prepared transactions', { shard, err: String(err) });
    return decisions;
  }
  for (const { prepared, ageMs } of branches) {
    if (ageMs < graceMs) continue;
    const parsed = parsePreparedGid(prepared);
    if (!parsed || !ctx.source.shards.includes(parsed.anchor) || parsed.anchor === shard) {
      // Never guess: a branch whose anchor we cannot name stays prepared and is reported.
      ctx.log('error', 'recovery: prepared transaction with no known anchor left alone', { shard, prepared });
      continue;
    }
    try {
      await ctx.failpoints.hit('before-recovery-resolve', shard);
      // If we die after the decision below commits, the next pass reads the same outcome and finishes the branch.
      const outcome = await withConnection(ctx, parsed.anchor, (conn) => resolveDecision(conn, parsed.gid, [shard]));
      const finished = await withConnection(ctx, shard, (conn) => finishPrepared(conn, prepared, outcome));
      const reason = `${outcome === 'commit' ? 'decision row on ' : 'no commit decision on '}${parsed.anchor}${finished ? '' : '; already finished elsewhere'}`;
      ctx.log('info', `recovery: ${outcome === 'commit' ? 'committed' : 'rolled back'} prepared transaction`, { gid: parsed.gid, shard, reason });
      if (finished) ctx.observer?.recoveryDecided(outcome);
      decisions.push({ gid: parsed.gid, shard, outcome, reason });
    } catch (err) {
      // Anchor unreachable, lock timeout behind a live coordinator, or the branch busy: the next pass retries.
      ctx.log('warn', 'recovery: could not resolve prepared transaction', { gid: parsed.gid, shard, anchor: parsed.anchor, err: String(err) });
    }
  }
  return decisions;
}

/** Every prepared branch of ours, with its age and what its anchor says. */
export async function listInDoubt<C extends TxConnection>(ctx: RecoveryContext<C>): Promise<InDoubtTransaction[]> {
  const listed = await Promise.all(
    ctx.source.shards.map(async (shard) => {
      try {
        return (await withConnection(ctx, shard, listPrepared)).map((b) => ({ ...b, shard }));
      } catch (err) {
        ctx.log('warn', 'in-doubt: cannot list prepared transactions', { shard, err: String(err) });
        return [];
      }
    }),
  );
  const result: InDoubtTransaction[] = [];
  for (const { prepared, ageMs, shard } of listed.flat()) {
    const parsed = parsePreparedGid(prepared);
    let anchorReachable = false;
    let decision: Outcome | null = null;
    if (parsed && ctx.source.shards.includes(parsed.anchor)) {
      try {
        decision = await withConnection(ctx, parsed.anchor, (conn) => readDecision(conn, parsed.gid));
        anchorReachable = true;
      } catch {
        anchorReachable = false;
      }
    }
    result.push({ gid: parsed?.gid ?? prepared, preparedGid: prepared, shard, anchor: parsed?.anchor ?? null, ageMs, anchorReachable, decision });
  }
  return result;
}

function parseTextArray(text: string | null | undefined): string[] {
  if (text === null || text === undefined || text === '{}') return [];
  return text
    .slice(1, -1)
    .split(',')
    .map((s) => s.replace(/^"|"$/g, ''));
}

/**
 * Deletes decision rows in batches: 'abort' rows older than `retentionMs`
 * (they fence late coordinators, so they outlive any prepare by far), and
 * 'commit' rows older than `commitMinAgeMs` whose participants all answered
 * and no longer hold the branch. Returns how many rows went.
 */
export async function collectDecisions<C extends TxConnection>(ctx: RecoveryContext<C>, retentionMs: number, commitMinAgeMs: number, batch = 500): Promise<number> {
  let deleted = 0;
  for (const anchor of ctx.source.shards) {
    try {
      const { aborts, commits } = await withConnection(ctx, anchor, async (conn) => {
        const gone = await conn.rows(
          `WITH doomed AS (SELECT gid FROM shardgate.tx_decision WHERE outcome = 'abort' AND created_at < now() - $1::interval LIMIT ${batch})
           DELETE FROM shardgate.tx_decision d USING doomed WHERE d.gid = doomed.gid RETURNING d.gid`,
          [`${retentionMs} milliseconds`],
        );
        const candidates = await conn.rows(
          `SELECT gid, participants FROM shardgate.tx_decision WHERE outcome = 'commit' AND created_at < now() - $1::interval ORDER BY created_at LIMIT ${batch}`,
          [`${commitMinAgeMs} milliseconds`],
        );
        return { aborts: gone.length, commits: candidates.map(([gid, parts]) => ({ gid: gid ?? '', participants: parseTextArray(parts) })) };
      });
      deleted += aborts;
      if (commits.length === 0) continue;
      // A commit row may go once no participant holds its branch any more.
      const stillNeeded = new Set<string>();
      const byShard = new Map<string, string[]>();
      for (const c of commits) for (const p of c.participants) byShard.set(p, [...(byShard.get(p) ?? []), c.gid]);
      for (const [participant, gids] of byShard) {
        const names = gids.map((g) => preparedGid(g, participant as ShardName));
        try {
          if (!ctx.source.shards.includes(participant as ShardName)) throw new Error(`participant ${participant} is not configured`);
          const held = await withConnection(ctx, participant as ShardName, (conn) =>
            conn.rows('SELECT gid FROM pg_prepared_xacts WHERE gid = ANY($1::text[]) AND database = current_database()', [textArray(names)]),
          );
          const heldSet = new Set(held.map(([g]) => g));
          gids.forEach((g, i) => heldSet.has(names[i]!) && stillNeeded.add(g));
        } catch (err) {
          for (const g of gids) stillNeeded.add(g);
          ctx.log('warn', 'decision GC: cannot check participant', { anchor, participant, err: String(err) });
        }
      }
      const doomed = commits.map((c) => c.gid).filter((g) => !stillNeeded.has(g));
      if (doomed.length === 0) continue;
      const gone = await withConnection(ctx, anchor, (conn) =>
        conn.rows("DELETE FROM shardgate.tx_decision WHERE gid = ANY($1::text[]) AND outcome = 'commit' RETURNING gid", [textArray(doomed)]),
      );
      deleted += gone.length;
    } catch (err) {
      ctx.log('warn', 'decision GC failed on shard', { shard: anchor, err: String(err) });
    }
  }
  return deleted;
}
