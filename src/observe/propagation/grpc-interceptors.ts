import { outgoingHeaders, readPropagation, runWithPropagation, type PropagatedContext } from './incoming-context.js';

/*
 * Written against the shapes of @grpc/grpc-js (≥ 1.10, which has server
 * interceptors) rather than importing it, so it is not a runtime dependency:
 * the application passes its own `grpc` module to the factories below.
 */

/** The part of grpc-js `Metadata` used here. Keys are lower-case; values of binary (`-bin`) keys are Buffers. */
export interface GrpcMetadataLike {
  get(key: string): readonly unknown[];
  set(key: string, value: string): void;
}

/** Method-syntax signatures keep parameters bivariant, so grpc-js's own types are accepted without casts. */
type Bivariant<F extends (...args: never[]) => unknown> = { fn(...args: Parameters<F>): ReturnType<F> }['fn'];

interface ClientRequesterLike<M, L> {
  start(metadata: M, listener: L, next: (metadata: M, listener: L) => void): void;
}

/** The part of the grpc-js module the client interceptor needs. */
export interface GrpcClientModule<M extends GrpcMetadataLike, L, C, I> {
  readonly InterceptingCall: new (nextCall: C, requester: ClientRequesterLike<M, L>) => I;
}

/**
 * A grpc-js client interceptor adding `shardgate-gid`, `traceparent` and
 * `tracestate` metadata from the current propagated context (and the active
 * span). Keys the caller already set win. Outside any context nothing is
 * added. Use: `new Client(addr, creds, { interceptors: [grpcClientInterceptor(grpc)] })`.
 */
export function grpcClientInterceptor<M extends GrpcMetadataLike, L, C, I, O>(
  grpc: GrpcClientModule<M, L, C, I>,
): Bivariant<(options: O, nextCall: (options: O) => C) => I> {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        for (const [key, value] of Object.entries(outgoingHeaders())) {
          if (value !== undefined && metadata.get(key).length === 0) metadata.set(key, value);
        }
        next(metadata, listener);
      },
    });
}

/** What a server listener may intercept; `next` continues towards the handler. */
interface ServerListenerLike<M> {
  onReceiveMetadata(metadata: M, next: (metadata: M) => void): void;
  onReceiveMessage(message: unknown, next: (message: unknown) => void): void;
  onReceiveHalfClose(next: () => void): void;
}

interface ServerResponderLike<M> {
  start(next: (listener: ServerListenerLike<M>) => void): void;
}

/** The part of the grpc-js module the server interceptor needs. */
export interface GrpcServerModule<M extends GrpcMetadataLike, C, I> {
  readonly ServerInterceptingCall: new (nextCall: C, responder: ServerResponderLike<M>) => I;
}

function fromMetadata(metadata: GrpcMetadataLike): PropagatedContext | undefined {
  return readPropagation((key) => {
    const value = metadata.get(key)[0];
    return typeof value === 'string' ? value : undefined;
  });
}

/**
 * A grpc-js server interceptor: reads the propagated context from the call's
 * metadata and delivers every later event (messages, half-close: the points
 * where grpc-js invokes the handler) inside it, so the handler sees it through
 * `incomingContext()`. Calls without these keys pass through untouched. Use:
 * `new grpc.Server({ interceptors: [grpcServerInterceptor(grpc)] })`.
 * Handlers that start work on events this does not cover can use
 * `withGrpcIncomingContext` instead.
 */
export function grpcServerInterceptor<M extends GrpcMetadataLike, C, I, D>(
  grpc: GrpcServerModule<M, C, I>,
): Bivariant<(methodDescriptor: D, call: C) => I> {
  return (_methodDescriptor, call) => {
    let ctx: PropagatedContext | undefined;
    const inContext = (fn: () => void): void => (ctx === undefined ? fn() : runWithPropagation(ctx, fn));
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            ctx = fromMetadata(metadata);
            inContext(() => nextMetadata(metadata));
          },
          onReceiveMessage(message, nextMessage) {
            inContext(() => nextMessage(message));
          },
          onReceiveHalfClose(nextHalfClose) {
            inContext(nextHalfClose);
          },
        });
      },
    });
  };
}

/**
 * Wraps a grpc-js handler (unary or streaming) so it runs in the context read
 * from its call's metadata; without these keys the handler runs unchanged.
 */
export function withGrpcIncomingContext<C extends { readonly metadata: GrpcMetadataLike }, A extends unknown[], R>(
  handler: (call: C, ...rest: A) => R,
): (call: C, ...rest: A) => R {
  return (call, ...rest) => {
    const ctx = fromMetadata(call.metadata);
    return ctx === undefined ? handler(call, ...rest) : runWithPropagation(ctx, () => handler(call, ...rest));
  };
}
