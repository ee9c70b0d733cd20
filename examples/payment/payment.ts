/**
 * A payment across three services, as one saga from the ShardGate saga log:
 *
 * 1. debit the customer's account through ShardGate (a local step whose
 *    ShardGate transaction holds the debit and its barrier fence);
 * 2. reserve the stock at the inventory service by TCC over HTTP (try, then
 *    confirm; cancelled when a later refusal compensates);
 * 3. notify the customer through the transactional outbox (the relay
 *    publishes to NATS JetStream).
 *
 * A refusal anywhere (insufficient funds, out of stock) compensates what ran
 * before it, in reverse order. See README.md in this folder.
 */
import type { ShardGate } from '../../src/library/shard-gate.js';
import type { StepResult } from '../../src/saga/retry-policy.js';
import { barrier } from '../../src/saga/barrier.js';
import type { SagaDefinition, StepContext } from '../../src/saga/saga-definition.js';
import { outboxSaga, tccSaga } from '../../src/saga/transaction-class.js';

/** What a payment is asked to do. */
export interface Payment {
  readonly account: number;
  readonly amount: number;
  readonly sku: string;
  readonly qty: number;
}

/** Where the services are. */
export interface PaymentServices {
  /** ShardGate over the shards holding `accounts`; the barrier fences live on its default shard. */
  readonly gate: ShardGate;
  /** The inventory service's base URL (its /try, /confirm, /cancel). */
  readonly inventoryUrl: string;
  /** The JetStream subject notifications are published on. */
  readonly topic: string;
}

class Refused extends Error {}

/**
 * Debits the account once per gid. The fence (`barrier`, op `try`) and the
 * debit are in one ShardGate transaction — a two-phase commit when the fence
 * and the account are on different shards — so the fence exists exactly when
 * the debit was applied, and a repeated delivery (a coordinator that died
 * before recording the step) does nothing. Insufficient funds is a FAILURE:
 * the transaction rolls back, fence included.
 */
export async function debit(gate: ShardGate, ctx: StepContext): Promise<StepResult> {
  const p = ctx.payload as Payment;
  try {
    await gate.transaction((tx) =>
      barrier(tx, ctx.gid, 'account', 'try', async () => {
        const res = await tx.query('UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2', [p.account, p.amount]);
        if (res.rowCount !== 1) throw new Refused(`account ${p.account} cannot pay ${p.amount}`);
      }),
    );
    return { kind: 'success' };
  } catch (err) {
    if (err instanceof Refused) return { kind: 'failure', reason: err.message };
    throw err;
  }
}

/**
 * Gives the debit back once per gid (op `cancel` of the same barrier branch).
 * Safe when the debit never applied: the barrier's empty cancel skips the
 * refund and leaves the fence that makes a late debit do nothing.
 */
export async function refund(gate: ShardGate, ctx: StepContext): Promise<void> {
  const p = ctx.payload as Payment;
  await gate.transaction((tx) =>
    barrier(tx, ctx.gid, 'account', 'cancel', async () => {
      await tx.query('UPDATE accounts SET balance = balance + $2 WHERE id = $1', [p.account, p.amount]);
    }),
  );
}

/** The payment saga: debit (stage 0), stock try (1), stock confirm (2), notification (3). */
export function paymentSaga(s: PaymentServices): SagaDefinition {
  const http = (path: string) => ({ kind: 'http' as const, url: `${s.inventoryUrl}/${path}` });
  const stock = tccSaga({ branches: [{ name: 'stock', try: http('try'), confirm: http('confirm'), cancel: http('cancel') }] });
  const notify = outboxSaga({
    topic: s.topic,
    message: (ctx) => {
      const p = ctx.payload as Payment;
      return { gid: ctx.gid, account: p.account, amount: p.amount, sku: p.sku, qty: p.qty };
    },
  });
  return {
    steps: [
      { name: 'debit', action: { kind: 'local', run: (_tx, ctx) => debit(s.gate, ctx) }, compensation: { kind: 'local', run: (_tx, ctx) => refund(s.gate, ctx) } },
      ...stock.steps,
      ...notify.steps,
    ],
    retry: { baseMs: 10, maxMs: 200, maxAttempts: 5, deadlineMs: 60_000 },
  };
}
