import { describe, expect, it } from 'vitest';
import * as shardgate from '../../../src/index.js';

describe('package entry', () => {
  it('exports the library, the configuration loader and the propagation helpers applications use', () => {
    for (const name of [
      'ShardGate',
      'Engine',
      'loadConfig',
      'ConfigError',
      'PgError',
      'isRetryable',
      'Metrics',
      'withShardGateHeaders',
      'shardgateMiddleware',
      'shardgateFastifyPlugin',
      'grpcClientInterceptor',
      'grpcServerInterceptor',
      'runWithPropagation',
      'incomingContext',
    ]) {
      expect(typeof (shardgate as Record<string, unknown>)[name], name).toBe('function');
    }
  });
});
