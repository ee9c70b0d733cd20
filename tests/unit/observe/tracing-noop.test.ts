import { context, trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { activeTraceHeaders, withSpan } from '../../../src/observe/tracing.js';

describe('withSpan without an OpenTelemetry SDK', () => {
  it('runs the function, returns its value and records nothing', async () => {
    const result = await withSpan('statement', { 'shardgate.gid': 'g' }, async (span) => {
      expect(span.isRecording()).toBe(false);
      return 42;
    });
    expect(result).toBe(42);
    expect(activeTraceHeaders()).toEqual({});
    expect(trace.getSpan(context.active())).toBeUndefined();
  });
});
