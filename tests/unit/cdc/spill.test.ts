import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Assembler, type CdcEvent } from '../../../src/cdc/assembler.js';
import type { Lsn, PgTimestamp } from '../../../src/cdc/lsn.js';
import type { PgoutputMessage } from '../../../src/cdc/pgoutput-message.js';
import { SpillStore } from '../../../src/cdc/spill.js';

// The assembler over a store with a small memory limit and a real folder: files appear, hold the
// changes in order, and are gone once the event is acknowledged or the transaction rolled back.

const L = (n: number): Lsn => BigInt(n) as Lsn;
const T = 1000n as PgTimestamp;
const rel: PgoutputMessage = { kind: 'Relation', xid: null, relationOid: 1, namespace: 'public', name: 't', replicaIdentity: 'd',
  columns: [{ isKey: true, name: 'id', typeOid: 23, typeModifier: -1 }, { isKey: false, name: 'pad', typeOid: 25, typeModifier: -1 }] };
const decisionRel: PgoutputMessage = { kind: 'Relation', xid: null, relationOid: 2, namespace: 'shardgate', name: 'tx_decision', replicaIdentity: 'd',
  columns: ['gid', 'outcome', 'participants', 'created_at'].map((name, i) => ({ isKey: i === 0, name, typeOid: 25, typeModifier: -1 })) };
const text = (v: string) => ({ kind: 'text', value: v }) as const;
const PAD = 'x'.repeat(200);
const ins = (id: number, xid: number | null = null): PgoutputMessage => ({ kind: 'Insert', xid, relationOid: 1, newTuple: [text(String(id)), text(PAD)] });
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const ids = (e: CdcEvent): number[] => e.changes.map((c) => Number(c.new!.id));

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});
function newDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sg-spill-test-'));
  dirs.push(d);
  return d;
}

describe('spilling held changes', () => {
  it('empties the folder it is given, moves the largest transaction to a file past the limit, and reads it back in order', () => {
    const dir = newDir();
    writeFileSync(join(dir, 'part-1.spill'), 'left by a crashed process');
    const store = SpillStore.open(dir, 64 * 1024);
    expect(readdirSync(dir)).toEqual([]);
    const a = new Assembler(['s0'], new Map(), { store });
    a.push('s0', rel);
    a.push('s0', { kind: 'Begin', finalLsn: L(100), commitTime: T, xid: 5 });
    for (const id of range(0, 2000)) a.push('s0', ins(id));
    // 2000 changes of ~250 bytes are far past 64 kB: they are in one file, memory is under the limit.
    expect(readdirSync(dir)).toHaveLength(1);
    expect(store.memoryBytes).toBeLessThanOrEqual(64 * 1024);
    const [event] = a.push('s0', { kind: 'Commit', flags: 0, commitLsn: L(100), endLsn: L(101), commitTime: T });
    expect(event!.changeCount).toBe(2000);
    expect(ids(event!)).toEqual(range(0, 2000));
    // Emitted but not acknowledged: the file stays (the sink may need it again after a failed send).
    expect(ids(event!)).toEqual(range(0, 2000));
    expect(readdirSync(dir)).toHaveLength(1);
    a.acknowledge(event!);
    expect(readdirSync(dir)).toEqual([]);
    expect(store.memoryBytes).toBe(0);
  });

  it('keeps small transactions in memory and never writes a file under the limit', () => {
    const dir = newDir();
    const store = SpillStore.open(dir, 1024 * 1024);
    const a = new Assembler(['s0'], new Map(), { store });
    a.push('s0', rel);
    a.push('s0', { kind: 'Begin', finalLsn: L(100), commitTime: T, xid: 5 });
    for (const id of range(0, 10)) a.push('s0', ins(id));
    const [event] = a.push('s0', { kind: 'Commit', flags: 0, commitLsn: L(100), endLsn: L(101), commitTime: T });
    expect(store.spilledTotal).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    expect(ids(event!)).toEqual(range(0, 10));
  });

  it('drops a spilled prepared branch that is rolled back: no event, no file', () => {
    const dir = newDir();
    const store = SpillStore.open(dir, 16 * 1024);
    const a = new Assembler(['s1'], new Map(), { store });
    a.push('s1', rel);
    const gid = 'sg_gw1_s0_abc_s1';
    a.push('s1', { kind: 'BeginPrepare', prepareLsn: L(10), endLsn: L(11), prepareTime: T, xid: 9, gid });
    for (const id of range(0, 500)) a.push('s1', ins(id));
    a.push('s1', { kind: 'Prepare', flags: 0, prepareLsn: L(10), endLsn: L(11), prepareTime: T, xid: 9, gid });
    expect(readdirSync(dir)).toHaveLength(1);
    expect(a.push('s1', { kind: 'RollbackPrepared', flags: 0, prepareEndLsn: L(11), rollbackEndLsn: L(21), prepareTime: T, rollbackTime: T, xid: 9, gid })).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
    expect(store.memoryBytes).toBe(0);
  });

  it('spills a streamed transaction, skips a rolled-back subtransaction when reading it back, and drops an aborted one', () => {
    const dir = newDir();
    const store = SpillStore.open(dir, 16 * 1024);
    const a = new Assembler(['s0'], new Map(), { store });
    a.push('s0', rel);
    const block = (xid: number, messages: PgoutputMessage[]): void => {
      a.push('s0', { kind: 'StreamStart', xid, firstSegment: false });
      for (const m of messages) a.push('s0', m);
      a.push('s0', { kind: 'StreamStop' });
    };
    block(7, range(0, 300).map((id) => ins(id, 7)));
    block(7, range(300, 100).map((id) => ins(id, 8)));
    block(7, range(400, 100).map((id) => ins(id, 7)));
    block(70, range(1000, 300).map((id) => ins(id, 70)));
    expect(readdirSync(dir).length).toBeGreaterThanOrEqual(1);
    a.push('s0', { kind: 'StreamAbort', xid: 7, subXid: 8, abortLsn: null, abortTime: null });
    a.push('s0', { kind: 'StreamAbort', xid: 70, subXid: 70, abortLsn: null, abortTime: null });
    const [event] = a.push('s0', { kind: 'StreamCommit', xid: 7, flags: 0, commitLsn: L(300), endLsn: L(301), commitTime: T });
    expect(event!.changeCount).toBe(400);
    expect(ids(event!)).toEqual([...range(0, 300), ...range(400, 100)]);
    a.acknowledge(event!);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('emits a global transaction whose parts spilled on two shards as one event, anchor first', () => {
    const dir = newDir();
    const store = SpillStore.open(dir, 32 * 1024);
    const a = new Assembler(['s0', 's1'], new Map(), { store });
    for (const s of ['s0', 's1']) {
      a.push(s, rel);
      a.push(s, decisionRel);
    }
    const gid = 'sg_gw1_s0_abc';
    a.push('s1', { kind: 'BeginPrepare', prepareLsn: L(10), endLsn: L(11), prepareTime: T, xid: 9, gid: `${gid}_s1` });
    for (const id of range(5000, 1000)) a.push('s1', ins(id));
    a.push('s1', { kind: 'Prepare', flags: 0, prepareLsn: L(10), endLsn: L(11), prepareTime: T, xid: 9, gid: `${gid}_s1` });
    a.push('s0', { kind: 'Begin', finalLsn: L(100), commitTime: T, xid: 5 });
    for (const id of range(0, 1000)) a.push('s0', ins(id));
    a.push('s0', { kind: 'Insert', xid: null, relationOid: 2, newTuple: [text(gid), text('commit'), text('{s1}'), text('now')] });
    expect(a.push('s0', { kind: 'Commit', flags: 0, commitLsn: L(100), endLsn: L(101), commitTime: T })).toEqual([]);
    expect(readdirSync(dir)).toHaveLength(2);
    const [event] = a.push('s1', { kind: 'CommitPrepared', flags: 0, commitLsn: L(50), endLsn: L(51), commitTime: T, xid: 9, gid: `${gid}_s1` });
    expect(event!.id).toBe(gid);
    expect(ids(event!)).toEqual([...range(0, 1000), ...range(5000, 1000)]);
    a.acknowledge(event!);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps the exact row keys of large parts in keys files: two of them committed in opposite orders on two shards both come out, a common row still orders', () => {
    const G = 'sg_gw1_s0_gee';
    const H = 'sg_gw1_s0_aitch';
    // G writes 1000 rows on each shard, H 1000 others (or, `common`, one of G's on s0 among them); s0 commits G then H, s1 H then G.
    const run = (common: boolean): { order: string[]; keyFilesWhileHeld: number; afterEmit: string[] } => {
      const dir = newDir();
      const store = SpillStore.open(dir, 32 * 1024);
      const a = new Assembler(['s0', 's1'], new Map(), { store, rowKeysInMemory: 100 });
      for (const s of ['s0', 's1']) {
        a.push(s, rel);
        a.push(s, decisionRel);
      }
      const prepare = (at: number, gid: string, ids: number[]): void => {
        a.push('s1', { kind: 'BeginPrepare', prepareLsn: L(at), endLsn: L(at + 1), prepareTime: T, xid: at, gid: `${gid}_s1` });
        for (const id of ids) a.push('s1', ins(id));
        a.push('s1', { kind: 'Prepare', flags: 0, prepareLsn: L(at), endLsn: L(at + 1), prepareTime: T, xid: at, gid: `${gid}_s1` });
      };
      const anchor = (at: number, gid: string, ids: number[]): CdcEvent[] => {
        a.push('s0', { kind: 'Begin', finalLsn: L(at), commitTime: T, xid: at });
        for (const id of ids) a.push('s0', ins(id));
        a.push('s0', { kind: 'Insert', xid: null, relationOid: 2, newTuple: [text(gid), text('commit'), text('{s1}'), text('now')] });
        return a.push('s0', { kind: 'Commit', flags: 0, commitLsn: L(at), endLsn: L(at + 1), commitTime: T });
      };
      const commit = (at: number, gid: string): CdcEvent[] =>
        a.push('s1', { kind: 'CommitPrepared', flags: 0, commitLsn: L(at), endLsn: L(at + 1), commitTime: T, xid: at, gid: `${gid}_s1` });
      prepare(10, G, range(10_000, 1000));
      prepare(20, H, range(20_000, 1000));
      const events = [...anchor(100, G, range(0, 1000)), ...anchor(200, H, [...range(3000, 999), common ? 500 : 3999])];
      events.push(...commit(300, H));
      const keyFilesWhileHeld = readdirSync(dir).filter((f) => f.startsWith('keys-')).length;
      events.push(...commit(400, G));
      const afterEmit = readdirSync(dir).filter((f) => f.startsWith('keys-'));
      for (const e of events) {
        expect(e.changeCount).toBe(2000);
        a.acknowledge(e);
      }
      expect(readdirSync(dir)).toEqual([]);
      return { order: events.map((e) => e.id), keyFilesWhileHeld, afterEmit };
    };
    const apart = run(false);
    expect(apart.order).toEqual([H, G]);
    expect(apart.keyFilesWhileHeld).toBeGreaterThan(0);
    // The keys are read only by the ordering rule: gone once the parts are emitted.
    expect(apart.afterEmit).toEqual([]);
    // H wrote row 500 after G on s0: it follows G, although it completed first.
    expect(run(true).order).toEqual([G, H]);
  });

  it('reads back text of any characters exactly, records larger than a read chunk included', () => {
    const store = SpillStore.open(newDir(), 1024);
    const log = store.log();
    const texts = ['"é"', JSON.stringify('日本語'.repeat(30_000)), JSON.stringify('😀 \u0000 "q" \\'), '"a"'];
    texts.forEach((t, i) => log.append(i + 1, t));
    expect(log.spilled).toBe(true);
    log.abortSubtransaction(4);
    expect([...log.json()]).toEqual(texts.slice(0, 3));
    expect(log.count).toBe(3);
    log.release();
    expect(store.files).toBe(0);
  });
});
