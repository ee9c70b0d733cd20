/**
 * What a saga is made of: ordered steps, each an action and an optional
 * compensation, run as a local function in the coordinator's claim
 * transaction, an HTTP call or a gRPC unary call. How one attempt of either answers is the
 * typed StepResult of retry-policy.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Queryable } from '../library/shard-gate.js';
import { outgoingHeaders } from '../observe/propagation/index.js';
import type { GrpcCall } from './grpc-step.js';
import type { RetryPolicy, StepResult } from './retry-policy.js';

/** Which half of a step is running. */
export type StepPhase = 'action' | 'compensation';

/** What a step's code is told about the attempt it runs; frozen, one per attempt. */
export interface StepContext {
  readonly gid: string;
  readonly step: string;
  readonly phase: StepPhase;
  /** 1 for the first attempt of this phase, counting ONGOING answers. */
  readonly attempt: number;
  readonly payload: unknown;
  /** Stable across attempts and coordinators: `gid:step:phase`. A participant dedupes on it. */
  readonly idempotencyKey: string;
}

/**
 * A local step: runs inside the coordinator's claim transaction on the saga
 * database (`tx`, under a savepoint), so what it writes there commits
 * atomically with the step's log row. Returning nothing means success; a
 * throw is an `error` answer (retried).
 */
export interface LocalCall {
  readonly kind: 'local';
  readonly run: (tx: Queryable, ctx: StepContext) => Promise<StepResult | void>;
}

/**
 * An HTTP step: a JSON request carrying `Idempotency-Key`, `shardgate-gid`
 * and the trace context. 2xx is success (the JSON body is the value), 409 is
 * FAILURE, 425 (Too Early) is ONGOING, anything else or a transport error is
 * an `error` answer.
 */
export interface HttpCall {
  readonly kind: 'http';
  readonly url: string | ((ctx: StepContext) => string);
  readonly method?: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly body?: (ctx: StepContext) => unknown;
  /** Milliseconds before an attempt is abandoned as an error; 10 000 by default. */
  readonly timeoutMs?: number;
}

/** A step's call: local, HTTP, or a gRPC unary call (grpc-step.ts). */
export type StepCall = LocalCall | HttpCall | GrpcCall;

/** One step of a saga. */
export interface SagaStep {
  /** Unique within the saga; part of the idempotency key. */
  readonly name: string;
  readonly action: StepCall;
  /** Undoes the action; omitted when there is nothing to undo. Must be safe when the action never applied. */
  readonly compensation?: StepCall;
  /** Runs together with the step before it (same stage). */
  readonly parallel?: boolean;
  /**
   * False for an action that must not be refused once the steps before it
   * are done (a TCC confirm): its FAILURE answer is retried as an error, until
   * it succeeds or is exhausted, instead of compensating the saga. True by default.
   */
  readonly mayRefuse?: boolean;
}

/** A saga: its steps in order and how they retry. */
export interface SagaDefinition {
  readonly steps: readonly SagaStep[];
  readonly retry?: RetryPolicy;
}

/** The stage of each step: a step marked parallel shares the stage of the one before it. */
export function stagesOf(def: SagaDefinition): number[] {
  const stages: number[] = [];
  def.steps.forEach((s, i) => stages.push(i === 0 ? 0 : s.parallel === true ? stages[i - 1]! : stages[i - 1]! + 1));
  return stages;
}

/** Throws when a definition cannot be run: no steps, or two steps with one name. */
export function checkDefinition(name: string, def: SagaDefinition): void {
  if (def.steps.length === 0) throw new Error(`saga "${name}" has no steps; give it at least one`);
  const seen = new Set<string>();
  for (const s of def.steps) {
    if (seen.has(s.name)) throw new Error(`saga "${name}" has two steps named "${s.name}"; step names must be unique, they are part of the idempotency key`);
    seen.add(s.name);
  }
}

const stepStorage = new AsyncLocalStorage<StepContext>();

/** The step attempt being run (in the step's code and everything it starts), or undefined outside one. */
export function sagaContext(): StepContext | undefined {
  return stepStorage.getStore();
}

/** Runs `fn` with `ctx` as the current step attempt. */
export function runInStep<R>(ctx: StepContext, fn: () => R): R {
  return stepStorage.run(Object.freeze({ ...ctx }), fn);
}

/** One attempt of an HTTP call, mapped to a StepResult; never throws. */
export async function callHttp(call: HttpCall, ctx: StepContext): Promise<StepResult> {
  const url = typeof call.url === 'string' ? call.url : call.url(ctx);
  try {
    const res = await fetch(url, {
      method: call.method ?? 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': ctx.idempotencyKey, ...outgoingHeaders() },
      body: JSON.stringify(call.body === undefined ? { gid: ctx.gid, step: ctx.step, phase: ctx.phase, payload: ctx.payload } : call.body(ctx)),
      signal: AbortSignal.timeout(call.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    if (res.ok) return { kind: 'success', value: parseJson(text) };
    if (res.status === 409) return { kind: 'failure', reason: `HTTP 409 from ${url}: ${text.slice(0, 500)}` };
    if (res.status === 425) return { kind: 'ongoing' };
    return { kind: 'error', error: `HTTP ${res.status} from ${url}: ${text.slice(0, 500)}` };
  } catch (err) {
    return { kind: 'error', error: `${url}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function parseJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
