import { describe, expect, it } from 'vitest';
import { eventOfChanges } from '../../../src/cdc/assembler.js';
import { eventJsonPieces, eventToJson, eventToJsonLine } from '../../../src/cdc/json-line.js';
import { dateToPgTimestamp } from '../../../src/cdc/lsn.js';

describe('eventToJsonLine', () => {
  it('writes one line with the commit time in ISO form and the values as text', () => {
    const line = eventToJsonLine(eventOfChanges({
      id: 'sg_gw1_s0_abc',
      kind: 'global',
      commitTime: dateToPgTimestamp(new Date('2026-01-02T03:04:05.678Z')),
      shards: ['s0', 's1'],
      changes: [{ table: 'public.accounts', op: 'update', old: null, new: { id: '1', note: 'a\nb', gone: null } }],
    }));
    expect(line).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({
      id: 'sg_gw1_s0_abc',
      kind: 'global',
      commitTime: '2026-01-02T03:04:05.678Z',
      shards: ['s0', 's1'],
      changes: [{ table: 'public.accounts', op: 'update', old: null, new: { id: '1', note: 'a\nb', gone: null } }],
    });
  });

  it('writes in pieces exactly what JSON.stringify writes of the whole event, with no, one and many changes', () => {
    for (const n of [0, 1, 3]) {
      const event = eventOfChanges({
        id: 's0:0/10',
        kind: 'local',
        commitTime: dateToPgTimestamp(new Date('2026-01-02T03:04:05.678Z')),
        shards: ['s0'],
        changes: Array.from({ length: n }, (_, i) => ({ table: 'public.t', op: 'insert' as const, old: null, new: { id: String(i), v: '"\u00e9"' } })),
      });
      const pieces = [...eventJsonPieces(event)];
      expect(pieces.length).toBe(n + 2);
      expect(pieces.join('')).toBe(JSON.stringify(eventToJson(event)));
    }
  });
});
