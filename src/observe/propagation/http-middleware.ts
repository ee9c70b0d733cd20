import { firstHeader, readPropagation, runWithPropagation, type PropagatedContext } from './incoming-context.js';

/** What the middleware reads from a request: Node's IncomingMessage, Express and Fastify requests all have it. */
export interface RequestWithHeaders {
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

function fromRequest(req: RequestWithHeaders): PropagatedContext | undefined {
  return readPropagation((name) => firstHeader(req.headers[name]));
}

/**
 * Express/Connect middleware: handlers after it see the request's gid and
 * trace context through `incomingContext()`, and outgoing calls made through
 * `withShardGateHeaders` or the gRPC client interceptor forward them. A
 * request without these headers passes through untouched.
 */
export function shardgateMiddleware(): (req: RequestWithHeaders, res: unknown, next: (err?: unknown) => void) => void {
  return (req, _res, next) => {
    const ctx = fromRequest(req);
    if (ctx === undefined) {
      next();
      return;
    }
    runWithPropagation(ctx, () => next());
  };
}

type HookDone = (err?: Error) => void;
type FastifyHook = (request: RequestWithHeaders, reply: unknown, done: HookDone) => void;

/** The part of a Fastify instance the plugin uses. */
export interface FastifyHookTarget {
  addHook(name: 'onRequest' | 'preHandler', hook: FastifyHook): unknown;
}

const contexts = new WeakMap<object, PropagatedContext>();

/**
 * Fastify `onRequest` hook: enters the request's propagated context. Use with
 * `shardgatePreHandlerHook`, which re-enters it after body parsing (whose
 * stream callbacks do not keep the async context).
 */
export const shardgateOnRequestHook: FastifyHook = (request, _reply, done) => {
  const ctx = fromRequest(request);
  if (ctx === undefined) {
    done();
    return;
  }
  contexts.set(request, ctx);
  runWithPropagation(ctx, () => done());
};

/** Fastify `preHandler` hook: the handler runs in the context `shardgateOnRequestHook` read. */
export const shardgatePreHandlerHook: FastifyHook = (request, _reply, done) => {
  const ctx = contexts.get(request);
  if (ctx === undefined) {
    done();
    return;
  }
  runWithPropagation(ctx, () => done());
};

/**
 * Fastify plugin registering both hooks. It is marked to skip encapsulation
 * (as fastify-plugin does), so the hooks apply to every route of the instance
 * it is registered on: `app.register(shardgateFastifyPlugin)`.
 */
export const shardgateFastifyPlugin = Object.assign(
  (instance: FastifyHookTarget, _opts: unknown, done: HookDone): void => {
    instance.addHook('onRequest', shardgateOnRequestHook);
    instance.addHook('preHandler', shardgatePreHandlerHook);
    done();
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'shardgate-propagation' },
);
