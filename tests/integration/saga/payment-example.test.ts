import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInventory } from '../../../examples/payment/inventory.js';
import { debit, paymentSaga, refund, type Payment } from '../../../examples/payment/payment.js';
import { ShardGate } from '../../../src/index.js';
import { natsJetStreamSink } from '../../../src/messaging/broker-sinks.js';
import { ensureBarrierTable } from '../../../src/saga/barrier.js';
import { OutboxRelay, ensureOutboxTables } from '../../../src/saga/outbox.js';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import type { StepContext } from '../../../src/saga/saga-definition.js';
import { startClusters, type PgCluster } from '../../harness/cluster.js';

const NATS_URL = '127.0.0.1:4222';

/**
 * examples/payment: accounts on two ShardGate shards (account 1 on s1, the
 * barrier fences on the default shard s0: the debit is a two-phase commit),
 * the inventory's own database, the saga log and outbox in a third database,
 * and the notification published to a real JetStream.
 */
describe('worked example: a payment that debits through ShardGate, reserves stock by TCC over HTTP and notifies through the outbox to NATS', () => {
  let clusters: PgCluster[];
  let gate: ShardGate;
  let sagaPool: pg.Pool;
  let inventoryPool: pg.Pool;
  let inventory: Server;
  let coordinator: SagaCoordinator;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const run = randomUUID().slice(0, 8);
  const topic = `sg.payments.${run}`;
  const stream = `SG_PAYMENTS_${run}`;

  beforeAll(async () => {
    clusters = await startClusters(2, { databases: ['app', 'saga', 'inventory'] });
    gate = await ShardGate.open({
      coordinatorId: 'pay',
      shards: { s0: clusters[0]!.url('app'), s1: clusters[1]!.url('app') },
      transactions: { recoveryIntervalMs: 0 },
      tables: { accounts: { key: 'id', algorithm: 'mod' } },
    });
    await gate.query('CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)');
    await gate.query('INSERT INTO accounts VALUES (1, 100), (2, 100)');
    // The fence table has no rule: it lives on the default shard, s0.
    const s0 = new pg.Client({ connectionString: clusters[0]!.url('app') });
    await s0.connect();
    await ensureBarrierTable(s0).finally(() => s0.end());

    inventoryPool = new pg.Pool({ connectionString: clusters[1]!.url('inventory'), max: 4 });
    const inv = await inventoryPool.connect();
    await ensureBarrierTable(inv).finally(() => inv.release());
    await inventoryPool.query("CREATE TABLE stock (sku text PRIMARY KEY, available int NOT NULL, reserved int NOT NULL, sold int NOT NULL); INSERT INTO stock VALUES ('apple', 5, 0, 0)");
    const started = await startInventory(inventoryPool);
    inventory = started.server;

    sagaPool = new pg.Pool({ connectionString: clusters[0]!.url('saga'), max: 6 });
    const sc = await sagaPool.connect();
    await ensureOutboxTables(sc).finally(() => sc.release());
    coordinator = new SagaCoordinator({ pool: sagaPool, id: 'pay', definitions: { payment: paymentSaga({ gate, inventoryUrl: started.url, topic }) }, pollIntervalMs: 5, onError: (e) => { throw e; } });
    await coordinator.ensureTables();
    coordinator.start();

    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [topic] });
  });

  afterAll(async () => {
    await coordinator?.close();
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc?.close();
    await new Promise<void>((resolve) => (inventory === undefined ? resolve() : inventory.close(() => resolve())));
    await inventoryPool?.end();
    await sagaPool?.end();
    await gate?.close();
    await Promise.all((clusters ?? []).map((c) => c.destroy()));
  });

  /** Account 1's balance, read on its shard (s1) directly. */
  const balance = async (id: number): Promise<number> => Number((await clusters[id % 2]!.query('SELECT balance FROM accounts WHERE id = $1', [id], 'app'))[0]!['balance']);
  const stock = async (): Promise<Record<string, unknown>> => (await inventoryPool.query("SELECT available, reserved, sold FROM stock WHERE sku = 'apple'")).rows[0]!;
  const outboxRows = async (gid: string): Promise<number> => (await sagaPool.query('SELECT 1 FROM shardgate_saga.outbox WHERE id = $1', [gid])).rowCount ?? 0;
  const relay = (): OutboxRelay => new OutboxRelay({ pool: sagaPool, sink: natsJetStreamSink(nc.jetstream()) });

  it('pays: the account is debited once, the stock reserved then sold, and the notification reaches JetStream with the gid as its id', async () => {
    const pay: Payment = { account: 1, amount: 30, sku: 'apple', qty: 2 };
    const gid = await coordinator.submit(sagaPool, 'payment', pay);
    const log = await coordinator.outcome(gid);
    expect(log.status).toBe('committed');
    expect(log.steps.map((s) => [s.name, s.stage, s.status])).toEqual([['debit', 0, 'done'], ['stock.try', 1, 'done'], ['stock.confirm', 2, 'done'], ['publish', 3, 'done']]);
    expect(await balance(1)).toBe(70);
    // The fence of the debit committed with it, on the other shard.
    expect(await clusters[0]!.query('SELECT op FROM shardgate_saga.barrier WHERE gid = $1', [gid], 'app')).toEqual([{ op: 'try' }]);
    expect(await stock()).toEqual({ available: 3, reserved: 0, sold: 2 });
    expect(await relay().runOnce()).toBe(1);
    const msg = await jsm.streams.getMessage(stream, { seq: 1 });
    expect(msg.header.get('Nats-Msg-Id')).toBe(gid);
    expect(msg.json()).toEqual({ gid, account: 1, amount: 30, sku: 'apple', qty: 2 });
  });

  it('out of stock: the refused try compensates the debit (refunded once), nothing is reserved or published', async () => {
    const gid = await coordinator.submit(sagaPool, 'payment', { account: 1, amount: 20, sku: 'apple', qty: 50 } satisfies Payment);
    const log = await coordinator.outcome(gid);
    expect(log.status).toBe('compensated');
    expect(log.lastError).toMatch(/^step stock\.try failed: HTTP 409 /);
    expect(log.steps.map((s) => [s.name, s.status])).toEqual([['debit', 'compensated'], ['stock.try', 'failed'], ['stock.confirm', 'skipped'], ['publish', 'skipped']]);
    expect(await balance(1)).toBe(70);
    expect(await stock()).toEqual({ available: 3, reserved: 0, sold: 2 });
    expect(await outboxRows(gid)).toBe(0);
    expect((await clusters[0]!.query('SELECT op, written_by FROM shardgate_saga.barrier WHERE gid = $1 ORDER BY op', [gid], 'app'))).toEqual([{ op: 'cancel', written_by: 'cancel' }, { op: 'try', written_by: 'try' }]);
  });

  it('insufficient funds: the debit refuses, the inventory is never called, nothing is published', async () => {
    const gid = await coordinator.submit(sagaPool, 'payment', { account: 1, amount: 1000, sku: 'apple', qty: 1 } satisfies Payment);
    const log = await coordinator.outcome(gid);
    expect(log.status).toBe('compensated');
    expect(log.lastError).toBe('step debit failed: account 1 cannot pay 1000');
    expect(await balance(1)).toBe(70);
    expect((await inventoryPool.query('SELECT 1 FROM shardgate_saga.barrier WHERE gid = $1', [gid])).rowCount).toBe(0);
    expect(await outboxRows(gid)).toBe(0);
    expect(await relay().runOnce()).toBe(0);
  });

  it('a repeated debit or refund is applied once, and a debit arriving after its refund does nothing', async () => {
    const ctx = (gid: string, phase: StepContext['phase']): StepContext => ({ gid, step: 'debit', phase, attempt: 1, payload: { account: 2, amount: 5, sku: 'apple', qty: 1 }, idempotencyKey: `${gid}:debit:${phase}` });
    expect(await debit(gate, ctx('dup-1', 'action'))).toEqual({ kind: 'success' });
    expect(await debit(gate, ctx('dup-1', 'action'))).toEqual({ kind: 'success' });
    expect(await balance(2)).toBe(95);
    await refund(gate, ctx('dup-1', 'compensation'));
    await refund(gate, ctx('dup-1', 'compensation'));
    expect(await balance(2)).toBe(100);
    // A refund first (the debit's outcome was unknown and it was still in flight): nothing to give back, and the late debit is fenced off.
    await refund(gate, ctx('late-1', 'compensation'));
    expect(await debit(gate, ctx('late-1', 'action'))).toEqual({ kind: 'success' });
    expect(await balance(2)).toBe(100);
  });
});
