import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcServerInterceptor, incomingContext, runWithPropagation, type PropagatedContext } from '../../../src/observe/propagation/index.js';
import { GrpcStatus, type GrpcCall } from '../../../src/saga/grpc-step.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import type { SagaDefinition } from '../../../src/saga/saga-definition.js';
import { tccSaga } from '../../../src/saga/transaction-class.js';
import { openSagaFixture, type SagaFixture } from './saga-fixture.js';

const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 3, deadlineMs: 60_000 };

/** One call the gRPC service received: the method, its metadata, the context its handler saw, the request. */
interface GrpcReceived {
  readonly method: string;
  readonly metadata: Record<string, unknown>;
  readonly context: PropagatedContext | undefined;
  readonly request: { gid: string; step: string; phase: string; payload: unknown };
}

const METHODS = ['Reserve', 'Release', 'Charge', 'Refund', 'Try', 'Confirm', 'Cancel'] as const;
const toJson = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const fromJson = (b: Buffer): unknown => JSON.parse(b.toString('utf8')) as unknown;

/** A service defined at run time (no .proto, no generated code), its messages JSON. */
const service: grpc.ServiceDefinition = Object.fromEntries(
  METHODS.map((name) => [
    name,
    { path: `/shop.Stock/${name}`, requestStream: false, responseStream: false, requestSerialize: toJson, requestDeserialize: fromJson, responseSerialize: toJson, responseDeserialize: fromJson, originalName: name },
  ]),
);

describe('saga steps as gRPC unary calls, against a grpc-js server', () => {
  let fixture: SagaFixture;
  let server: grpc.Server;
  let client: grpc.Client;
  let coordinator: SagaCoordinator;
  const received: GrpcReceived[] = [];
  /** The status a call answers (OK by default); `n` counts the calls of this method and gid from 1. */
  let answer: (method: string, n: number) => number = () => GrpcStatus.OK;

  beforeAll(async () => {
    fixture = await openSagaFixture();
    // The server reads the propagated context with the interceptor of observe/propagation.
    server = new grpc.Server({ interceptors: [grpcServerInterceptor(grpc)] });
    const handler = (method: string): grpc.handleUnaryCall<GrpcReceived['request'], unknown> => (call, callback) => {
      const r: GrpcReceived = { method, metadata: call.metadata.getMap(), context: incomingContext(), request: call.request };
      received.push(r);
      const n = received.filter((x) => x.method === method && x.request.gid === r.request.gid).length;
      const code = answer(method, n);
      if (code === GrpcStatus.OK) callback(null, { method, key: r.metadata['idempotency-key'] });
      else callback({ code, details: `${method} answers ${code}` });
    };
    server.addService(service, Object.fromEntries(METHODS.map((m) => [m, handler(m)])));
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e === null ? resolve(p) : reject(e))));
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = (method: string, extra: Partial<GrpcCall> = {}): GrpcCall => ({ kind: 'grpc', grpc, client, method: `/shop.Stock/${method}`, ...extra });
    const order: SagaDefinition = {
      steps: [
        { name: 'reserve', action: call('Reserve', { metadata: () => ({ 'x-tenant': 'acme' }) }), compensation: call('Release') },
        { name: 'charge', action: call('Charge'), compensation: call('Refund') },
      ],
      retry: fast,
    };
    // Nothing listens on port 1: the channel answers UNAVAILABLE.
    const nowhere = new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure());
    const down: SagaDefinition = { steps: [{ name: 'reserve', action: { kind: 'grpc', grpc, client: nowhere, method: '/shop.Stock/Reserve', timeoutMs: 2000 } }], retry: fast };
    const tcc = tccSaga({ branches: [{ name: 'stock', try: call('Try'), confirm: call('Confirm'), cancel: call('Cancel') }], retry: fast });
    coordinator = new SagaCoordinator({ pool: fixture.pool, id: 'grpc', definitions: { order, down, tcc }, pollIntervalMs: 5, onError: (e) => { throw e; } });
    coordinator.start();
  });

  afterAll(async () => {
    await coordinator?.close();
    client?.close();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.tryShutdown(() => resolve())));
    await fixture?.close();
  });

  const of = (gid: string): GrpcReceived[] => received.filter((r) => r.request.gid === gid);
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('commits, carrying the gid, the trace context and the idempotency key in metadata, with the caller\'s own key kept', async () => {
    answer = () => GrpcStatus.OK;
    const gid = await runWithPropagation({ traceparent, tracestate: 'vendor=1' }, () => coordinator.submit(fixture.pool, 'order', { amount: 5 }));
    const log = await coordinator.outcome(gid);
    expect(log.status).toBe('committed');
    const calls = of(gid);
    expect(calls.map((r) => r.method)).toEqual(['Reserve', 'Charge']);
    expect(calls[0]!.metadata).toMatchObject({ 'shardgate-gid': gid, traceparent, tracestate: 'vendor=1', 'idempotency-key': `${gid}:reserve:action`, 'x-tenant': 'acme' });
    expect(calls[1]!.metadata['x-tenant']).toBeUndefined();
    // The handler ran inside the propagated context the server interceptor read from the metadata.
    expect(calls.map((r) => r.context)).toEqual([{ gid, traceparent, tracestate: 'vendor=1' }, { gid, traceparent, tracestate: 'vendor=1' }]);
    expect(calls[1]!.request).toEqual({ gid, step: 'charge', phase: 'action', payload: { amount: 5 } });
    const results = await fixture.pool.query<{ result: unknown }>('SELECT result FROM shardgate_saga.saga_step WHERE gid = $1 ORDER BY step', [gid]);
    expect(results.rows.map((r) => r.result)).toEqual([{ method: 'Reserve', key: `${gid}:reserve:action` }, { method: 'Charge', key: `${gid}:charge:action` }]);
  });

  it('passes calls without a trace context through unharmed: no trace keys are invented, the gid still travels', async () => {
    answer = () => GrpcStatus.OK;
    const gid = await coordinator.submit(fixture.pool, 'order', {});
    expect((await coordinator.outcome(gid)).status).toBe('committed');
    for (const r of of(gid)) {
      expect(Object.keys(r.metadata).filter((k) => ['traceparent', 'tracestate', 'shardgate-gid'].includes(k))).toEqual(['shardgate-gid']);
      expect(r.context).toEqual({ gid });
    }
    // A traceparent without a tracestate sends no tracestate.
    const half = await runWithPropagation({ traceparent }, () => coordinator.submit(fixture.pool, 'order', {}));
    expect((await coordinator.outcome(half)).status).toBe('committed');
    expect(of(half).map((r) => [r.metadata['traceparent'], 'tracestate' in r.metadata])).toEqual([[traceparent, false], [traceparent, false]]);
  });

  it('retries UNAVAILABLE with the same idempotency key, and exhausts against a server that is down', async () => {
    answer = (method, n) => (method === 'Charge' && n <= 2 ? GrpcStatus.UNAVAILABLE : GrpcStatus.OK);
    const gid = await coordinator.submit(fixture.pool, 'order', {});
    const log = await coordinator.outcome(gid);
    expect(log.status).toBe('committed');
    expect(of(gid).map((r) => r.method)).toEqual(['Reserve', 'Charge', 'Charge', 'Charge']);
    expect(new Set(of(gid).filter((r) => r.method === 'Charge').map((r) => r.metadata['idempotency-key']))).toEqual(new Set([`${gid}:charge:action`]));
    expect(log.steps.map((s) => [s.name, s.calls, s.attempts])).toEqual([['reserve', 1, 0], ['charge', 3, 2]]);

    const lost = await coordinator.submit(fixture.pool, 'down', {});
    await expect(coordinator.outcome(lost)).rejects.toMatchObject({ code: '40003' });
    const dead = (await coordinator.inspect(lost))!;
    expect(dead.status).toBe('exhausted');
    expect(dead.lastError).toMatch(/^RETRY_EXHAUSTED: step reserve \(action\): gRPC UNAVAILABLE from \/shop\.Stock\/Reserve: /);
    expect(dead.steps[0]!.calls).toBe(3);
  });

  it('answers a non-retriable status as FAILURE: not retried, the earlier step compensated over gRPC', async () => {
    answer = (method) => (method === 'Charge' ? GrpcStatus.FAILED_PRECONDITION : GrpcStatus.OK);
    const gid = await coordinator.submit(fixture.pool, 'order', {});
    const log = await coordinator.outcome(gid);
    expect(log.status).toBe('compensated');
    expect(log.lastError).toBe('step charge failed: gRPC FAILED_PRECONDITION from /shop.Stock/Charge: Charge answers 9');
    expect(of(gid).map((r) => [r.method, r.metadata['idempotency-key']])).toEqual([
      ['Reserve', `${gid}:reserve:action`],
      ['Charge', `${gid}:charge:action`],
      ['Release', `${gid}:reserve:compensation`],
    ]);
  });

  it('runs TCC over gRPC: try then confirm; a refused try is neither confirmed nor cancelled (it applied nothing)', async () => {
    answer = () => GrpcStatus.OK;
    const ok = await coordinator.submit(fixture.pool, 'tcc', {});
    expect((await coordinator.outcome(ok)).status).toBe('committed');
    expect(of(ok).map((r) => [r.method, r.metadata['idempotency-key']])).toEqual([['Try', `${ok}:stock.try:action`], ['Confirm', `${ok}:stock.confirm:action`]]);
    answer = (method) => (method === 'Try' ? GrpcStatus.ABORTED : GrpcStatus.OK);
    const refused = await coordinator.submit(fixture.pool, 'tcc', {});
    expect((await coordinator.outcome(refused)).status).toBe('compensated');
    expect(of(refused).map((r) => r.method)).toEqual(['Try']);
  });
});
