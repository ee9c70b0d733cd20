import type { ShardConnector, ShardCursor } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { quoteLiteral } from '../tx/gid.js';
import type { ExportShard } from './manifest.js';

/**
 * Runs `use` on a connection to `shard` inside a REPEATABLE READ READ ONLY
 * transaction that imported the cut's snapshot of that shard, then ends it.
 *
 * Consistency is never downgraded: if the snapshot cannot be imported (the
 * transaction that exported it ended: its holder died, or the shard
 * restarted) or the imported snapshot is not the one the manifest recorded
 * (`pg_current_snapshot()` differs: an identifier reused after a restart),
 * this throws exportCutLost (72000) instead of reading under another one.
 */
export async function withSnapshot<T>(
  connector: ShardConnector,
  shard: string,
  held: ExportShard,
  ctx: { readonly dir: string; readonly acquireTimeoutMs: number },
  use: (conn: ShardCursor) => Promise<T>,
): Promise<T> {
  const conn = await connector.acquire(shard as ShardCursor['shard'], ctx.acquireTimeoutMs);
  let broken = true;
  try {
    try {
      await conn.exec(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(held.snapshotId)}`);
    } catch (err) {
      // 22023 "invalid snapshot identifier": no live transaction exported it.
      if (err instanceof PgError && err.code === '22023') {
        await conn.exec('ROLLBACK').catch(() => undefined);
        throw sgError('exportCutLost', { dir: ctx.dir, shard, reason: `snapshot ${held.snapshotId} cannot be imported (${err.code}: ${err.message})` });
      }
      throw err;
    }
    const seen = (await conn.rows('SELECT pg_current_snapshot()::text'))[0]?.[0];
    if (seen !== held.snapshot) {
      await conn.exec('ROLLBACK').catch(() => undefined);
      throw sgError('exportCutLost', { dir: ctx.dir, shard, reason: `the imported snapshot is ${seen ?? 'none'}, not the cut's ${held.snapshot}` });
    }
    const value = await use(conn);
    await conn.exec('COMMIT');
    broken = false;
    return value;
  } finally {
    conn.release(broken);
  }
}
