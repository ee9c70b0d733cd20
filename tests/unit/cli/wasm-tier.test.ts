import { describe, expect, it } from 'vitest';
import { BASELINE_WASM_FLAG, wasmTierFlag } from '../../../src/cli/wasm-tier.js';
import { shardName } from '../../../src/config/names.js';

const network = (name: string) => ({ kind: 'postgres' as const, name: shardName(name), url: `postgres://127.0.0.1:5432/${name}` });
const embedded = (name: string) => ({ kind: 'embedded' as const, name: shardName(name), dir: `/tmp/${name}` });

describe('which compiler the WebAssembly parser gets under serve', () => {
  it('keeps baseline code when every shard is networked', () => {
    expect(wasmTierFlag({ shards: [network('s0'), network('s1')] }, [])).toBe(BASELINE_WASM_FLAG);
    expect(BASELINE_WASM_FLAG).toBe('--liftoff-only');
  });

  it('keeps the optimizing compiler as soon as one shard is embedded (PGlite runs every query in WebAssembly)', () => {
    expect(wasmTierFlag({ shards: [network('s0'), embedded('s1')] }, [])).toBeNull();
    expect(wasmTierFlag({ shards: [embedded('s0')] }, [])).toBeNull();
  });

  it('leaves a WebAssembly compilation flag given to node alone', () => {
    const shards = [network('s0')];
    expect(wasmTierFlag({ shards }, ['--no-liftoff-only'])).toBeNull();
    expect(wasmTierFlag({ shards }, ['--liftoff_only'])).toBeNull();
    expect(wasmTierFlag({ shards }, ['--wasm-dynamic-tiering'])).toBeNull();
    expect(wasmTierFlag({ shards }, ['--max-semi-space-size=8', '--enable-source-maps'])).toBe(BASELINE_WASM_FLAG);
  });
});
