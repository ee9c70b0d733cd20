import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/catalogue.js';
import type { CliIo } from './cli-io.js';
import { CDC_DEFAULTS } from './cdc.js';
import { reportError } from './report-error.js';

/** Flags of `shardgate export`. */
export interface ExportFlags {
  readonly out: string;
  readonly config?: string;
  readonly jobs?: string;
  readonly chunkRows?: string;
  readonly cdc?: boolean;
  readonly slotPrefix?: string;
  readonly publication?: string;
  readonly allowNoPrimaryKey?: boolean;
  readonly holdSeconds?: string;
}

/** Flags of `shardgate export-hold` (started by export, not by people). */
export interface ExportHoldFlags {
  readonly out: string;
  readonly cutId: string;
  readonly cdc?: boolean;
  readonly slotPrefix?: string;
  readonly publication?: string;
  readonly holdSeconds?: string;
}

/** Flags of `shardgate import`. */
export interface ImportFlags {
  readonly jobs?: string;
  readonly skipUnenforceableForeignKeys?: boolean;
}

export const EXPORT_DEFAULTS = { jobs: '4', chunkRows: '50000', holdSeconds: '600' } as const;

const BIN = fileURLToPath(new URL('../../bin/shardgate.js', import.meta.url));

function positive(option: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw sgError('exportOption', { option, reason: `${JSON.stringify(text)} is not a positive whole number` });
  return n;
}

/** Every shard must be a server: an exported snapshot is held by one session and imported by others. */
function requireServers(config: ShardGateConfig, command: string): void {
  const embedded = config.shards.find((s) => s.kind === 'embedded');
  if (embedded !== undefined) throw sgError('exportNeedsServer', { command, shard: embedded.name });
}

/**
 * `shardgate export --out DIR`: every shard at one cut (src/export/README.md).
 * Exit 0 once the export is complete, 1 on failure (the message says whether
 * rerunning the same command resumes it or it must start again).
 */
export async function exportCommand(config: ShardGateConfig, flags: ExportFlags, io: CliIo): Promise<number> {
  try {
    requireServers(config, 'export');
    const dir = resolve(flags.out);
    const jobs = positive('--jobs', flags.jobs ?? EXPORT_DEFAULTS.jobs);
    const chunkRows = positive('--chunk-rows', flags.chunkRows ?? EXPORT_DEFAULTS.chunkRows);
    const holdSeconds = positive('--hold-seconds', flags.holdSeconds ?? EXPORT_DEFAULTS.holdSeconds);
    const { createConnector } = await import('../backend/connector.js');
    const { runExport } = await import('../export/export-run.js');
    // Workers plus the connections that check and plan: never more than the pool gives.
    const connector = await createConnector({ ...config, pool: { ...config.pool, maxPerShard: Math.max(config.pool.maxPerShard, jobs + 1) } });
    try {
      const result = await runExport(connector, config, {
        dir,
        jobs,
        chunkRows,
        allowNoPrimaryKey: flags.allowNoPrimaryKey === true,
        say: (line) => io.err(line),
        startHolder: async (cutId) => {
          await mkdir(dir, { recursive: true });
          const log = openSync(join(dir, 'hold.log'), 'a');
          const args = [BIN, 'export-hold', '--out', dir, '--cut-id', cutId, '--hold-seconds', String(holdSeconds)];
          if (flags.config !== undefined) args.push('--config', resolve(flags.config));
          if (flags.cdc === true) args.push('--cdc', '--slot-prefix', flags.slotPrefix ?? CDC_DEFAULTS.slotPrefix, '--publication', flags.publication ?? CDC_DEFAULTS.publication);
          // Its own process group, so that the death of this process (even SIGKILL) leaves the cut held.
          const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env: { ...io.env } });
          child.unref();
          const exited = new Promise<string>((r) => child.once('exit', (code, signal) => r(`the holder process exited (${signal ?? code}); see ${join(dir, 'hold.log')}`)));
          return { exited };
        },
      });
      io.out(`cut ${result.cutId}: ${result.chunks} chunks, ${result.rows} rows${result.resumed ? `, ${result.exported} exported by this run (resumed)` : ''}`);
      io.err(`shardgate export: complete in ${(result.ms / 1000).toFixed(1)} s: ${join(dir, 'manifest.json')}`);
      return 0;
    } finally {
      await connector.close().catch(() => undefined);
    }
  } catch (err) {
    return reportError(io, 'export', err);
  }
}

/** `shardgate export-hold`: holds an export's cut (src/export/cut-holder.ts); started by `shardgate export`. */
export async function exportHoldCommand(config: ShardGateConfig, flags: ExportHoldFlags, io: CliIo): Promise<number> {
  try {
    requireServers(config, 'export');
    const holdSeconds = positive('--hold-seconds', flags.holdSeconds ?? EXPORT_DEFAULTS.holdSeconds);
    const { createConnector } = await import('../backend/connector.js');
    const { runCutHolder } = await import('../export/cut-holder.js');
    const connector = await createConnector(config);
    try {
      await runCutHolder(connector, config, {
        dir: resolve(flags.out),
        cutId: flags.cutId,
        cdc: flags.cdc === true ? { slotPrefix: flags.slotPrefix ?? CDC_DEFAULTS.slotPrefix, publication: flags.publication ?? CDC_DEFAULTS.publication } : null,
        leaseMs: holdSeconds * 1000,
        stop: io.onShutdownSignal(),
      });
      return 0;
    } finally {
      await connector.close().catch(() => undefined);
    }
  } catch (err) {
    return reportError(io, 'export-hold', err);
  }
}

/** `shardgate import DIR`: loads a complete export through the target's rules. Exit 0 when every chunk is loaded, 1 on failure (rerun resumes). */
export async function importCommand(config: ShardGateConfig, dir: string, flags: ImportFlags, io: CliIo): Promise<number> {
  try {
    const jobs = positive('--jobs', flags.jobs ?? EXPORT_DEFAULTS.jobs);
    const { ShardGate } = await import('../library/shard-gate.js');
    const { runImport } = await import('../export/import-run.js');
    const gate = await ShardGate.open(config, { deadlockCheckMs: 0 });
    try {
      const result = await runImport(gate, { dir: resolve(dir), jobs, config, skipUnenforceableForeignKeys: flags.skipUnenforceableForeignKeys === true, say: (line) => io.err(line) });
      io.out(`cut ${result.cutId}: ${result.chunks} chunks, ${result.loaded} loaded by this run, ${result.rows} rows`);
      return 0;
    } finally {
      await gate.close().catch(() => undefined);
    }
  } catch (err) {
    return reportError(io, 'import', err);
  }
}
