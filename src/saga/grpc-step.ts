/**
 * A saga step (action, compensation, or a TCC try/confirm/cancel) as a gRPC
 * unary call. Written against the shapes of @grpc/grpc-js instead of
 * importing it, as observe/propagation's interceptors are, so gRPC is not a
 * runtime dependency: an application that uses gRPC steps passes its own
 * `grpc` module and client.
 */
import { outgoingHeaders, type GrpcMetadataLike } from '../observe/propagation/index.js';
import type { StepResult } from './retry-policy.js';
import type { StepContext } from './saga-definition.js';

/** gRPC status codes (the numbers every gRPC implementation uses). */
export const GrpcStatus = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

/**
 * Statuses answered as FAILURE by default: the request itself was refused,
 * and sending it again would be refused again. Every other status is an
 * `error` (retried): UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
 * INTERNAL, UNKNOWN, CANCELLED, DATA_LOSS, and ALREADY_EXISTS, which a
 * participant may answer to a repeated delivery of a call it applied.
 */
export const defaultGrpcFailureCodes: readonly number[] = [
  GrpcStatus.INVALID_ARGUMENT, GrpcStatus.NOT_FOUND, GrpcStatus.PERMISSION_DENIED, GrpcStatus.FAILED_PRECONDITION,
  GrpcStatus.ABORTED, GrpcStatus.OUT_OF_RANGE, GrpcStatus.UNIMPLEMENTED, GrpcStatus.UNAUTHENTICATED,
];

/** The part of grpc-js a gRPC step needs: its `Metadata` class (pass the `grpc` module itself). */
export interface GrpcStepModule {
  readonly Metadata: new () => GrpcMetadataLike;
}

/** What a failed call hands its callback: grpc-js's ServiceError has these. */
interface GrpcErrorLike {
  readonly code?: number;
  readonly details?: string;
  readonly message?: string;
}

/**
 * The part of a grpc-js `Client` used (any generated client, or
 * `new grpc.Client(address, credentials)` for a service without generated code).
 */
export interface GrpcUnaryClient {
  // Method syntax: parameters are compared bivariantly, so grpc-js's own Client is accepted without a cast.
  makeUnaryRequest<Req, Res>(
    method: string,
    serialize: (value: Req) => Buffer,
    deserialize: (value: Buffer) => Res,
    argument: Req,
    metadata: GrpcMetadataLike,
    options: { deadline?: Date },
    callback: (err: GrpcErrorLike | null, value?: Res) => void,
  ): unknown;
}

/**
 * A gRPC step: one unary call to `method` (`/package.Service/Method`) with
 * metadata `idempotency-key` (`gid:step:phase`), `shardgate-gid`,
 * `traceparent` and `tracestate` — the keys of observe/propagation's HTTP and
 * gRPC helpers, each only when present. OK is success (the response is the
 * value); a status in `failureCodes` is FAILURE; in `ongoingCodes`, ONGOING;
 * any other status or a deadline passing is an `error` (retried).
 */
export interface GrpcCall {
  readonly kind: 'grpc';
  readonly grpc: GrpcStepModule;
  readonly client: GrpcUnaryClient | ((ctx: StepContext) => GrpcUnaryClient);
  readonly method: string;
  /** The request message; `{ gid, step, phase, payload }` by default. */
  readonly request?: (ctx: StepContext) => unknown;
  /** Encodes the request; JSON by default (a protobuf encoder for a protobuf service). */
  readonly serialize?: (value: unknown) => Buffer;
  /** Decodes the response into the step's value, stored in the log as JSON; JSON by default. */
  readonly deserialize?: (value: Buffer) => unknown;
  /** More metadata; a key given here wins over the propagated one. */
  readonly metadata?: (ctx: StepContext) => Readonly<Record<string, string>>;
  /** Milliseconds before the call's deadline; 10 000 by default. */
  readonly timeoutMs?: number;
  /** Statuses answered as FAILURE; `defaultGrpcFailureCodes` by default. */
  readonly failureCodes?: readonly number[];
  /** Statuses answered as ONGOING (e.g. FAILED_PRECONDITION for a DTM participant, taken out of failureCodes); none by default. */
  readonly ongoingCodes?: readonly number[];
}

const jsonSerialize = (value: unknown): Buffer => Buffer.from(JSON.stringify(value ?? null));
const jsonDeserialize = (value: Buffer): unknown => (value.length === 0 ? null : (JSON.parse(value.toString('utf8')) as unknown));

/** One attempt of a gRPC call, mapped to a StepResult; never throws. */
export async function callGrpc(call: GrpcCall, ctx: StepContext): Promise<StepResult> {
  const where = call.method;
  try {
    const client = typeof call.client === 'function' ? call.client(ctx) : call.client;
    const metadata = new call.grpc.Metadata();
    const extra = call.metadata?.(ctx) ?? {};
    const keys: Record<string, string | undefined> = { 'idempotency-key': ctx.idempotencyKey, ...outgoingHeaders() };
    for (const [key, value] of Object.entries(keys)) if (value !== undefined && extra[key] === undefined) metadata.set(key, value);
    for (const [key, value] of Object.entries(extra)) metadata.set(key, value);
    const request = call.request === undefined ? { gid: ctx.gid, step: ctx.step, phase: ctx.phase, payload: ctx.payload } : call.request(ctx);
    const { err, value } = await new Promise<{ err: GrpcErrorLike | null; value?: unknown }>((resolve) => {
      client.makeUnaryRequest<unknown, unknown>(
        call.method,
        call.serialize ?? jsonSerialize,
        call.deserialize ?? jsonDeserialize,
        request,
        metadata,
        { deadline: new Date(Date.now() + (call.timeoutMs ?? 10_000)) },
        (e, v) => resolve({ err: e, value: v }),
      );
    });
    if (err === null || err === undefined) return { kind: 'success', value: value ?? null };
    const code = err.code ?? GrpcStatus.UNKNOWN;
    const text = `gRPC ${statusName(code)} from ${where}: ${(err.details ?? err.message ?? '').slice(0, 500)}`;
    if ((call.ongoingCodes ?? []).includes(code)) return { kind: 'ongoing' };
    if ((call.failureCodes ?? defaultGrpcFailureCodes).includes(code)) return { kind: 'failure', reason: text };
    return { kind: 'error', error: text };
  } catch (err) {
    return { kind: 'error', error: `${where}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function statusName(code: number): string {
  return Object.entries(GrpcStatus).find(([, n]) => n === code)?.[0] ?? String(code);
}
