import type { ShardGateConfig } from '../config/types.js';
import type { CliIo } from './cli-io.js';
import { withOfflineManager } from './offline-manager.js';

/** PostgreSQL's limit for a restore point's name (MAXFNAMELEN − 1 bytes). */
const MAX_NAME_BYTES = 63;

/**
 * `shardgate restore-point NAME`: creates the restore point on every shard at
 * one cut (src/tx/README.md, "One cut"), so that recovering every shard to
 * NAME (`recovery_target_name`) gives a fleet where each cross-shard
 * transaction is whole or absent. Prints `shard LSN` per shard. Exit 0 on
 * success, 1 when a shard refused (the message names it) — then no shard is
 * guaranteed to have the point, and the command can be run again.
 */
export async function restorePoint(config: ShardGateConfig, name: string, io: CliIo): Promise<number> {
  if (name === '' || Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    io.err(`shardgate: restore point name must be 1 to ${MAX_NAME_BYTES} bytes`);
    return 1;
  }
  if (config.shards.some((s) => s.kind === 'embedded')) {
    io.err('shardgate: restore points need PostgreSQL servers with WAL archiving; embedded shards have none');
    return 1;
  }
  try {
    const lsns = await withOfflineManager(config, io, 'restore-point', (manager) => manager.restorePoint(name));
    for (const [shard, lsn] of lsns) io.out(`${shard} ${lsn}`);
    return 0;
  } catch (err) {
    const shard = (err as { shard?: unknown }).shard;
    io.err(`shardgate: restore point ${JSON.stringify(name)} not created${typeof shard === 'string' ? ` (shard ${shard})` : ''}: ${(err as Error).message}`);
    return 1;
  }
}
