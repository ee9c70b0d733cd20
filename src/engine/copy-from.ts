import type { ShardName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/index.js';
import type { CopyFromPlan } from '../planner/plan.js';
import { CopyRouter } from './copy-in.js';
import type { ExecEvent } from './session-api.js';
import type { ShardCursor } from './shard-cursor.js';
import { readTableColumns } from './table-columns.js';

/**
 * The events of one COPY … FROM STDIN: 'copyIn' with a CopyRouter as the
 * sink, then 'complete' with the rows copied once the client's data ended
 * and every shard accepted its part. `connection(shard, write)` gives the
 * connection a shard's copy runs on (the caller decides whether that is a
 * transaction's participant). Stopping early aborts every shard's copy.
 * `route` places a row by its key text: the planner's `shardForKey`, so a
 * copied row lands where an INSERT of it would.
 */
export async function* copyFromEvents(
  plan: CopyFromPlan,
  config: ShardGateConfig,
  route: (key: string | null) => ShardName,
  connection: (shard: ShardName, write?: boolean) => Promise<ShardCursor>,
): AsyncGenerator<ExecEvent, void, undefined> {
  if (plan.rule === 'sharded' && plan.format === 'binary') {
    throw sgError('featureNotSupported', { feature: 'COPY FROM STDIN in binary format into a sharded table', hint: 'Use FORMAT text or csv.' });
  }
  const keyColumn = plan.rule === 'sharded' ? await keyColumnIndex(plan, config, connection) : null;
  const router = new CopyRouter(plan, keyColumn, {
    route,
    open: async (shard) => (await connection(shard, true)).copyIn(plan.sql),
  });
  const format = plan.format === 'binary' ? 1 : 0;
  try {
    yield { kind: 'copyIn', format, columnFormats: plan.columns.map(() => format), sink: router };
    yield { kind: 'complete', tag: await router.done };
  } finally {
    // A consumer that stopped without ending the copy leaves the shards in COPY mode: abort them (no-op once ended).
    await router.fail('COPY ended by the client').catch(() => undefined);
  }
}

/** Position of the sharding key among the copied columns (the table's own column order when none are listed). */
async function keyColumnIndex(
  plan: CopyFromPlan,
  config: ShardGateConfig,
  connection: (shard: ShardName, write?: boolean) => Promise<ShardCursor>,
): Promise<number> {
  const rule = config.tables.get(plan.table);
  const key = rule !== undefined && rule.kind !== 'broadcast' ? rule.key.toLowerCase() : '';
  let columns = plan.columns;
  if (columns.length === 0) {
    // Asked on a connection the copy may use anyway (inside a transaction, the one that may have created the table).
    const shard = plan.shards[0] ?? config.defaultShard;
    columns = await readTableColumns(await connection(shard, false), plan.table);
  }
  const at = columns.findIndex((c) => c.toLowerCase() === key);
  if (at < 0) {
    throw sgError('invalidShardingKey', { table: plan.table, column: key, reason: 'the copied columns do not include the sharding key' });
  }
  return at;
}
