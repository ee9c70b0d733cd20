import type { ShardGateConfig } from '../config/types.js';
import type { CliIo } from './cli-io.js';
import { withOfflineManager } from './offline-manager.js';
import { formatAddress } from './serve.js';
import { acceptingConnections } from './status.js';

/** One decision of a recovery pass, as the transaction manager reports it. */
export interface RecoveryDecision {
  readonly gid: string;
  readonly shard: string;
  readonly outcome: string;
  readonly reason?: string;
}

/** Formats one decision as `gid on shard: outcome (reason)`. */
export function decisionLine(d: RecoveryDecision): string {
  return `${d.gid} on ${d.shard}: ${d.outcome}${d.reason ? ` (${d.reason})` : ''}`;
}

/**
 * `shardgate recover`: opens the shards, runs one recovery pass (DESIGN.md
 * "Recovery": presumed abort, fenced by the decision row's primary key; safe
 * next to live instances on networked shards), prints each decision, then
 * lists what is still in doubt (an anchor that does not answer). Exit status
 * 0 when nothing is left in doubt, 1 otherwise.
 *
 * The transaction manager is used without start(): start() runs a pass of its
 * own whose decisions would not be printed, and the periodic loop is not wanted here.
 */
export async function recover(config: ShardGateConfig, io: CliIo): Promise<number> {
  const allEmbedded = config.shards.every((s) => s.kind === 'embedded');
  if (config.shards.some((s) => s.kind === 'embedded') && (await acceptingConnections(config.listen.host, config.listen.port))) {
    // An embedded shard is a single-user PostgreSQL: a second process opening it could corrupt it.
    io.err(
      `shardgate: the embedded shards are in use by the shardgate listening on ${formatAddress(config.listen)}; ` +
        'it recovers by itself every transactions.recoveryIntervalMs, or stop it and run recover again',
    );
    return 1;
  }
  return withOfflineManager(config, io, 'recover', async (manager) => {
    // With only embedded shards, this process holds every shard: nothing can be mid-commit, so no grace period.
    const decisions: readonly RecoveryDecision[] = await manager.recover(allEmbedded ? { graceMs: 0 } : {});
    for (const d of decisions) io.out(decisionLine(d));
    if (decisions.length === 0) io.out('no prepared transactions to resolve');
    const left = await manager.inDoubt();
    for (const t of left) {
      io.err(
        `shardgate: still in doubt: ${t.gid} on ${t.shard}, ${Math.round(t.ageMs / 1000)} s old, anchor ${t.anchor ?? '?'} ` +
          `${t.anchorReachable ? 'reachable (prepared too recently; run recover again later)' : 'UNREACHABLE: bring it back online, then run recover again'}`,
      );
    }
    return left.length === 0 ? 0 : 1;
  });
}
