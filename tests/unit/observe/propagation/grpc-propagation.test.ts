import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  grpcClientInterceptor,
  grpcServerInterceptor,
  HEADER_GID,
  incomingContext,
  runWithPropagation,
  withGrpcIncomingContext,
} from '../../../../src/observe/propagation/index.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const GID = 'sg_gw1_s1_0000000007';

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString()) as unknown,
};
const service = {
  echo: {
    path: '/shardgate.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

type Reply = { ctx: unknown; metadata: Record<string, unknown> };
const EchoClient = grpc.makeGenericClientConstructor(service, 'Echo');

/** The handler reports the context it sees after an await, and the metadata it received. */
const handler = (call: grpc.ServerUnaryCall<unknown, Reply>, callback: grpc.sendUnaryData<Reply>): void => {
  void (async () => {
    await sleep(2);
    const md = call.metadata.getMap();
    callback(null, { ctx: incomingContext() ?? null, metadata: { gid: md[HEADER_GID] ?? null, traceparent: md.traceparent ?? null } });
  })();
};

async function startServer(server: grpc.Server, impl: grpc.UntypedServiceImplementation): Promise<string> {
  server.addService(service, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return `127.0.0.1:${port}`;
}

let intercepted: grpc.Server;
let wrapped: grpc.Server;
let interceptedAddr: string;
let wrappedAddr: string;

beforeAll(async () => {
  intercepted = new grpc.Server({ interceptors: [grpcServerInterceptor(grpc)] });
  interceptedAddr = await startServer(intercepted, { echo: handler });
  wrapped = new grpc.Server();
  wrappedAddr = await startServer(wrapped, { echo: withGrpcIncomingContext(handler) });
});

afterAll(() => {
  intercepted.forceShutdown();
  wrapped.forceShutdown();
});

function call(addr: string, metadata = new grpc.Metadata()): Promise<Reply> {
  const client = new EchoClient(addr, grpc.credentials.createInsecure(), { interceptors: [grpcClientInterceptor(grpc)] });
  return new Promise<Reply>((resolve, reject) =>
    client.makeUnaryRequest(service.echo.path, json.serialize, (b: Buffer) => json.deserialize(b) as Reply, {}, metadata, (err, value) => {
      client.close();
      if (err) reject(err);
      else resolve(value!);
    }),
  );
}

describe('gRPC propagation', () => {
  for (const [name, addr] of [
    ['server interceptor', () => interceptedAddr],
    ['handler wrapper', () => wrappedAddr],
  ] as const) {
    it(`carries the gid and traceparent from client context to handler (${name})`, async () => {
      const reply = await runWithPropagation({ gid: GID, traceparent: TRACEPARENT }, () => call(addr()));
      expect(reply.metadata).toEqual({ gid: GID, traceparent: TRACEPARENT });
      expect(reply.ctx).toEqual({ gid: GID, traceparent: TRACEPARENT });
    });

    it(`passes calls without the keys through unchanged (${name})`, async () => {
      const reply = await call(addr());
      expect(reply).toEqual({ ctx: null, metadata: { gid: null, traceparent: null } });
    });
  }

  it('keeps metadata the caller set and keeps concurrent calls apart', async () => {
    const md = new grpc.Metadata();
    md.set(HEADER_GID, 'explicit-gid');
    const explicit = await runWithPropagation({ gid: GID }, () => call(interceptedAddr, md));
    expect(explicit.ctx).toEqual({ gid: 'explicit-gid' });
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) => runWithPropagation({ gid: `sg_gw1_s0_${i}` }, () => call(interceptedAddr)).then((r) => [i, r] as const)),
    );
    for (const [i, r] of replies) expect(r.ctx).toEqual({ gid: `sg_gw1_s0_${i}` });
  });
});
