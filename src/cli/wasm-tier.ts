import { setFlagsFromString } from 'node:v8';
import type { ShardGateConfig } from '../config/types.js';

/** V8 flag that keeps WebAssembly on the baseline compiler (Liftoff), never recompiling it with TurboFan. */
export const BASELINE_WASM_FLAG = '--liftoff-only';

/**
 * The V8 flag `serve` sets before any WebAssembly is compiled, or null to
 * keep V8's default (baseline code first, hot functions recompiled by the
 * optimizing compiler in background threads).
 *
 * With networked shards the only WebAssembly in the process is the SQL
 * parser (libpg-query). Optimizing it after the first statements costs about
 * 45 MB of native memory — mostly compiling the grammar's one very large
 * function — which the C allocator keeps for the life of the process
 * (measured: resident 85 → 130 MB after the first statement), and it makes
 * a parse about 15 % faster (19 → 16 µs for typical statements), which only
 * analysis-cache misses pay. So a proxy over networked shards stays on
 * baseline code. Embedded shards (PGlite) run every query in WebAssembly
 * and keep the optimizing compiler. A flag about WebAssembly compilation
 * given to node explicitly (`node --no-liftoff-only bin/shardgate.js serve`)
 * wins: then nothing is set.
 */
export function wasmTierFlag(config: Pick<ShardGateConfig, 'shards'>, execArgv: readonly string[]): string | null {
  if (config.shards.some((s) => s.kind === 'embedded')) return null;
  if (execArgv.some((a) => /^--(no-)?(liftoff|wasm-tier|wasm-dynamic-tiering)/.test(a.replace(/_/g, '-')))) return null;
  return BASELINE_WASM_FLAG;
}

/**
 * Applies {@link wasmTierFlag} to this process; returns the flag set, or null.
 * Must run before the parser is loaded, since V8 reads the flag when it
 * compiles WebAssembly. It stays set for the process: an embedded shard added
 * later by a configuration reload runs on baseline code (correct, slower).
 */
export function applyWasmTier(config: Pick<ShardGateConfig, 'shards'>, execArgv: readonly string[] = process.execArgv): string | null {
  const flag = wasmTierFlag(config, execArgv);
  if (flag !== null) setFlagsFromString(flag);
  return flag;
}
