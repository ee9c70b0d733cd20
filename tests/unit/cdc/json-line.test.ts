import { describe, expect, it } from 'vitest';
import { eventToJsonLine } from '../../../src/cdc/json-line.js';
import { dateToPgTimestamp } from '../../../src/cdc/lsn.js';

describe('eventToJsonLine', () => {
  it('writes one line with the commit time in ISO form and the values as text', () => {
    const line = eventToJsonLine({
      id: 'sg_gw1_s0_abc',
      kind: 'global',
      commitTime: dateToPgTimestamp(new Date('2026-01-02T03:04:05.678Z')),
      shards: ['s0', 's1'],
      changes: [{ table: 'public.accounts', op: 'update', old: null, new: { id: '1', note: 'a\nb', gone: null } }],
    });
    expect(line).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({
      id: 'sg_gw1_s0_abc',
      kind: 'global',
      commitTime: '2026-01-02T03:04:05.678Z',
      shards: ['s0', 's1'],
      changes: [{ table: 'public.accounts', op: 'update', old: null, new: { id: '1', note: 'a\nb', gone: null } }],
    });
  });
});
