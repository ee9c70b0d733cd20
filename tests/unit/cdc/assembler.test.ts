import { describe, expect, it } from 'vitest';
import { Assembler, type CdcEvent } from '../../../src/cdc/assembler.js';
import type { Lsn, PgTimestamp } from '../../../src/cdc/lsn.js';
import type { PgoutputMessage } from '../../../src/cdc/pgoutput-message.js';

const L = (n: number): Lsn => BigInt(n) as Lsn;
const T = 1000n as PgTimestamp;
const ACCOUNTS = 1;
const DECISION = 2;

const relations: PgoutputMessage[] = [
  { kind: 'Relation', xid: null, relationOid: ACCOUNTS, namespace: 'public', name: 'accounts', replicaIdentity: 'd',
    columns: [{ isKey: true, name: 'id', typeOid: 23, typeModifier: -1 }, { isKey: false, name: 'balance', typeOid: 23, typeModifier: -1 }] },
  { kind: 'Relation', xid: null, relationOid: DECISION, namespace: 'shardgate', name: 'tx_decision', replicaIdentity: 'd',
    columns: ['gid', 'outcome', 'participants', 'created_at'].map((name, i) => ({ isKey: i === 0, name, typeOid: 25, typeModifier: -1 })) },
];
const text = (v: string) => ({ kind: 'text', value: v }) as const;
const upd = (id: number, balance: number): PgoutputMessage =>
  ({ kind: 'Update', xid: null, relationOid: ACCOUNTS, key: null, old: null, newTuple: [text(String(id)), text(String(balance))] });
const decision = (gid: string, participants: string[]): PgoutputMessage =>
  ({ kind: 'Insert', xid: null, relationOid: DECISION, newTuple: [text(gid), text('commit'), text(`{${participants.join(',')}}`), text('now')] });
const local = (at: number, ...changes: PgoutputMessage[]): PgoutputMessage[] => [
  { kind: 'Begin', finalLsn: L(at), commitTime: T, xid: at },
  ...changes,
  { kind: 'Commit', flags: 0, commitLsn: L(at), endLsn: L(at + 1), commitTime: T },
];
const prepare = (at: number, gid: string, ...changes: PgoutputMessage[]): PgoutputMessage[] => [
  { kind: 'BeginPrepare', prepareLsn: L(at), endLsn: L(at + 1), prepareTime: T, xid: at, gid },
  ...changes,
  { kind: 'Prepare', flags: 0, prepareLsn: L(at), endLsn: L(at + 1), prepareTime: T, xid: at, gid },
];
const commitPrepared = (at: number, gid: string): PgoutputMessage => ({ kind: 'CommitPrepared', flags: 0, commitLsn: L(at), endLsn: L(at + 1), commitTime: T, xid: 0, gid });

function feed(a: Assembler, shard: string, messages: readonly PgoutputMessage[]): CdcEvent[] {
  return messages.flatMap((m) => a.push(shard, m));
}

const GID = 'sg_gw1_s0_abc';

describe('Assembler', () => {
  it('passes a single-shard transaction through as one event, without shardgate.* changes', () => {
    const a = new Assembler(['s0', 's1']);
    feed(a, 's0', relations);
    const events = feed(a, 's0', local(100, upd(1, 5), upd(2, -5)));
    expect(events.map((e) => ({ id: e.id, kind: e.kind, commitTime: e.commitTime, shards: e.shards, changes: e.changes }))).toEqual([{ id: 's0:0/64', kind: 'local', commitTime: 1000n, shards: ['s0'],
      changes: [{ table: 'public.accounts', op: 'update', old: null, new: { id: '1', balance: '5' } },
        { table: 'public.accounts', op: 'update', old: null, new: { id: '2', balance: '-5' } }] }]);
    // A transaction touching only shardgate.* tables emits nothing.
    expect(feed(a, 's0', local(200, decision('sg_gw1_s0_zzz', [])))).toEqual([]);
  });

  it('holds a two-phase transaction until the anchor decided and every branch committed, then emits it once, whole', () => {
    const a = new Assembler(['s0', 's1', 's2']);
    for (const s of ['s0', 's1', 's2']) feed(a, s, relations);
    expect(feed(a, 's1', [...prepare(10, `${GID}_s1`, upd(11, 3)), commitPrepared(50, `${GID}_s1`)])).toEqual([]);
    expect(feed(a, 's0', local(100, upd(1, -6), decision(GID, ['s1', 's2'])))).toEqual([]);
    expect(a.held).toBe(1);
    // s2 prepared but not committed yet: still held; its slot may not pass the PREPARE.
    expect(feed(a, 's2', prepare(20, `${GID}_s2`, upd(21, 3)))).toEqual([]);
    expect(a.confirmable('s2')).toBe(L(20));
    expect(a.confirmable('s1')).toBe(L(10));
    const [event, ...rest] = feed(a, 's2', [commitPrepared(60, `${GID}_s2`)]);
    expect(rest).toEqual([]);
    expect(event!.id).toBe(GID);
    expect(event!.shards).toEqual(['s0', 's1', 's2']);
    expect(event!.changes.map((c) => c.new?.id)).toEqual(['1', '11', '21']);
    // Emitted but not acknowledged: the positions still wait.
    expect(a.confirmable('s1')).toBe(L(10));
    a.acknowledge(event!);
    expect([a.confirmable('s0'), a.confirmable('s1'), a.confirmable('s2')]).toEqual([L(101), L(51), L(61)]);
    expect(a.held).toBe(0);
  });

  it('counts the parts waiting on each shard and names the shards whose streams a held transaction waits for', () => {
    const a = new Assembler(['s0', 's1', 's2']);
    for (const s of ['s0', 's1', 's2']) feed(a, s, relations);
    // s0's anchor waits for s1's branch; the locals behind it on s0 wait too (they may not pass it).
    feed(a, 's0', local(100, upd(1, -6), decision(GID, ['s1'])));
    feed(a, 's0', local(200, upd(1, 7)));
    expect(a.waitingParts('s0')).toBe(2);
    expect(['s0', 's1', 's2'].map((s) => a.awaited(s))).toEqual([false, true, false]);
    // Prepared is not committed: s1 is still awaited until its Commit Prepared.
    feed(a, 's1', prepare(10, `${GID}_s1`, upd(11, 6)));
    expect(a.awaited('s1')).toBe(true);
    const events = feed(a, 's1', [commitPrepared(50, `${GID}_s1`)]);
    expect(events.map((e) => e.id)).toEqual([GID, 's0:0/C8']);
    expect(['s0', 's1', 's2'].map((s) => [a.waitingParts(s), a.awaited(s)])).toEqual([[0, false], [0, false], [0, false]]);
    // A branch read before its anchor: the anchor's shard (named in the gid) is awaited.
    const other = 'sg_gw1_s2_def';
    feed(a, 's1', [...prepare(60, `${other}_s1`, upd(12, 1)), commitPrepared(70, `${other}_s1`)]);
    expect(['s0', 's1', 's2'].map((s) => a.awaited(s))).toEqual([false, false, true]);
    expect(feed(a, 's2', local(300, upd(2, -1), decision(other, ['s1']))).map((e) => e.id)).toEqual([other]);
    expect(a.awaited('s2')).toBe(false);
  });

  it('never emits a rolled-back prepared branch', () => {
    const a = new Assembler(['s0', 's1']);
    feed(a, 's1', relations);
    const events = feed(a, 's1', [...prepare(10, `${GID}_s1`, upd(11, 3)), { kind: 'RollbackPrepared', flags: 0, prepareEndLsn: L(11), rollbackEndLsn: L(31), prepareTime: T, rollbackTime: T, xid: 10, gid: `${GID}_s1` }]);
    expect(events).toEqual([]);
    expect(a.held).toBe(0);
    expect(a.confirmable('s1')).toBe(L(31));
  });

  it('keeps a shard\'s commit order: a later transaction on a held anchor\'s shard waits behind it', () => {
    const a = new Assembler(['s0', 's1']);
    for (const s of ['s0', 's1']) feed(a, s, relations);
    expect(feed(a, 's0', [...local(100, upd(1, -6), decision(GID, ['s1'])), ...local(200, upd(1, 4))])).toEqual([]);
    const events = feed(a, 's1', [...prepare(10, `${GID}_s1`, upd(11, 6)), commitPrepared(50, `${GID}_s1`)]);
    expect(events.map((e) => e.id)).toEqual([GID, 's0:0/C8']);
  });

  it('lets a complete global transaction pass an unrelated held one, never one that wrote the same row', () => {
    const a = new Assembler(['s0', 's1']);
    for (const s of ['s0', 's1']) feed(a, s, relations);
    const G1 = 'sg_gw1_s0_one';
    const G2 = 'sg_gw1_s0_two';
    // s0: G1's anchor, then G2's; G2's branch commits on s1 first and writes another row than G1's.
    feed(a, 's0', [...local(100, upd(1, 1), decision(G1, ['s1'])), ...local(200, upd(2, 2), decision(G2, ['s1']))]);
    const first = feed(a, 's1', [...prepare(10, `${G2}_s1`, upd(12, 2)), commitPrepared(50, `${G2}_s1`)]);
    expect(first.map((e) => e.id)).toEqual([G2]);
    const rest = feed(a, 's1', [...prepare(20, `${G1}_s1`, upd(11, 1)), commitPrepared(60, `${G1}_s1`)]);
    expect(rest.map((e) => e.id)).toEqual([G1]);

    // Same rows on s0: G4 must follow G3 there even though G4 completes first.
    const b = new Assembler(['s0', 's1']);
    for (const s of ['s0', 's1']) feed(b, s, relations);
    const G3 = 'sg_gw1_s0_three';
    const G4 = 'sg_gw1_s0_four';
    feed(b, 's0', [...local(100, upd(1, 1), decision(G3, ['s1'])), ...local(200, upd(1, 2), decision(G4, ['s1']))]);
    expect(feed(b, 's1', [...prepare(10, `${G4}_s1`, upd(12, 2)), commitPrepared(50, `${G4}_s1`)])).toEqual([]);
    expect(feed(b, 's1', [...prepare(20, `${G3}_s1`, upd(11, 1)), commitPrepared(60, `${G3}_s1`)]).map((e) => e.id)).toEqual([G3, G4]);
  });

  it('orders a part of more than 4096 rows by its exact rows: a later one on another row may pass it, one on a common row may not', () => {
    const run = (rows: number, other: number): string[] => {
      const a = new Assembler(['s0', 's1']);
      for (const s of ['s0', 's1']) feed(a, s, relations);
      const G1 = 'sg_gw1_s0_one';
      const G2 = 'sg_gw1_s0_two';
      // G1's anchor writes rows 1..rows; G2's writes row `other`.
      const many = Array.from({ length: rows }, (_, i) => upd(i + 1, 1));
      feed(a, 's0', [...local(100, ...many, decision(G1, ['s1'])), ...local(200, upd(other, 2), decision(G2, ['s1']))]);
      const first = feed(a, 's1', [...prepare(10, `${G2}_s1`, upd(12, 2)), commitPrepared(50, `${G2}_s1`)]);
      const rest = feed(a, 's1', [...prepare(20, `${G1}_s1`, upd(11, 1)), commitPrepared(60, `${G1}_s1`)]);
      return [...first, ...rest].map((e) => e.id);
    };
    // G2 shares no row with G1: it may pass it, whatever G1's size. A common row: it may not.
    expect(run(4096, 999_999)).toEqual(['sg_gw1_s0_two', 'sg_gw1_s0_one']);
    expect(run(5000, 999_999)).toEqual(['sg_gw1_s0_two', 'sg_gw1_s0_one']);
    expect(run(5000, 4321)).toEqual(['sg_gw1_s0_one', 'sg_gw1_s0_two']);
    expect(run(5000, 5000)).toEqual(['sg_gw1_s0_one', 'sg_gw1_s0_two']);
  });

  it('two large global transactions committed in opposite orders on two shards, on different rows of one table, are both emitted (no false conflict)', () => {
    const a = new Assembler(['s0', 's1']);
    for (const s of ['s0', 's1']) feed(a, s, relations);
    const G = 'sg_gw1_s0_big';
    const H = 'sg_gw1_s0_small';
    // G writes 5000 rows on each shard, H one other row of the same table on each.
    const many = (from: number): PgoutputMessage[] => Array.from({ length: 5000 }, (_, i) => upd(from + i, 1));
    feed(a, 's1', [...prepare(10, `${G}_s1`, ...many(100_001)), ...prepare(20, `${H}_s1`, upd(200_000, 2))]);
    // s0 commits G then H; s1 commits H then G.
    expect(feed(a, 's0', [...local(100, ...many(1), decision(G, ['s1'])), ...local(200, upd(99_999, 2), decision(H, ['s1']))])).toEqual([]);
    const events = feed(a, 's1', [commitPrepared(300, `${H}_s1`), commitPrepared(400, `${G}_s1`)]);
    expect(events.map((e) => [e.id, e.changeCount])).toEqual([[H, 2], [G, 10_000]]);
    expect(a.held).toBe(0);
    expect([a.waitingParts('s0'), a.waitingParts('s1')]).toEqual([0, 0]);
    // Nothing stalls behind them.
    expect(feed(a, 's0', local(500, upd(1, 3))).map((e) => e.id)).toEqual(['s0:0/1F4']);
  });

  it('a table without a replica identity: inserts into it order only against a truncate of it (its table lock), not against each other', () => {
    const KEYLESS = 3;
    const keyless: PgoutputMessage = { kind: 'Relation', xid: null, relationOid: KEYLESS, namespace: 'public', name: 'log', replicaIdentity: 'n',
      columns: [{ isKey: false, name: 'line', typeOid: 25, typeModifier: -1 }] };
    const line = (v: string): PgoutputMessage => ({ kind: 'Insert', xid: null, relationOid: KEYLESS, newTuple: [text(v)] });
    const truncate: PgoutputMessage = { kind: 'Truncate', xid: null, options: 0, relationOids: [KEYLESS] };
    const run = (second: PgoutputMessage): string[] => {
      const a = new Assembler(['s0', 's1']);
      for (const s of ['s0', 's1']) feed(a, s, [...relations, keyless]);
      const G = 'sg_gw1_s0_gee';
      const H = 'sg_gw1_s0_aitch';
      feed(a, 's1', [...prepare(10, `${G}_s1`, line('g1')), ...prepare(20, `${H}_s1`, line('h1'))]);
      // s0 commits G then H; s1 commits H then G.
      feed(a, 's0', [...local(100, line('g0'), decision(G, ['s1'])), ...local(200, second, decision(H, ['s1']))]);
      return feed(a, 's1', [commitPrepared(300, `${H}_s1`), commitPrepared(400, `${G}_s1`)]).map((e) => e.id);
    };
    // Two new rows: no common row, H may pass G on s0. A truncate after G's insert waited for G's lock: it follows G.
    expect(run(line('h0'))).toEqual(['sg_gw1_s0_aitch', 'sg_gw1_s0_gee']);
    expect(run(truncate)).toEqual(['sg_gw1_s0_gee', 'sg_gw1_s0_aitch']);
  });

  it('the rows of a rolled-back subtransaction of a streamed part do not order it (their locks were released)', () => {
    const run = (abortSub: boolean): string[] => {
      const a = new Assembler(['s0', 's1'], new Map(), { rowKeysInMemory: 2 });
      for (const s of ['s0', 's1']) feed(a, s, relations);
      const G1 = 'sg_gw1_s0_one';
      const G2 = 'sg_gw1_s0_two';
      // G1's anchor is streamed: rows 1..3 by xid 7, row 9 by its subtransaction 8.
      feed(a, 's0', [
        { kind: 'StreamStart', xid: 7, firstSegment: true },
        ...[1, 2, 3].map((id) => ({ ...upd(id, 1), xid: 7 }) as PgoutputMessage),
        { ...upd(9, 1), xid: 8 } as PgoutputMessage,
        { ...decision(G1, ['s1']), xid: 7 } as PgoutputMessage,
        { kind: 'StreamStop' },
        ...(abortSub ? [{ kind: 'StreamAbort', xid: 7, subXid: 8, abortLsn: null, abortTime: null } as PgoutputMessage] : []),
        { kind: 'StreamCommit', xid: 7, flags: 0, commitLsn: L(100), endLsn: L(101), commitTime: T },
        ...local(200, upd(9, 2), decision(G2, ['s1'])),
      ]);
      const first = feed(a, 's1', [...prepare(10, `${G2}_s1`, upd(12, 2)), commitPrepared(50, `${G2}_s1`)]);
      const rest = feed(a, 's1', [...prepare(20, `${G1}_s1`, upd(11, 1)), commitPrepared(60, `${G1}_s1`)]);
      return [...first, ...rest].map((e) => e.id);
    };
    expect(run(false)).toEqual(['sg_gw1_s0_one', 'sg_gw1_s0_two']);
    expect(run(true)).toEqual(['sg_gw1_s0_two', 'sg_gw1_s0_one']);
  });

  it('keys an update by its new row completed with the old row\'s unchanged TOASTed columns (REPLICA IDENTITY FULL)', () => {
    const FULL = 4;
    const full: PgoutputMessage = { kind: 'Relation', xid: null, relationOid: FULL, namespace: 'public', name: 'doc', replicaIdentity: 'f',
      columns: ['id', 'body'].map((name) => ({ isKey: true, name, typeOid: 25, typeModifier: -1 })) };
    const set = (id: string, from: string, to: string | null): PgoutputMessage =>
      ({ kind: 'Update', xid: null, relationOid: FULL, key: null, old: [text(id), text(from)], newTuple: [text(`${id}'`), to === null ? { kind: 'unchanged' } : text(to)] });
    const run = (second: PgoutputMessage): string[] => {
      const a = new Assembler(['s0', 's1']);
      for (const s of ['s0', 's1']) feed(a, s, [...relations, full]);
      const G1 = 'sg_gw1_s0_one';
      const G2 = 'sg_gw1_s0_two';
      // G1 renames doc a to a' keeping its (TOASTed, unchanged) body; G2 then writes a row of its own, or a' itself.
      feed(a, 's0', [...local(100, set('a', 'long', null), decision(G1, ['s1'])), ...local(200, second, decision(G2, ['s1']))]);
      const first = feed(a, 's1', [...prepare(10, `${G2}_s1`, upd(12, 2)), commitPrepared(50, `${G2}_s1`)]);
      const rest = feed(a, 's1', [...prepare(20, `${G1}_s1`, upd(11, 1)), commitPrepared(60, `${G1}_s1`)]);
      return [...first, ...rest].map((e) => e.id);
    };
    expect(run(set('b', 'other', 'new'))).toEqual(['sg_gw1_s0_two', 'sg_gw1_s0_one']);
    expect(run({ kind: 'Delete', xid: null, relationOid: FULL, key: null, old: [text("a'"), text('long')] })).toEqual(['sg_gw1_s0_one', 'sg_gw1_s0_two']);
  });

  it('assembles a streamed transaction and drops an aborted subtransaction\'s changes', () => {
    const a = new Assembler(['s0']);
    feed(a, 's0', relations);
    const events = feed(a, 's0', [
      { kind: 'StreamStart', xid: 7, firstSegment: true },
      { ...upd(1, 1), xid: 7 } as PgoutputMessage,
      { ...upd(2, 2), xid: 8 } as PgoutputMessage,
      { kind: 'StreamStop' },
      { kind: 'StreamAbort', xid: 7, subXid: 8, abortLsn: null, abortTime: null },
      { kind: 'StreamCommit', xid: 7, flags: 0, commitLsn: L(300), endLsn: L(301), commitTime: T },
    ]);
    expect(events.map((e) => e.changes.map((c) => c.new?.id))).toEqual([['1']]);
  });

  it('reads and never emits the transactions a starting copy already holds (skip by xid), global ones whole', () => {
    const inCopy = new Set([100, 10]);
    const a = new Assembler(['s0', 's1'], new Map(), { skip: (_shard, xid) => inCopy.has(xid) });
    for (const s of ['s0', 's1']) feed(a, s, relations);
    // A global transaction in the copy: anchor (xid 100) on s0, branch (xid 10) on s1.
    expect(feed(a, 's0', local(100, upd(1, -6), decision(GID, ['s1'])))).toEqual([]);
    expect(feed(a, 's1', [...prepare(10, `${GID}_s1`, upd(11, 6)), commitPrepared(50, `${GID}_s1`)])).toEqual([]);
    expect(a.held).toBe(0);
    expect([a.confirmable('s0'), a.confirmable('s1')]).toEqual([L(101), L(51)]);
    // The next transaction is not in the copy.
    expect(feed(a, 's0', local(200, upd(1, 4))).map((e) => e.id)).toEqual(['s0:0/C8']);
  });

  describe('settleRestart', () => {
    const G1 = 'sg_gw1_s0_one';
    const G2 = 'sg_gw1_s0_two';
    const before = new Map([['s0', L(1000)], ['s1', L(1000)]]);
    const readPast = new Map([['s0', L(1100)], ['s1', L(1100)]]);
    const restarted = (): Assembler => {
      const a = new Assembler(['s0', 's1']);
      for (const s of ['s0', 's1']) feed(a, s, relations);
      return a;
    };

    it('drops a global transaction whose other shard was confirmed past its part, and unblocks what waited behind it', () => {
      const a = restarted();
      // s0 replays G1's anchor and a later local writing the same row; s1 was confirmed past G1's branch.
      expect(feed(a, 's0', [...local(100, upd(1, -6), decision(G1, ['s1'])), ...local(200, upd(1, 4))])).toEqual([]);
      a.idle('s1', L(1200));
      a.idle('s0', L(1200));
      const { dropped, events } = a.settleRestart(before, readPast);
      expect(dropped).toBe(1);
      expect(events.map((e) => e.id)).toEqual(['s0:0/C8']);
      expect(a.held).toBe(0);
    });

    it('drops a replayed branch whose anchor lies before the anchor shard\'s restart point', () => {
      const a = restarted();
      expect(feed(a, 's1', [...prepare(10, `${G1}_s1`, upd(11, 6)), commitPrepared(50, `${G1}_s1`)])).toEqual([]);
      a.idle('s0', L(1200));
      expect(a.settleRestart(before, readPast).dropped).toBe(1);
    });

    it('keeps a whole transaction that only waits behind earlier parts, one still prepared, and one newer than the restart', () => {
      const a = restarted();
      // G2 is whole but waits on s0 behind the orphan G1 (same row): it is emitted once G1 is dropped.
      feed(a, 's0', [...local(100, upd(1, 1), decision(G1, ['s1'])), ...local(200, upd(1, 2), decision(G2, ['s1']))]);
      feed(a, 's1', [...prepare(300, `${G2}_s1`, upd(12, 2)), commitPrepared(400, `${G2}_s1`)]);
      // G3: anchor read, its branch prepared and not committed yet (its coordinator is between the phases).
      const G3 = 'sg_gw1_s0_three';
      feed(a, 's1', prepare(500, `${G3}_s1`, upd(13, 3)));
      feed(a, 's0', local(600, upd(3, -3), decision(G3, ['s1'])));
      // G4: committed after the restart began; its branch simply has not arrived yet.
      const G4 = 'sg_gw1_s0_four';
      feed(a, 's0', local(1050, upd(4, -4), decision(G4, ['s1'])));
      a.idle('s1', L(1200));
      const { dropped, events } = a.settleRestart(before, readPast);
      expect(dropped).toBe(1);
      expect(events.map((e) => e.id)).toEqual([G2]);
      expect(a.held).toBe(2);
      expect(feed(a, 's1', [commitPrepared(1300, `${G3}_s1`), ...prepare(1400, `${G4}_s1`, upd(14, 4)), commitPrepared(1500, `${G4}_s1`)]).map((e) => e.id)).toEqual([G3, G4]);
    });

    it('waits while a shard has not been read up to its position after the restart', () => {
      const a = restarted();
      feed(a, 's0', local(100, upd(1, -6), decision(G1, ['s1'])));
      // s1 has only been read to 1050 < 1100: G1's branch may still come.
      a.idle('s1', L(1050));
      expect(a.settleRestart(before, readPast).dropped).toBe(0);
    });
  });
});
