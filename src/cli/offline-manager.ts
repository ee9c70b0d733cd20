import type { ShardGateConfig } from '../config/types.js';
import { createLogger } from '../observe/logger.js';
import type { ShardCursor } from '../engine/shard-cursor.js';
import type { TransactionManager } from '../tx/index.js';
import type { CliIo } from './cli-io.js';

/**
 * Runs `use` with a transaction manager over fresh connections to every
 * shard, for one-shot commands (recover, restore-point): never start()ed, so
 * no recovery loop or deadlock detector runs; the connections close at the end.
 * `component` names the command in the logs.
 */
export async function withOfflineManager<T>(
  config: ShardGateConfig,
  io: CliIo,
  component: string,
  use: (manager: TransactionManager<ShardCursor>) => Promise<T>,
): Promise<T> {
  const log = createLogger({ base: { component }, env: io.env });
  const { createConnector } = await import('../backend/connector.js');
  const { TransactionManager } = await import('../tx/index.js');
  const connector = await createConnector(config);
  try {
    const manager = new TransactionManager({
      coordinatorId: config.coordinatorId,
      source: connector,
      prepareTimeoutMs: config.transactions.prepareTimeoutMs,
      acquireTimeoutMs: config.pool.acquireTimeoutMs,
      recoveryIntervalMs: 0,
      deadlockCheckMs: 0,
      log: (level, msg, fields) => log[level](fields, msg),
    });
    return await use(manager);
  } finally {
    await connector.close().catch(() => undefined);
  }
}
