import { describe, expect, it } from 'vitest';
import { backoffMs, decide, type RetryPolicy } from '../../../src/saga/retry-policy.js';

const policy: RetryPolicy = { baseMs: 100, maxMs: 1000, maxAttempts: 4, deadlineMs: 60_000 };
const state = { attempts: 0, lastIntervalMs: 0, sagaStartedAt: 0, now: 1000 };

describe('saga retry policy', () => {
  it('draws full jitter below an exponential ceiling capped at maxMs', () => {
    expect(backoffMs(policy, 1, () => 0.999)).toBe(99);
    expect(backoffMs(policy, 3, () => 0.999)).toBe(399);
    expect(backoffMs(policy, 10, () => 0.999)).toBe(999);
    expect(backoffMs(policy, 3, () => 0)).toBe(0);
  });

  it('ends on success and compensates on FAILURE without retrying', () => {
    expect(decide(policy, { kind: 'success', value: 7 }, state)).toEqual({ kind: 'done', value: 7 });
    expect(decide(policy, { kind: 'failure', reason: 'no funds' }, { ...state, attempts: 0 })).toEqual({ kind: 'compensate', reason: 'no funds' });
  });

  it('keeps the interval on ONGOING and does not count it as a failure', () => {
    const d = decide(policy, { kind: 'ongoing' }, { ...state, attempts: 2, lastIntervalMs: 250 });
    expect(d).toEqual({ kind: 'retry', at: 1250, attempts: 2, intervalMs: 250 });
  });

  it('retries errors with a growing count and ends RETRY_EXHAUSTED with the last error at the cap', () => {
    const first = decide(policy, { kind: 'error', error: 'ECONNREFUSED' }, state, () => 0.5);
    expect(first).toMatchObject({ kind: 'retry', attempts: 1, intervalMs: 50, at: 1050, lastError: 'ECONNREFUSED' });
    expect(decide(policy, { kind: 'error', error: 'timeout' }, { ...state, attempts: 3 })).toEqual({ kind: 'exhausted', lastError: 'timeout' });
  });

  it('ends RETRY_EXHAUSTED when the next attempt would fall after the saga deadline', () => {
    const late = { ...state, now: 59_990 };
    expect(decide(policy, { kind: 'error', error: 'boom' }, late, () => 0.5)).toEqual({ kind: 'exhausted', lastError: 'boom' });
    expect(decide(policy, { kind: 'ongoing' }, { ...late, lastIntervalMs: 100 })).toMatchObject({ kind: 'exhausted' });
  });
});
