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
    expect(events).toEqual([{ id: 's0:0/64', kind: 'local', commitTime: 1000n, shards: ['s0'],
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
});
