import { describe, expect, it } from 'vitest';
import { ShardPool, type PoolMember } from '../../../src/backend/shard-pool.js';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { TxStatus } from '../../../src/protocol/fields.js';

/** A connection that records what the pool does to it. */
class FakeConn implements PoolMember {
  alive = true;
  busy = false;
  txStatus: TxStatus = 'I';
  closed = false;
  executed: string[] = [];
  rollbackFails = false;
  #onDeath: (() => void)[] = [];
  constructor(readonly id: number) {}
  async exec(sql: string): Promise<string> {
    this.executed.push(sql);
    if (this.rollbackFails) throw new Error('gone');
    this.txStatus = 'I';
    return sql;
  }
  async close(): Promise<void> {
    this.closed = true;
    this.alive = false;
  }
  onDeath(listener: () => void): void {
    this.#onDeath.push(listener);
  }
  die(): void {
    this.alive = false;
    for (const l of this.#onDeath) l();
  }
}

function pool(max: number, failCreate = false) {
  const made: FakeConn[] = [];
  const p = new ShardPool<FakeConn>({
    shard: shardName('s0'),
    max,
    create: async () => {
      if (failCreate) throw new Error('refused');
      const c = new FakeConn(made.length);
      made.push(c);
      return c;
    },
  });
  return { p, made };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof PgError ? err.code : `not a PgError: ${String(err)}`;
  }
  return 'resolved';
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ShardPool', () => {
  it('opens up to max connections, then reuses released ones', async () => {
    const { p, made } = pool(2);
    const a = await p.acquire(100);
    const b = await p.acquire(100);
    expect(made).toHaveLength(2);
    p.release(a);
    expect(await p.acquire(100)).toBe(a);
    expect(p.stats()).toEqual({ inUse: 2, idle: 0, waiting: 0 });
    p.release(b);
    expect(p.stats()).toEqual({ inUse: 1, idle: 1, waiting: 0 });
  });

  it('serves waiters first come, first served', async () => {
    const { p } = pool(1);
    const a = await p.acquire(100);
    const order: string[] = [];
    const w1 = p.acquire(1000).then((c) => (order.push('w1'), c));
    const w2 = p.acquire(1000).then((c) => (order.push('w2'), c));
    expect(p.stats().waiting).toBe(2);
    p.release(a);
    p.release(await w1);
    await w2;
    expect(order).toEqual(['w1', 'w2']);
  });

  it('fails a waiter with 40P01 after its timeout and forgets it', async () => {
    const { p } = pool(1);
    const a = await p.acquire(100);
    expect(await codeOf(p.acquire(10))).toBe('40P01');
    expect(p.stats().waiting).toBe(0);
    p.release(a);
    expect(p.stats()).toEqual({ inUse: 0, idle: 1, waiting: 0 });
  });

  it('closes a connection released as broken and opens a new one for a waiter', async () => {
    const { p, made } = pool(1);
    const a = await p.acquire(100);
    const waiting = p.acquire(1000);
    p.release(a, true);
    const b = await waiting;
    expect(a.closed).toBe(true);
    expect(b).not.toBe(a);
    expect(made).toHaveLength(2);
  });

  it('closes a connection released while still busy', async () => {
    const { p } = pool(1);
    const a = await p.acquire(100);
    a.busy = true;
    p.release(a);
    expect(a.closed).toBe(true);
    expect(p.stats()).toEqual({ inUse: 0, idle: 0, waiting: 0 });
  });

  it('rolls back a connection released inside a transaction before reuse', async () => {
    const { p } = pool(1);
    const a = await p.acquire(100);
    a.txStatus = 'E';
    p.release(a);
    const b = await p.acquire(1000);
    expect(b).toBe(a);
    expect(a.executed).toEqual(['ROLLBACK']);
    expect(b.txStatus).toBe('I');
  });

  it('destroys a connection whose rollback fails', async () => {
    const { p, made } = pool(1);
    const a = await p.acquire(100);
    a.txStatus = 'T';
    a.rollbackFails = true;
    p.release(a);
    const b = await p.acquire(1000);
    expect(b).not.toBe(a);
    expect(a.closed).toBe(true);
    expect(made).toHaveLength(2);
  });

  it('drops idle connections that died and replaces them on demand', async () => {
    const { p, made } = pool(2);
    const a = await p.acquire(100);
    p.release(a);
    a.die();
    expect(p.stats()).toEqual({ inUse: 0, idle: 0, waiting: 0 });
    const b = await p.acquire(100);
    expect(b).not.toBe(a);
    expect(made).toHaveLength(2);
  });

  it('skips an idle connection found dead at acquire', async () => {
    const { p } = pool(1);
    const a = await p.acquire(100);
    p.release(a);
    a.alive = false; // died without telling
    const b = await p.acquire(100);
    expect(b).not.toBe(a);
  });

  it('ignores a second release', async () => {
    const { p } = pool(2);
    const a = await p.acquire(100);
    p.release(a);
    p.release(a);
    expect(p.stats()).toEqual({ inUse: 0, idle: 1, waiting: 0 });
  });

  it('gives the slot back when opening fails', async () => {
    const { p } = pool(1, true);
    expect(await codeOf(p.acquire(100))).toBe('not a PgError: Error: refused');
    expect(p.stats()).toEqual({ inUse: 0, idle: 0, waiting: 0 });
  });

  it('closes everything and fails waiters and later acquires with 08006', async () => {
    const { p } = pool(1);
    const a = await p.acquire(100);
    const waiting = codeOf(p.acquire(5000));
    await tick();
    await p.close();
    expect(a.closed).toBe(true);
    expect(await waiting).toBe('08006');
    expect(await codeOf(p.acquire(100))).toBe('08006');
  });
});
