import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HEADER_GID,
  incomingContext,
  runWithPropagation,
  shardgateFastifyPlugin,
  shardgateMiddleware,
  withShardGateHeaders,
} from '../../../../src/observe/propagation/index.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const GID = 'sg_gw1_s0_0000000042';

let fastify: FastifyInstance;
let fastifyUrl: string;
let expressServer: Server;
let expressUrl: string;
const fetchWithContext = withShardGateHeaders(fetch);

interface Echo {
  readonly ctx: unknown;
  readonly received: Record<string, string | null>;
}

beforeAll(async () => {
  // Service B (Fastify) reports the context its handler sees, after body parsing and an await.
  fastify = Fastify();
  await fastify.register(shardgateFastifyPlugin);
  const echo = async (request: { headers: Record<string, unknown> }): Promise<Echo> => {
    await sleep(2);
    const received: Record<string, string | null> = {};
    for (const h of [HEADER_GID, 'traceparent', 'tracestate']) received[h] = (request.headers[h] as string | undefined) ?? null;
    return { ctx: incomingContext() ?? null, received };
  };
  fastify.get('/echo', echo);
  fastify.post('/echo', echo);
  fastifyUrl = await fastify.listen({ host: '127.0.0.1', port: 0 });

  // Service A (Express) calls B through the fetch wrapper from inside its handler.
  const app = express();
  app.use(shardgateMiddleware());
  app.get('/call', async (_req, res) => {
    await sleep(1);
    const seenByA = incomingContext() ?? null;
    const b = (await (await fetchWithContext(`${fastifyUrl}/echo`, { method: 'POST', body: JSON.stringify({ big: 'x'.repeat(100_000) }), headers: { 'content-type': 'application/json' } })).json()) as Echo;
    res.json({ seenByA, b });
  });
  await new Promise<void>((resolve) => {
    expressServer = app.listen(0, '127.0.0.1', () => resolve());
  });
  expressUrl = `http://127.0.0.1:${(expressServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await fastify.close();
  await new Promise((resolve) => expressServer.close(resolve));
});

describe('HTTP propagation (Express → fetch → Fastify)', () => {
  it('carries the gid and trace context from the caller through A to B', async () => {
    const res = await fetch(`${expressUrl}/call`, { headers: { [HEADER_GID]: GID, traceparent: TRACEPARENT, tracestate: 'vendor=x' } });
    const body = (await res.json()) as { seenByA: unknown; b: Echo };
    const expected = { gid: GID, traceparent: TRACEPARENT, tracestate: 'vendor=x' };
    expect(body.seenByA).toEqual(expected);
    expect(body.b.received).toEqual({ [HEADER_GID]: GID, traceparent: TRACEPARENT, tracestate: 'vendor=x' });
    expect(body.b.ctx).toEqual(expected);
  });

  it('passes requests without the headers through unchanged', async () => {
    const body = (await (await fetch(`${expressUrl}/call`)).json()) as { seenByA: unknown; b: Echo };
    expect(body.seenByA).toBeNull();
    expect(body.b).toEqual({ ctx: null, received: { [HEADER_GID]: null, traceparent: null, tracestate: null } });
  });

  it('ignores malformed values as if absent', async () => {
    const res = await fetch(`${fastifyUrl}/echo`, { headers: { [HEADER_GID]: 'has space', traceparent: '00-zz-01' } });
    expect(((await res.json()) as Echo).ctx).toBeNull();
  });

  it('keeps concurrent requests apart', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const gid = `sg_gw1_s0_${i}`;
        const body = (await (await fetch(`${expressUrl}/call`, { headers: { [HEADER_GID]: gid } })).json()) as { b: Echo };
        return [gid, body.b.ctx] as const;
      }),
    );
    for (const [gid, ctx] of results) expect(ctx).toEqual({ gid });
  });
});

describe('withShardGateHeaders', () => {
  it('adds the current gid, lets headers set by the caller win, and keeps a Request\'s own headers', async () => {
    const calls: { input: unknown; init: RequestInit | undefined }[] = [];
    const fake = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      calls.push({ input, init });
      return new Response('ok');
    };
    const wrapped = withShardGateHeaders(fake);
    await wrapped('http://x.invalid/a');
    expect(calls[0]!.init).toBeUndefined();
    await runWithPropagation({ gid: GID, traceparent: TRACEPARENT }, async () => {
      await wrapped('http://x.invalid/b', { headers: { [HEADER_GID]: 'caller-gid', accept: 'text/plain' } });
      await wrapped(new Request('http://x.invalid/c', { headers: { 'x-own': '1' } }));
    });
    const h1 = new Headers(calls[1]!.init!.headers);
    expect(h1.get(HEADER_GID)).toBe('caller-gid');
    expect(h1.get('traceparent')).toBe(TRACEPARENT);
    expect(h1.get('accept')).toBe('text/plain');
    const h2 = new Headers(calls[2]!.init!.headers);
    expect(h2.get('x-own')).toBe('1');
    expect(h2.get(HEADER_GID)).toBe(GID);
  });
});
