import { AsyncLocalStorage } from 'node:async_hooks';
import { context, trace, isSpanContextValid, type Context } from '@opentelemetry/api';
import { activeTraceHeaders, contextFromTraceparent, parseTraceparent } from '../tracing.js';

/** Header (and gRPC metadata) names, lower-case and hyphenated as HTTP/2 and gRPC require. */
export const HEADER_GID = 'shardgate-gid';
export const HEADER_TRACEPARENT = 'traceparent';
export const HEADER_TRACESTATE = 'tracestate';

/** What one service hands the next: the global transaction id and the W3C trace context. */
export interface PropagatedContext {
  readonly gid?: string;
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** Outgoing header values, only those present. */
export type PropagationHeaders = { [HEADER_GID]?: string; [HEADER_TRACEPARENT]?: string; [HEADER_TRACESTATE]?: string };

const storage = new AsyncLocalStorage<PropagatedContext>();

/**
 * The context received with the request being handled (or set with
 * `runWithPropagation`), or undefined outside any.
 */
export function incomingContext(): PropagatedContext | undefined {
  return storage.getStore();
}

/**
 * Runs `fn` with `ctx` as the propagated context of everything it starts, so
 * outgoing calls made through the wrappers of this folder forward it. When
 * `ctx` carries a valid traceparent and no span is active, the remote span
 * becomes the OpenTelemetry parent too (spans started inside continue the
 * caller's trace once an SDK is registered).
 */
export function runWithPropagation<R>(ctx: PropagatedContext, fn: () => R): R {
  const merged: PropagatedContext = { ...storage.getStore(), ...ctx };
  const otel = otelParent(merged);
  return otel === undefined ? storage.run(merged, fn) : storage.run(merged, () => context.with(otel, fn));
}

function otelParent(ctx: PropagatedContext): Context | undefined {
  if (ctx.traceparent === undefined) return undefined;
  const active = trace.getSpanContext(context.active());
  if (active !== undefined && isSpanContextValid(active)) return undefined;
  return contextFromTraceparent(ctx.traceparent, ctx.tracestate);
}

// A gid is at most 200 bytes (DESIGN.md); printable ASCII only, so it can be a header value as is.
const GID = /^[\x21-\x7e]{1,200}$/;
const TRACESTATE = /^[\x20-\x7e]{0,512}$/;

/**
 * Reads the propagated context from a header lookup (HTTP headers or gRPC
 * metadata). A value that is malformed (a gid with spaces or control
 * characters, an invalid traceparent) is ignored as if absent: untrusted
 * input never reaches logs or SQL comments unchecked. Returns undefined when
 * nothing usable is present.
 */
export function readPropagation(get: (name: string) => string | undefined): PropagatedContext | undefined {
  const gid = get(HEADER_GID)?.trim();
  const traceparent = get(HEADER_TRACEPARENT)?.trim();
  const tracestate = get(HEADER_TRACESTATE)?.trim();
  const out: { gid?: string; traceparent?: string; tracestate?: string } = {};
  if (gid !== undefined && GID.test(gid)) out.gid = gid;
  if (traceparent !== undefined && parseTraceparent(traceparent) !== null) {
    out.traceparent = traceparent;
    if (tracestate !== undefined && tracestate !== '' && TRACESTATE.test(tracestate)) out.tracestate = tracestate;
  }
  return out.gid === undefined && out.traceparent === undefined ? undefined : out;
}

/** First value of a Node-style header (`string | string[] | undefined`). */
export function firstHeader(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

/**
 * The headers an outgoing call should carry: the current gid, and the trace
 * context of the active span if one is valid (the most specific parent),
 * otherwise the traceparent/tracestate received. Empty when there is nothing.
 */
export function outgoingHeaders(): PropagationHeaders {
  const ctx = storage.getStore();
  const out: PropagationHeaders = {};
  if (ctx?.gid !== undefined) out[HEADER_GID] = ctx.gid;
  const active = activeTraceHeaders();
  if (active.traceparent !== undefined) {
    out[HEADER_TRACEPARENT] = active.traceparent;
    if (active.tracestate !== undefined) out[HEADER_TRACESTATE] = active.tracestate;
  } else if (ctx?.traceparent !== undefined) {
    out[HEADER_TRACEPARENT] = ctx.traceparent;
    if (ctx.tracestate !== undefined) out[HEADER_TRACESTATE] = ctx.tracestate;
  }
  return out;
}
