import type { AdminSource, InDoubtTx, InFlightTx, ResolveResult, ShardHealth } from '../admin/admin-source.js';
import type { ShardName } from '../config/names.js';
import type { Engine } from '../engine/engine.js';
import { asPgError } from '../engine/combine-errors.js';
import { PgError } from '../errors/pg-error.js';
import type { Logger } from '../observe/logger.js';
import type { InDoubtTransaction } from '../tx/index.js';

const isoTime = (ms: number): string => new Date(ms).toISOString();
const sqlLiteral = (text: string): string => `'${text.replace(/'/g, "''")}'`;

/**
 * The admin API over a running engine. In-flight transactions come from the
 * engine's open sessions; in-doubt ones are our prepared branches on the
 * shards that no live transaction of this instance holds; `resolve` applies
 * only the decision recorded on the anchor (`shardgate.tx_decision`) and
 * refuses when none is recorded (it never records one itself: that is
 * recovery's job, under its grace period); `reload` is given by the caller.
 */
export class EngineAdminSource implements AdminSource {
  readonly #engine: Engine;
  readonly #reload: () => Promise<{ ok: boolean; reason?: string }>;
  readonly #log: Logger | undefined;

  constructor(engine: Engine, reload: () => Promise<{ ok: boolean; reason?: string }>, log?: Logger) {
    this.#engine = engine;
    this.#reload = reload;
    this.#log = log;
  }

  inFlight(): readonly InFlightTx[] {
    const now = Date.now();
    const out: InFlightTx[] = [];
    for (const s of this.#engine.sessions) {
      const tx = s.transaction;
      if (tx === null) continue;
      const state: InFlightTx['state'] = tx.ending
        ? 'committing'
        : tx.state === 'failed'
          ? 'aborted'
          : s.currentStatement === null
            ? 'idle_in_transaction'
            : 'active';
      out.push({
        gid: tx.gid ?? tx.id,
        client: s.client,
        startedAt: isoTime(tx.startedAt),
        ageSeconds: (now - tx.startedAt) / 1000,
        state,
        participants: [...tx.participants.keys()].sort(),
        currentStatement: s.currentStatement,
      });
    }
    return out.sort((a, b) => b.ageSeconds - a.ageSeconds);
  }

  async inDoubt(): Promise<readonly InDoubtTx[]> {
    return group(await this.#branches());
  }

  /** Prepared branches of ours not held by a live transaction of this instance (those are mid-commit, not in doubt). */
  async #branches(): Promise<InDoubtTransaction[]> {
    const live = new Set<string>();
    for (const tx of this.#engine.transactions.active.values()) if (tx.gid !== undefined) live.add(tx.gid);
    return (await this.#engine.transactions.inDoubt()).filter((b) => !live.has(b.gid));
  }

  async shardHealth(): Promise<readonly ShardHealth[]> {
    const config = this.#engine.config;
    const stats = this.#engine.connector.stats();
    return Promise.all(
      config.shards.map(async (spec): Promise<ShardHealth> => {
        const pool = stats.get(spec.name) ?? null;
        const started = performance.now();
        try {
          const conn = await this.#engine.connector.acquire(spec.name, Math.min(config.pool.acquireTimeoutMs, 5000));
          let ok = false;
          try {
            const row = (await conn.rows("SELECT pg_catalog.current_setting('server_version'), pg_catalog.current_setting('max_prepared_transactions')"))[0] ?? [];
            ok = true;
            return {
              shard: spec.name,
              kind: spec.kind,
              healthy: true,
              latencyMs: performance.now() - started,
              error: null,
              pool,
              serverVersion: row[0] ?? null,
              maxPreparedTransactions: row[1] === null || row[1] === undefined ? null : Number(row[1]),
            };
          } finally {
            conn.release(!ok);
          }
        } catch (err) {
          const e = asPgError(err);
          return { shard: spec.name, kind: spec.kind, healthy: false, latencyMs: null, error: `${e.code} ${e.message}`, pool };
        }
      }),
    );
  }

  async resolve(gid: string): Promise<ResolveResult> {
    const branches = (await this.#branches()).filter((b) => b.gid === gid);
    const anchor = branches[0]?.anchor ?? null;
    if (branches.length === 0 || anchor === null) {
      throw new PgError({ severity: 'ERROR', code: '42704', message: `transaction ${gid} is not in doubt: no prepared branch of it was found` });
    }
    const outcome = await this.#recordedDecision(anchor, gid);
    if (outcome === null) {
      throw new PgError({
        severity: 'ERROR',
        code: '55000',
        message: `no decision is recorded for ${gid} on its anchor ${anchor}; refusing to guess`,
        hint: 'Recovery records an abort once the prepared branches are older than its grace period; wait for it, or check the coordinator that ran the transaction.',
      });
    }
    const verb = outcome === 'commit' ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
    await Promise.all(
      branches.map(async (b) => {
        const conn = await this.#engine.connector.acquire(b.shard, this.#engine.config.pool.acquireTimeoutMs);
        let ok = false;
        try {
          await conn.exec(`${verb} ${sqlLiteral(b.preparedGid)}`);
          ok = true;
        } catch (err) {
          // 42704: finished meanwhile (by recovery or another instance) with the same recorded decision.
          if (!(err instanceof PgError && err.code === '42704')) throw err;
          ok = true;
        } finally {
          conn.release(!ok);
        }
      }),
    );
    this.#engine.metrics.recoveryDecided(outcome);
    this.#log?.info({ gid, outcome, shards: branches.map((b) => b.shard) }, 'admin: in-doubt transaction resolved by its recorded decision');
    return { gid, outcome };
  }

  /** The decision row's outcome on the anchor, or null when none is recorded. */
  async #recordedDecision(anchor: ShardName, gid: string): Promise<'commit' | 'abort' | null> {
    const conn = await this.#engine.connector.acquire(anchor, this.#engine.config.pool.acquireTimeoutMs);
    let ok = false;
    try {
      const outcome = (await conn.rows('SELECT outcome FROM shardgate.tx_decision WHERE gid = $1', [gid]))[0]?.[0];
      ok = true;
      return outcome === 'commit' || outcome === 'abort' ? outcome : null;
    } finally {
      conn.release(!ok);
    }
  }

  config(): unknown {
    return this.#engine.config;
  }

  reload(): Promise<{ readonly ok: boolean; readonly reason?: string }> {
    return this.#reload();
  }
}

/** One entry per gid: where it is still prepared, its oldest prepare, and what the anchor says. */
function group(branches: readonly InDoubtTransaction[]): InDoubtTx[] {
  const byGid = new Map<string, InDoubtTransaction[]>();
  for (const b of branches) byGid.set(b.gid, [...(byGid.get(b.gid) ?? []), b]);
  const now = Date.now();
  return [...byGid].map(([gid, list]) => {
    const ageMs = Math.max(...list.map((b) => b.ageMs));
    return {
      gid,
      anchor: list[0]!.anchor ?? '?',
      preparedOn: list.map((b) => b.shard).sort(),
      preparedAt: isoTime(now - ageMs),
      ageSeconds: ageMs / 1000,
      decision: list.find((b) => b.decision !== null)?.decision ?? null,
      anchorReachable: list.every((b) => b.anchorReachable),
    };
  });
}
