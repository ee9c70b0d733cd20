import { outgoingHeaders } from './incoming-context.js';

/** The shape of `fetch` (global fetch, undici's fetch, or a compatible implementation). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * Wraps `fetchImpl` so every request made inside a propagated context carries
 * `shardgate-gid`, `traceparent` and `tracestate`. Headers the caller set
 * explicitly win. Outside any context the call goes to `fetchImpl` with
 * exactly the arguments it was given.
 */
export function withShardGateHeaders<F extends FetchLike>(fetchImpl: F): F {
  const wrapped = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const extra = Object.entries(outgoingHeaders());
    if (extra.length === 0) return init === undefined ? fetchImpl(input) : fetchImpl(input, init);
    // init.headers replaces a Request's own headers in fetch, so start from whichever applies.
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    for (const [name, value] of extra) if (value !== undefined && !headers.has(name)) headers.set(name, value);
    return fetchImpl(input, { ...init, headers });
  };
  return wrapped as F;
}
