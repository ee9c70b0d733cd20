import type { ShardName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/index.js';
import type { CopyFromPlan } from '../planner/plan.js';
import { hashShardIndex, modShardIndex, rangeShard } from '../planner/shard-key.js';
import { CopyRouter } from './copy-in.js';
import type { ExecEvent } from './session-api.js';
import type { ShardCursor } from './shard-cursor.js';

const TABLE_COLUMNS_SQL =
  'SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum';

/**
 * The events of one COPY … FROM STDIN: 'copyIn' with a CopyRouter as the
 * sink, then 'complete' with the rows copied once the client's data ended
 * and every shard accepted its part. `connection(shard, write)` gives the
 * connection a shard's copy runs on (the caller decides whether that is a
 * transaction's participant). Stopping early aborts every shard's copy.
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
    columns = (await (await connection(shard, false)).rows(TABLE_COLUMNS_SQL, [plan.table])).map((r) => r[0] ?? '');
  }
  const at = columns.findIndex((c) => c.toLowerCase() === key);
  if (at < 0) {
    throw sgError('invalidShardingKey', { table: plan.table, column: key, reason: 'the copied columns do not include the sharding key' });
  }
  return at;
}

/**
 * The shard owning a row of `table` with this sharding-key text, by the same
 * functions the planner routes INSERTs with (so a copied row lands where an
 * INSERT of it would). A NULL key, a non-integer under `mod`, or a value no
 * range covers is refused with 22023, as for INSERT.
 */
export function shardForKey(config: ShardGateConfig, table: CopyFromPlan['table'], key: string | null): ShardName {
  const rule = config.tables.get(table);
  const shards = config.shards.map((s) => s.name);
  if (rule === undefined || rule.kind === 'broadcast') return config.defaultShard;
  if (key === null) throw sgError('invalidShardingKey', { table, column: rule.key, reason: 'the sharding key is NULL' });
  if (rule.kind === 'hash') return shards[hashShardIndex(key, shards.length)]!;
  if (rule.kind === 'mod') {
    const i = modShardIndex(key, shards.length);
    if (i === null) throw sgError('invalidShardingKey', { table, column: rule.key, reason: `"${key}" is not an integer (the mod rule needs one)` });
    return shards[i]!;
  }
  const shard = rangeShard(key, rule.ranges);
  if (shard === null) throw sgError('noShardForKey', { table, column: rule.key, value: key });
  return shard;
}
