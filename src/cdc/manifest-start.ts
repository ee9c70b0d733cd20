import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { sgError } from '../errors/catalogue.js';
import { SnapshotFilter } from './snapshot-filter.js';

/** The part of an export's manifest (`shardgate export --cdc`) change data capture starts from. */
const manifestSchema = z.object({
  format: z.literal('shardgate-export/1'),
  cutId: z.string().min(1),
  complete: z.boolean(),
  shards: z.record(
    z.string(),
    z.object({
      lsn: z.string(),
      snapshot: z.string(),
      slot: z.string().nullable(),
      publication: z.string().nullable(),
    }),
  ),
});

/** Where each shard's stream starts so that it continues an export exactly. */
export interface ManifestStart {
  readonly cutId: string;
  readonly shards: ReadonlyMap<string, { readonly slot: string; readonly publication: string; readonly snapshot: SnapshotFilter }>;
  /** True for a transaction the export already holds (visible in its shard's snapshot). */
  skip(shard: string, xid: number): boolean;
}

/**
 * Reads `file` (an export's manifest.json) for the shards `shards`. The
 * export created each shard's slot before its cut and recorded the cut's
 * snapshot, so a stream from that slot that skips what the snapshot saw
 * continues the copy with no gap and no overlap (README.md, "Starting from
 * an export"). Refuses an incomplete export, a shard it does not cover, or
 * one exported without a slot.
 */
export async function readManifestStart(file: string, shards: readonly string[]): Promise<ManifestStart> {
  const fail = (reason: string): never => {
    throw sgError('cdcManifest', { file, reason });
  };
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    return fail((err as Error).message);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) return fail(`not an export manifest (${parsed.error.issues.map((i) => `${i.path.join('.') || 'top'}: ${i.message}`).join('; ')})`);
  const m = parsed.data;
  if (!m.complete) fail('the export did not finish; resume it first');
  const extra = Object.keys(m.shards).filter((s) => !shards.includes(s));
  if (extra.length > 0) fail(`it covers shards ${extra.join(', ')} that the configuration does not name`);
  const out = new Map<string, { slot: string; publication: string; snapshot: SnapshotFilter }>();
  for (const shard of shards) {
    const entry = m.shards[shard] ?? fail(`it has no shard "${shard}"`);
    if (entry.slot === null || entry.publication === null) fail(`shard "${shard}" was exported without a replication slot (export with --cdc)`);
    const snapshot = SnapshotFilter.parse(entry.snapshot) ?? fail(`shard "${shard}" has snapshot ${JSON.stringify(entry.snapshot)}, not xmin:xmax:xip`);
    out.set(shard, { slot: entry.slot!, publication: entry.publication!, snapshot });
  }
  return {
    cutId: m.cutId,
    shards: out,
    skip: (shard, xid) => out.get(shard)?.snapshot.visible(xid) ?? false,
  };
}
