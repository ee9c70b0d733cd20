/**
 * Retries for saga steps: exponential backoff with full jitter, a per-step
 * attempt cap and a global deadline per saga. A step's answer is a typed
 * union; what the coordinator does next is a pure function of that answer,
 * the attempt count and the clock, so it is tested without any I/O.
 */

/** What one attempt of a step answered. */
export type StepResult =
  | { readonly kind: 'success'; readonly value?: unknown }
  /** Still in progress on the other side: try again after the same interval, not counted as a failure. */
  | { readonly kind: 'ongoing' }
  /** A business refusal: never retried, the saga compensates. */
  | { readonly kind: 'failure'; readonly reason: string }
  /** A thrown or transport error: retried until the caps are reached. */
  | { readonly kind: 'error'; readonly error: string };

/** How a saga retries its steps. */
export interface RetryPolicy {
  /** First retry interval in milliseconds. */
  readonly baseMs: number;
  /** Upper bound of one interval in milliseconds. */
  readonly maxMs: number;
  /** Attempts (counting the first) after which a step is exhausted. */
  readonly maxAttempts: number;
  /** Milliseconds after the saga's start after which no step is retried. */
  readonly deadlineMs: number;
}

/** The defaults used when a saga definition names no policy. */
export const defaultRetryPolicy: RetryPolicy = { baseMs: 100, maxMs: 30_000, maxAttempts: 8, deadlineMs: 10 * 60_000 };

/** What the coordinator does after an attempt. */
export type RetryDecision =
  | { readonly kind: 'done'; readonly value?: unknown }
  | { readonly kind: 'compensate'; readonly reason: string }
  /** Run again at `at`; `attempts` is the new failure count to store. */
  | { readonly kind: 'retry'; readonly at: number; readonly attempts: number; readonly intervalMs: number; readonly lastError?: string }
  /** Dead letter: RETRY_EXHAUSTED, keeping the last error. */
  | { readonly kind: 'exhausted'; readonly lastError: string };

/** The state an attempt is judged in. */
export interface AttemptState {
  /** Failed attempts so far (ONGOING answers are not counted). */
  readonly attempts: number;
  /** The interval used before this attempt, kept by ONGOING. */
  readonly lastIntervalMs: number;
  /** When the saga started (epoch milliseconds). */
  readonly sagaStartedAt: number;
  /** Now (epoch milliseconds). */
  readonly now: number;
}

/** The interval before retry number `attempt` (1-based): full jitter over min(max, base·2^(attempt-1)). */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/** The coordinator's next move after `result`, under `policy`, in `state`. */
export function decide(policy: RetryPolicy, result: StepResult, state: AttemptState, random: () => number = Math.random): RetryDecision {
  const deadline = state.sagaStartedAt + policy.deadlineMs;
  switch (result.kind) {
    case 'success':
      return { kind: 'done', value: result.value };
    case 'failure':
      return { kind: 'compensate', reason: result.reason };
    case 'ongoing': {
      const intervalMs = Math.max(state.lastIntervalMs, policy.baseMs);
      if (state.now + intervalMs > deadline) return { kind: 'exhausted', lastError: 'still ongoing at the saga deadline' };
      return { kind: 'retry', at: state.now + intervalMs, attempts: state.attempts, intervalMs };
    }
    case 'error': {
      const attempts = state.attempts + 1;
      if (attempts >= policy.maxAttempts) return { kind: 'exhausted', lastError: result.error };
      const intervalMs = backoffMs(policy, attempts, random);
      if (state.now + intervalMs > deadline) return { kind: 'exhausted', lastError: result.error };
      return { kind: 'retry', at: state.now + intervalMs, attempts, intervalMs, lastError: result.error };
    }
  }
}
