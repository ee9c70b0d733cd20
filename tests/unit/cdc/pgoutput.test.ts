import { describe, expect, it } from 'vitest';
import { decodePgoutput, decodeReplicationMessage, encodeStandbyStatusUpdate, PgoutputDecoder, type Lsn, type PgTimestamp } from '../../../src/cdc/index.js';
import { ch, i16, i32, i64, msg, str, u8 } from './bytes.js';

const L = (v: bigint): Lsn => v as Lsn;
const TS = (v: bigint): PgTimestamp => v as PgTimestamp;
const text = (value: string) => ({ kind: 'text', value }) as const;

// Transaction of protocol version 3, two_phase: what PREPARE TRANSACTION 'sg_c1_s0_abc_s1' then COMMIT PREPARED sends.
const GID = 'sg_c1_s0_abc_s1';
const twoPhase = [
  msg(ch('b'), i64(0, 0x100), i64(0, 0x180), i64(0, 5), i32(740), str(GID)),
  msg(ch('R'), i32(16384), str('public'), str('accounts'), ch('d'), i16(2), u8(1), str('id'), i32(23), i32(-1), u8(0), str('balance'), i32(1700), i32(-1)),
  msg(ch('I'), i32(16384), ch('N'), i16(2), ch('t'), i32(1), ch('7'), ch('n')),
  msg(ch('P'), u8(0), i64(0, 0x100), i64(0, 0x180), i64(0, 5), i32(740), str(GID)),
  msg(ch('K'), u8(0), i64(0, 0x200), i64(0, 0x280), i64(0, 9), i32(740), str(GID)),
];

describe('pgoutput decoding (bytes built by hand from the docs)', () => {
  it('decodes Begin, Commit, Origin and Message', () => {
    expect(decodePgoutput(msg(ch('B'), i64(1, 2), i64(0, 1_000_000), i32(0xfffffffe)))).toEqual({
      kind: 'Begin', finalLsn: L(0x100000002n), commitTime: TS(1_000_000n), xid: 0xfffffffe,
    });
    expect(decodePgoutput(msg(ch('C'), u8(0), i64(0, 10), i64(0, 20), i64(0xffffffff, 0xffffffff)))).toEqual({
      kind: 'Commit', flags: 0, commitLsn: L(10n), endLsn: L(20n), commitTime: TS(-1n),
    });
    expect(decodePgoutput(msg(ch('O'), i64(0, 42), str('node_a')))).toEqual({ kind: 'Origin', originLsn: L(42n), name: 'node_a' });
    expect(decodePgoutput(msg(ch('M'), u8(1), i64(0, 8), str('sg'), i32(3), ch('abc')))).toEqual({
      kind: 'Message', xid: null, transactional: true, lsn: L(8n), prefix: 'sg', content: Buffer.from('abc'),
    });
    expect(decodePgoutput(msg(ch('M'), i32(9), u8(0), i64(0, 8), str('sg'), i32(0)), { inStream: true })).toMatchObject({ xid: 9, transactional: false });
  });

  it('decodes Relation and Type', () => {
    expect(decodePgoutput(twoPhase[1]!)).toEqual({
      kind: 'Relation', xid: null, relationOid: 16384, namespace: 'public', name: 'accounts', replicaIdentity: 'd',
      columns: [
        { isKey: true, name: 'id', typeOid: 23, typeModifier: -1 },
        { isKey: false, name: 'balance', typeOid: 1700, typeModifier: -1 },
      ],
    });
    expect(decodePgoutput(msg(ch('Y'), i32(70000), str('public'), str('mood')))).toEqual({ kind: 'Type', xid: null, typeOid: 70000, namespace: 'public', name: 'mood' });
  });

  it('decodes Insert, Update (K, O, N), Delete and Truncate with every TupleData column kind', () => {
    const insert = decodePgoutput(msg(ch('I'), i32(5), ch('N'), i16(4), ch('t'), i32(3), Buffer.from('hé'), ch('n'), ch('u'), ch('b'), i32(2), u8(0xde), u8(0xad)));
    expect(insert).toEqual({
      kind: 'Insert', xid: null, relationOid: 5,
      newTuple: [text('hé'), { kind: 'null' }, { kind: 'unchanged' }, { kind: 'binary', value: Buffer.from([0xde, 0xad]) }],
    });
    const tuple = (v: string) => msg(i16(1), ch('t'), i32(v.length), ch(v));
    expect(decodePgoutput(msg(ch('U'), i32(5), ch('N'), tuple('a')))).toEqual({ kind: 'Update', xid: null, relationOid: 5, key: null, old: null, newTuple: [text('a')] });
    expect(decodePgoutput(msg(ch('U'), i32(5), ch('K'), tuple('k'), ch('N'), tuple('a')))).toMatchObject({ key: [text('k')], old: null });
    expect(decodePgoutput(msg(ch('U'), i32(5), ch('O'), tuple('o'), ch('N'), tuple('a')))).toMatchObject({ key: null, old: [text('o')] });
    expect(decodePgoutput(msg(ch('D'), i32(5), ch('K'), tuple('k')))).toEqual({ kind: 'Delete', xid: null, relationOid: 5, key: [text('k')], old: null });
    expect(decodePgoutput(msg(ch('D'), i32(5), ch('O'), tuple('o')))).toMatchObject({ key: null, old: [text('o')] });
    expect(decodePgoutput(msg(ch('T'), i32(2), u8(3), i32(5), i32(6)))).toEqual({ kind: 'Truncate', xid: null, options: 3, relationOids: [5, 6] });
  });

  it('reads the xid of changes inside a stream block and tracks Stream Start/Stop', () => {
    const d = new PgoutputDecoder();
    expect(d.decode(msg(ch('S'), i32(77), u8(1)))).toEqual({ kind: 'StreamStart', xid: 77, firstSegment: true });
    expect(d.inStream).toBe(true);
    expect(d.decode(msg(ch('I'), i32(77), i32(5), ch('N'), i16(1), ch('n')))).toEqual({ kind: 'Insert', xid: 77, relationOid: 5, newTuple: [{ kind: 'null' }] });
    expect(d.decode(msg(ch('T'), i32(77), i32(1), u8(0), i32(5)))).toMatchObject({ xid: 77, relationOids: [5] });
    expect(() => d.decode(msg(ch('S'), i32(78), u8(0)))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(d.decode(ch('E'))).toEqual({ kind: 'StreamStop' });
    expect(d.inStream).toBe(false);
    expect(() => d.decode(ch('E'))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(d.decode(msg(ch('c'), i32(77), u8(0), i64(0, 1), i64(0, 2), i64(0, 3)))).toEqual({
      kind: 'StreamCommit', xid: 77, flags: 0, commitLsn: L(1n), endLsn: L(2n), commitTime: TS(3n),
    });
    expect(d.decode(msg(ch('A'), i32(77), i32(78)))).toEqual({ kind: 'StreamAbort', xid: 77, subXid: 78, abortLsn: null, abortTime: null });
    expect(d.decode(msg(ch('A'), i32(77), i32(77), i64(0, 4), i64(0, 5)))).toMatchObject({ abortLsn: L(4n), abortTime: TS(5n) });
    expect(d.decode(msg(ch('p'), u8(0), i64(0, 1), i64(0, 2), i64(0, 3), i32(77), str('g')))).toEqual({
      kind: 'StreamPrepare', flags: 0, prepareLsn: L(1n), endLsn: L(2n), prepareTime: TS(3n), xid: 77, gid: 'g',
    });
  });

  it('decodes a version-3 two-phase sequence: Begin Prepare, changes, Prepare, Commit Prepared, and Rollback Prepared', () => {
    const d = new PgoutputDecoder();
    const out = twoPhase.map((b) => d.decode(b));
    expect(out.map((m) => m.kind)).toEqual(['BeginPrepare', 'Relation', 'Insert', 'Prepare', 'CommitPrepared']);
    expect(out[0]).toEqual({ kind: 'BeginPrepare', prepareLsn: L(0x100n), endLsn: L(0x180n), prepareTime: TS(5n), xid: 740, gid: GID });
    expect(out[3]).toEqual({ kind: 'Prepare', flags: 0, prepareLsn: L(0x100n), endLsn: L(0x180n), prepareTime: TS(5n), xid: 740, gid: GID });
    expect(out[4]).toEqual({ kind: 'CommitPrepared', flags: 0, commitLsn: L(0x200n), endLsn: L(0x280n), commitTime: TS(9n), xid: 740, gid: GID });
    expect(decodePgoutput(msg(ch('r'), u8(0), i64(0, 0x180), i64(0, 0x300), i64(0, 5), i64(0, 11), i32(741), str('sg_c1_s0_abd_s1')))).toEqual({
      kind: 'RollbackPrepared', flags: 0, prepareEndLsn: L(0x180n), rollbackEndLsn: L(0x300n), prepareTime: TS(5n), rollbackTime: TS(11n), xid: 741, gid: 'sg_c1_s0_abd_s1',
    });
  });

  it('fails with 08P01 on every truncation, trailing byte, unknown type and bad marker', () => {
    for (const whole of twoPhase) {
      for (let n = 0; n < whole.length; n++) expect(() => decodePgoutput(whole.subarray(0, n)), `${n} bytes`).toThrow(expect.objectContaining({ code: '08P01' }));
      expect(() => decodePgoutput(msg(whole, u8(0)))).toThrow(expect.objectContaining({ code: '08P01' }));
    }
    expect(() => decodePgoutput(ch('Z'))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(() => decodePgoutput(msg(ch('I'), i32(5), ch('K'), i16(0)))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(() => decodePgoutput(msg(ch('I'), i32(5), ch('N'), i16(1), ch('x')))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(() => decodePgoutput(msg(ch('R'), i32(1), str('a'), str('b'), ch('z'), i16(0)))).toThrow(expect.objectContaining({ code: '08P01' }));
  });
});

describe('streaming replication CopyData messages', () => {
  it('decodes XLogData and Primary keepalive', () => {
    const payload = twoPhase[0]!;
    expect(decodeReplicationMessage(msg(ch('w'), i64(0, 0x100), i64(0, 0x200), i64(0, 7), payload))).toEqual({
      kind: 'XLogData', walStart: L(0x100n), walEnd: L(0x200n), sendTime: TS(7n), data: payload,
    });
    expect(decodeReplicationMessage(msg(ch('k'), i64(2, 0), i64(0, 7), u8(1)))).toEqual({ kind: 'PrimaryKeepalive', walEnd: L(0x200000000n), sendTime: TS(7n), replyRequested: true });
    expect(() => decodeReplicationMessage(msg(ch('k'), i64(2, 0), i64(0, 7)))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(() => decodeReplicationMessage(Buffer.alloc(0))).toThrow(expect.objectContaining({ code: '08P01' }));
    expect(() => decodeReplicationMessage(ch('x'))).toThrow(expect.objectContaining({ code: '08P01' }));
  });

  it('encodes a Standby status update', () => {
    expect(encodeStandbyStatusUpdate({ written: L(0x300n), flushed: L(0x200n), applied: L(0x100n), clientTime: TS(-2n), replyRequested: false })).toEqual(
      msg(ch('r'), i64(0, 0x300), i64(0, 0x200), i64(0, 0x100), i64(0xffffffff, 0xfffffffe), u8(0)),
    );
    expect(encodeStandbyStatusUpdate({ written: L(0n), flushed: L(0n), applied: L(0n), clientTime: TS(0n), replyRequested: true }).at(-1)).toBe(1);
  });
});
