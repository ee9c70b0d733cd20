import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import { currentTransaction, peekTransaction, runInTransaction, runOutsideTransaction } from '../../../src/observe/tx-context.js';

interface FakeTx {
  readonly id: number;
  readonly rows: number[];
}

/** What a library query does: join the current transaction of its ShardGate instance, if any. */
function query(owner: object, value: number): FakeTx | undefined {
  const tx = currentTransaction<FakeTx>(owner);
  tx?.rows.push(value);
  return tx;
}

/** A helper deep in application code that only holds the instance. */
async function nestedHelper(owner: object, value: number): Promise<void> {
  await immediate();
  query(owner, value);
  await new Promise<void>((resolve) => setTimeout(resolve, value % 3));
  queueMicrotask(() => query(owner, value + 1));
  await Promise.resolve();
}

describe('transaction context', () => {
  it('keeps 1000 concurrent transactions on two instances apart through awaits, timers, Promise.all and savepoints', async () => {
    const gateA = {};
    const gateB = {};
    const tasks = Array.from({ length: 1000 }, async (_, i) => {
      const owner = i % 2 === 0 ? gateA : gateB;
      const other = owner === gateA ? gateB : gateA;
      const tx: FakeTx = { id: i, rows: [] };
      await sleep(i % 5);
      await runInTransaction(owner, tx, async () => {
        expect(currentTransaction<FakeTx>(owner)).toBe(tx);
        expect(currentTransaction(other)).toBeUndefined();
        await Promise.all([nestedHelper(owner, i * 10), nestedHelper(owner, i * 10 + 5)]);
        const savepoint: FakeTx = { id: -i, rows: [] };
        await runInTransaction(owner, savepoint, async () => {
          await sleep(1);
          expect(query(owner, -1)).toBe(savepoint);
        });
        expect(savepoint.rows).toEqual([-1]);
        await sleep(0);
        expect(query(owner, i * 10 + 9)).toBe(tx);
      });
      return tx;
    });
    const done = await Promise.all(tasks);
    for (const tx of done) {
      const i = tx.id;
      expect([...tx.rows].sort((a, b) => a - b)).toEqual([i * 10, i * 10 + 1, i * 10 + 5, i * 10 + 6, i * 10 + 9]);
    }
    expect(currentTransaction(gateA)).toBeUndefined();
  });

  it('lets one instance\'s transaction run inside another\'s without hiding it', async () => {
    const a = {};
    const b = {};
    await runInTransaction(a, 'txA', async () => {
      await runInTransaction(b, 'txB', async () => {
        await sleep(1);
        expect(currentTransaction(a)).toBe('txA');
        expect(currentTransaction(b)).toBe('txB');
      });
      expect(currentTransaction(b)).toBeUndefined();
      expect(currentTransaction(a)).toBe('txA');
    });
  });

  it('fails a query that escaped its transaction and runs after it ended (25000), never autocommitting it', async () => {
    const gate = {};
    let escaped!: Promise<unknown>;
    await runInTransaction(gate, { id: 1 }, async () => {
      escaped = sleep(5).then(() => query(gate, 1));
    });
    const err = await escaped.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).code).toBe('25000');
    expect(peekTransaction(gate)).toBeUndefined();
  });

  it('ends the scope when the callback throws or returns synchronously', async () => {
    const gate = {};
    const seen: unknown[] = [];
    expect(() =>
      runInTransaction(gate, 'thrown', () => {
        setTimeout(() => seen.push(peekTransaction(gate)), 0);
        throw new Error('x');
      }),
    ).toThrow('x');
    runInTransaction(gate, 'returned', () => {
      expect(peekTransaction(gate)).toEqual({ tx: 'returned', ended: false });
      setTimeout(() => seen.push(peekTransaction(gate)), 0);
    });
    await sleep(10);
    expect(seen).toEqual([
      { tx: 'thrown', ended: true },
      { tx: 'returned', ended: true },
    ]);
  });

  it('runs work outside the current transaction of one instance only', async () => {
    const a = {};
    const b = {};
    await runInTransaction(a, 'txA', () =>
      runInTransaction(b, 'txB', async () => {
        await runOutsideTransaction(a, async () => {
          await sleep(1);
          expect(currentTransaction(a)).toBeUndefined();
          expect(currentTransaction(b)).toBe('txB');
        });
        expect(currentTransaction(a)).toBe('txA');
      }),
    );
  });
});
