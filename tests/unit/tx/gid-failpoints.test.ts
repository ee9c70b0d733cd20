import { describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Failpoints, findDeadlocks, parsePreparedGid } from '../../../src/tx/index.js';
import { gidFor, newTransactionId, preparedGid, quoteLiteral, textArray } from '../../../src/tx/gid.js';

describe('gid', () => {
  it('round-trips the anchor and shard through the prepared identifier', () => {
    const id = newTransactionId('A'.repeat(32));
    const gid = gidFor(id, shardName('B'.repeat(32)));
    const prepared = preparedGid(gid, shardName('s7'));
    expect(Buffer.byteLength(id)).toBeLessThanOrEqual(63);
    expect(Buffer.byteLength(prepared)).toBeLessThanOrEqual(200);
    expect(parsePreparedGid(prepared)).toEqual({ gid, coordinatorId: 'A'.repeat(32), anchor: 'B'.repeat(32), shard: 's7' });
  });

  it('never repeats an id', () => {
    const ids = new Set(Array.from({ length: 20_000 }, () => newTransactionId('gw1')));
    expect(ids.size).toBe(20_000);
  });

  it('rejects identifiers that are not ours', () => {
    for (const bad of ['sg_gw1_s0_abc', "sg_gw1_s0_abc_s1'", 'xx_gw1_s0_abc_s1', 'sg_g-w_s0_abc_s1', 'sg_gw1_s0_ABC_s1']) expect(parsePreparedGid(bad)).toBeNull();
  });

  it('escapes literals and arrays', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(textArray(['a', 'b"c'])).toBe('{"a","b\\"c"}');
  });
});

describe('Failpoints', () => {
  it('parses the environment syntax', () => {
    const fp = Failpoints.fromEnv({ SHARDGATE_FAILPOINTS: 'before-prepare=error@s1; after-decision=crash;before-decision=25%delay(10)' });
    expect(fp.rules).toEqual([
      { name: 'before-prepare', action: { kind: 'error' }, shard: 's1' },
      { name: 'after-decision', action: { kind: 'crash' } },
      { name: 'before-decision', action: { kind: 'delay', ms: 10 }, probability: 0.25 },
    ]);
    expect(Failpoints.fromEnv({}).active).toBe(false);
  });

  it('rejects unknown names and actions', () => {
    expect(() => Failpoints.parse('before-commit=error')).toThrow(/unknown failpoint/);
    expect(() => Failpoints.parse('before-prepare=explode')).toThrow(/bad failpoint/);
  });

  it('fires only on its shard, with SQLSTATE 08006', async () => {
    const fp = Failpoints.parse('after-prepare=error@s1');
    await expect(fp.hit('after-prepare', 's0')).resolves.toBeUndefined();
    const err = await fp.hit('after-prepare', 's1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).code).toBe('08006');
    await expect(Failpoints.parse('after-prepare=0%error').hit('after-prepare', 's1')).resolves.toBeUndefined();
  });
});

describe('findDeadlocks', () => {
  const [s0, s1, s2] = ['s0', 's1', 's2'].map(shardName) as [ReturnType<typeof shardName>, ReturnType<typeof shardName>, ReturnType<typeof shardName>];

  it('picks the youngest transaction of a cycle spanning two shards', () => {
    const cycles = findDeadlocks(
      [
        { waiter: 'sg_a_1', holder: 'sg_a_2', shard: s1 },
        { waiter: 'sg_a_2', holder: 'sg_a_1', shard: s0 },
      ],
      new Map([
        ['sg_a_1', 100],
        ['sg_a_2', 200],
      ]),
    );
    expect(cycles).toEqual([{ cycle: ['sg_a_1', 'sg_a_2'], shards: ['s0', 's1'], victim: 'sg_a_2', victimWaitsOn: ['s0'] }]);
  });

  it('finds a three-transaction cycle and ignores waits outside it', () => {
    const cycles = findDeadlocks(
      [
        { waiter: 'sg_a_1', holder: 'sg_a_2', shard: s0 },
        { waiter: 'sg_a_2', holder: 'sg_a_3', shard: s1 },
        { waiter: 'sg_a_3', holder: 'sg_a_1', shard: s2 },
        { waiter: 'sg_a_4', holder: 'sg_a_1', shard: s2 },
      ],
      new Map([
        ['sg_a_1', 300],
        ['sg_a_2', 100],
        ['sg_a_3', 200],
      ]),
    );
    expect(cycles.map((c) => [c.cycle, c.victim])).toEqual([[['sg_a_1', 'sg_a_2', 'sg_a_3'], 'sg_a_1']]);
  });

  it('counts a cycle whose two waits could be on different shards', () => {
    const edges = [
      { waiter: 'sg_a_1', holder: 'sg_a_2', shard: s0 },
      { waiter: 'sg_a_1', holder: 'sg_a_2', shard: s1 },
      { waiter: 'sg_a_2', holder: 'sg_a_1', shard: s0 },
    ];
    expect(findDeadlocks(edges, new Map())).toHaveLength(1);
    expect(findDeadlocks(edges.slice(0, 1).concat(edges.slice(2)), new Map())).toEqual([]);
  });

  it('breaks overlapping cycles with one victim when it sits in both', () => {
    const edges = [
      { waiter: 'sg_a_1', holder: 'sg_a_2', shard: s0 },
      { waiter: 'sg_a_2', holder: 'sg_a_1', shard: s1 },
      { waiter: 'sg_a_3', holder: 'sg_a_2', shard: s2 },
      { waiter: 'sg_a_2', holder: 'sg_a_3', shard: s0 },
    ];
    const cycles = findDeadlocks(edges, new Map([['sg_a_2', 999]]));
    expect(cycles.map((c) => c.victim)).toEqual(['sg_a_2']);
  });
});
