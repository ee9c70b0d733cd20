export {
  HEADER_GID,
  HEADER_TRACEPARENT,
  HEADER_TRACESTATE,
  incomingContext,
  outgoingHeaders,
  readPropagation,
  runWithPropagation,
  type PropagatedContext,
  type PropagationHeaders,
} from './incoming-context.js';
export { withShardGateHeaders, type FetchLike } from './fetch-headers.js';
export {
  shardgateFastifyPlugin,
  shardgateMiddleware,
  shardgateOnRequestHook,
  shardgatePreHandlerHook,
  type FastifyHookTarget,
  type RequestWithHeaders,
} from './http-middleware.js';
export { grpcClientInterceptor, grpcServerInterceptor, withGrpcIncomingContext, type GrpcMetadataLike } from './grpc-interceptors.js';
