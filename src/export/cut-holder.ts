import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendConnector } from '../backend/connector.js';
import type { ShardGateConfig } from '../config/types.js';
import type { ShardCursor } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { atCut } from '../tx/cut.js';
import { quoteIdent } from '../tx/gid.js';
import { HOLD_FILE, LEASE_FILE, MANIFEST_FILE, readManifest, writeJsonAtomic, type ExportShard, type HoldRecord } from './manifest.js';

/** Written by an export that gives its cut up (it refused to resume): the holder ends. */
export const RELEASE_FILE = 'release';

/** Replication slot and publication names for `--cdc`, as `shardgate cdc` derives them. */
export interface CdcNames {
  readonly slotPrefix: string;
  readonly publication: string;
}

/** The slot `shardgate cdc` reads for `shard` with this prefix (its rule: prefix + lower-case shard name). */
export function slotName(prefix: string, shard: string): string {
  return `${prefix}${shard.toLowerCase()}`;
}

/**
 * Creates, on every shard, the publication (FOR ALL TABLES, kept when it
 * exists) and a logical replication slot (pgoutput, two_phase) for change
 * data capture to continue from the export. Must run before the cut: the slot
 * then sends every transaction that commits after its creation, so none that
 * the cut's snapshots miss is lost (src/cdc/README.md, "Starting from an
 * export"). The publication comes first because pgoutput looks it up as of
 * each change it decodes. Refuses a slot that exists already: its position is
 * unknown, and another consumer may own it.
 */
export async function createCdcSlots(connector: BackendConnector, names: CdcNames): Promise<Map<string, { slot: string; publication: string }>> {
  const slots = connector.shards.map((shard) => ({ shard, slot: slotName(names.slotPrefix, shard) }));
  const bad = slots.find((s) => !/^[a-z0-9_]{1,63}$/.test(s.slot));
  if (bad !== undefined) throw sgError('exportOption', { option: '--slot-prefix', reason: `slot name ${JSON.stringify(bad.slot)} is not 1-63 lower-case letters, digits or underscores` });
  // Every shard is checked before any slot is created: a refusal leaves nothing behind.
  for (const { shard, slot } of slots) {
    const existing = await onShard(connector, shard, (conn) => conn.rows('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]));
    if (existing.length > 0) throw sgError('exportOption', { option: '--cdc', reason: `replication slot ${slot} exists already on shard ${shard}; drop it (SELECT pg_drop_replication_slot('${slot}')) or choose another --slot-prefix` });
  }
  const out = new Map<string, { slot: string; publication: string }>();
  try {
    for (const { shard, slot } of slots) {
      await onShard(connector, shard, async (conn) => {
        const pub = await conn.rows('SELECT 1 FROM pg_publication WHERE pubname = $1', [names.publication]);
        if (pub.length === 0) await conn.exec(`CREATE PUBLICATION ${quoteIdent(names.publication)} FOR ALL TABLES`);
        await conn.rows("SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, true)", [slot]);
      });
      out.set(shard, { slot, publication: names.publication });
    }
  } catch (err) {
    // A slot nobody reads keeps WAL until the disk fills: drop the ones this call created.
    await dropSlots(connector, out);
    throw err;
  }
  return out;
}

/** Drops the slots `createCdcSlots` made (a cut that failed after them); errors are ignored, the caller reports its own. */
export async function dropSlots(connector: BackendConnector, slots: ReadonlyMap<string, { slot: string }>): Promise<void> {
  for (const [shard, { slot }] of slots) await onShard(connector, shard, (conn) => conn.rows('SELECT pg_drop_replication_slot($1)', [slot])).catch(() => undefined);
}

/** Runs `use` on a pooled connection of `shard`, released afterwards (closed if `use` failed). */
async function onShard<T>(connector: BackendConnector, shard: string, use: (conn: ShardCursor) => Promise<T>): Promise<T> {
  const conn = await connector.acquire(shard as ShardCursor['shard'], 10_000);
  try {
    const value = await use(conn);
    conn.release();
    return value;
  } catch (err) {
    conn.release(true);
    throw err;
  }
}

/** The statements that open a held transaction and read what the manifest records of it. */
const HOLD_BEGIN = 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL idle_in_transaction_session_timeout = 0';
const HOLD_READ = 'SELECT pg_export_snapshot(), pg_current_snapshot()::text, pg_current_wal_lsn()::text';

/**
 * Takes one cut (src/tx/cut.ts) over every shard and, inside it, opens on
 * each shard a REPEATABLE READ READ ONLY transaction and exports its snapshot.
 * The transactions stay open on the returned connections: an exported
 * snapshot can be imported (`SET TRANSACTION SNAPSHOT`) only while the
 * transaction that exported it lives.
 */
export async function holdCut(
  connector: BackendConnector,
  config: ShardGateConfig,
  slots: ReadonlyMap<string, { slot: string; publication: string }>,
): Promise<{ conns: ShardCursor[]; shards: Record<string, ExportShard> }> {
  const conns: ShardCursor[] = [];
  try {
    for (const shard of connector.shards) conns.push(await connector.acquire(shard, config.pool.acquireTimeoutMs));
    const { value } = await atCut(conns, config.transactions.prepareTimeoutMs, async (ordered) =>
      Promise.all(
        ordered.map(async (conn) => {
          await conn.exec(HOLD_BEGIN);
          const row = (await conn.rows(HOLD_READ))[0] ?? [];
          return [conn.shard, { snapshotId: row[0] ?? '', snapshot: row[1] ?? '', lsn: row[2] ?? '', slot: slots.get(conn.shard)?.slot ?? null, publication: slots.get(conn.shard)?.publication ?? null }] as const;
        }),
      ),
    );
    return { conns, shards: Object.fromEntries(value) };
  } catch (err) {
    // A connection may still hold the gate: closing it is what releases it (atCut's contract).
    for (const c of conns) c.release(true);
    throw err;
  }
}

/**
 * The `export-hold` process: holds the cut of the export in `dir` and
 * publishes it in hold.json, then keeps its transactions open until the
 * export is complete, gives the cut up (release file), stops touching its
 * lease for `leaseMs`, or `stop` resolves. Living in its own process, the cut
 * survives the death of the exporting process, so a rerun resumes under the
 * same snapshots. If this process or a shard dies, the snapshots die with
 * their transactions, and a resume refuses (exportCutLost) instead of reading
 * under other snapshots.
 */
export async function runCutHolder(
  connector: BackendConnector,
  config: ShardGateConfig,
  opts: { readonly dir: string; readonly cutId: string; readonly cdc: CdcNames | null; readonly leaseMs: number; readonly stop: Promise<unknown> },
): Promise<void> {
  const slots = opts.cdc === null ? new Map<string, { slot: string; publication: string }>() : await createCdcSlots(connector, opts.cdc);
  const { conns, shards } = await holdCut(connector, config, slots).catch(async (err: unknown) => {
    await dropSlots(connector, slots);
    throw err;
  });
  try {
    const record: HoldRecord = { cutId: opts.cutId, pid: process.pid, shards };
    await writeJsonAtomic(opts.dir, HOLD_FILE, record);
    let stopped = false;
    void opts.stop.then(() => (stopped = true));
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      if (existsSync(join(opts.dir, RELEASE_FILE))) break;
      if (existsSync(join(opts.dir, MANIFEST_FILE)) && (await readManifest(opts.dir).catch(() => null))?.complete === true) break;
      const lease = await stat(join(opts.dir, LEASE_FILE)).catch(() => null);
      if (lease === null || Date.now() - lease.mtimeMs > opts.leaseMs) break;
    }
  } finally {
    // Ending the transactions ends the snapshots; nothing was written in them.
    for (const c of conns) {
      await c.exec('COMMIT').catch(() => undefined);
      c.release();
    }
  }
}
